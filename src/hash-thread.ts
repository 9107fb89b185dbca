/**
 * MD5 of large buffers on a hashing thread, so the main thread keeps moving bytes while parts are
 * hashed. Every request is sent at once: those in flight together share the thread's SIMD lanes
 * (md5-lanes.ts), which is why there is one thread, not a pool. Small buffers are hashed in
 * place: a message costs more than their hash.
 *
 * The thread is unreferenced while idle: it never keeps the process alive.
 */
import { Worker } from "node:worker_threads";
import { workerScript, fromErrorShape, type WorkerErrorShape } from "./worker-pool.js";
import { md5Hex } from "./hashing.js";
import { decodeMd5State } from "./md5-lanes.js";
export { MD5_LANES } from "./md5-lanes.js";

/** Below this, hashing in place is cheaper than a round trip to the thread. */
const INLINE_BELOW = 256 * 1024;
/** An Md5Feed sends its buffer on in pieces of at least this. */
const FEED_PIECE = 1024 * 1024;

type Ask =
  | { op: "md5"; data: Uint8Array }
  | { op: "continue"; state?: Uint8Array; data: Uint8Array }
  | { op: "finish"; state?: Uint8Array }
  | { op: "end"; stream: number; from: number; data: Uint8Array };
/** Told, not asked: no answer comes. `from`: the stream's bytes before `data`. */
type Tell = { op: "feed"; stream: number; from: number; data: Uint8Array } | { op: "drop"; stream: number };
export type HashRequest = (Ask & { seq: number }) | (Tell & { seq?: undefined });
export type HashReply =
  | { seq: number; ok: true; value: unknown }
  | { seq: number; ok: false; error: WorkerErrorShape }
  /** Sent once, when the thread has loaded and can hash. */
  | { ready: true };

let thread: Worker | undefined;
/** Whether the thread has said it is loaded: until then md5Of hashes in place. */
let ready = false;
let seq = 0;
const waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();

function hashThread(): Worker {
  if (thread) return thread;
  const worker = new Worker(workerScript(import.meta.url, "hash-worker"));
  worker.on("message", (r: HashReply) => {
    if ("ready" in r) {
      if (thread === worker) ready = true;
      return;
    }
    const w = waiting.get(r.seq);
    if (!w) return;
    waiting.delete(r.seq);
    if (r.ok) w.resolve(r.value);
    else w.reject(fromErrorShape(r.error));
    if (!waiting.size) worker.unref();
  });
  const fail = (err: Error) => {
    if (thread === worker) [thread, ready] = [undefined, false]; // the next request starts a new thread
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
  };
  worker.on("error", fail);
  worker.on("exit", (code) => fail(new Error(`hashing thread exited (code ${code})`)));
  worker.unref(); // after the listeners: adding one refs the worker again
  return (thread = worker);
}

function ask<T>(request: Ask): Promise<T> {
  const worker = hashThread();
  const id = ++seq;
  return new Promise<T>((resolve, reject) => {
    waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
    if (waiting.size === 1) worker.ref();
    worker.postMessage({ ...request, seq: id });
  });
}

function tell(request: Tell): void {
  hashThread().postMessage(request);
}

/** Boot the hashing thread now, so the first large buffer does not wait tens of ms for it. */
export function warmHashThread(): void {
  hashThread();
}

/** Whether the hashing thread is up and has said it can hash. */
export const hashThreadReady = (): boolean => ready;

/**
 * The MD5 (hex) of `buf`: on the hashing thread, or in place while the thread is still loading
 * (tens of ms after it is started; OpenSSL here takes 13 ms for 8 MiB). The first parts of a
 * large copy are read before it is up, and their uploads waited for it (S3→Azure: 50 ms).
 */
export function md5Of(buf: Buffer): Promise<string> {
  if (buf.length < INLINE_BELOW) return Promise.resolve(md5Hex(buf));
  if (!ready) {
    hashThread();
    return Promise.resolve(md5Hex(buf));
  }
  return ask<string>({ op: "md5", data: buf });
}

/** The saved MD5 state after `buf`, continuing from `state` (undefined: from the start). */
export function md5Continue(state: Uint8Array | undefined, buf: Buffer): Promise<Uint8Array> {
  return ask<Uint8Array>({ op: "continue", state, data: buf });
}

export function md5Finish(state: Uint8Array | undefined): Promise<string> {
  return ask<string>({ op: "finish", state });
}

/** Whether `state` is a saved MD5 state this version can continue (older versions saved another kind). */
export const isMd5State = (state: Uint8Array): boolean => decodeMd5State(state) !== undefined;

/** One MD5 asked of an Md5Batch. */
export interface BatchedMd5 {
  /** The MD5 (hex); settles once its batch is sent. */
  readonly result: Promise<string>;
  /** The MD5, wanted now: its batch goes if it waits still. */
  take(): Promise<string>;
  /** Not wanted after all (the buffer is no longer to be read): if it waits still, its result rejects. */
  drop(): void;
}

/**
 * MD5s of buffers held a while before they are needed (parts read ahead of their upload), asked
 * of the hashing thread together so they share its lanes: four at once cost about what 1.5 cost
 * one at a time (md5-lanes.ts), and parts read one after another would each run alone.
 *
 * A batch goes when `size` wait, or when one of them is taken (wanted now). Nothing else sends
 * one: sending whatever waited whenever every MD5 sent before had been taken (as this did until
 * 2026-12-02) settled into batches of whatever size came first, mostly three, and with the
 * lanes a quarter idle the hashing thread spent 1.4-1.7 CPU-s on 1 GiB S3→Azure, against
 * 0.85 s in batches of four.
 */
export class Md5Batch {
  private waiting: { buf: Buffer; resolve(v: string): void; reject(e: Error): void }[] = [];

  constructor(private readonly size: number) {}

  add(buf: Buffer): BatchedMd5 {
    if (buf.length < INLINE_BELOW) {
      const result = Promise.resolve(md5Hex(buf));
      return { result, take: () => result, drop: () => undefined };
    }
    let entry!: (typeof this.waiting)[number];
    const result = new Promise<string>((resolve, reject) => (entry = { buf, resolve, reject }));
    this.waiting.push(entry);
    if (this.waiting.length >= this.size) this.send();
    return {
      result,
      take: () => {
        if (this.waiting.includes(entry)) this.send();
        return result;
      },
      drop: () => {
        const at = this.waiting.indexOf(entry);
        if (at < 0) return;
        this.waiting.splice(at, 1);
        entry.reject(new Error("MD5 dropped before it was asked"));
      },
    };
  }

  private send(): void {
    const batch = this.waiting;
    this.waiting = [];
    for (const e of batch) md5Of(e.buf).then(e.resolve, e.reject);
  }
}

let streams = 0;

/**
 * The MD5 of a buffer that fills from its start (a GET written straight into it): pieces are
 * hashed on the hashing thread as they land, so reads in flight together share its SIMD lanes
 * instead of each being hashed alone once complete. Only for shared memory (lent buffers);
 * another buffer is hashed whole at the end, as md5Of does.
 */
export class Md5Feed {
  private readonly stream = ++streams;
  private readonly shared: boolean;
  private sent = 0;

  constructor(private readonly buf: Buffer) {
    this.shared = buf.buffer instanceof SharedArrayBuffer;
  }

  /** The first `n` bytes of the buffer are in. */
  readonly filled = (n: number): void => {
    if (!this.shared || n - this.sent < FEED_PIECE) return;
    tell({ op: "feed", stream: this.stream, from: this.sent, data: this.buf.subarray(this.sent, n) });
    this.sent = n;
  };

  /** Bytes handed to the hashing thread so far, before `digest`. */
  get hashedAhead(): number {
    return this.sent;
  }

  /** The MD5 (hex) of the first `length` bytes, all in. */
  digest(length: number): Promise<string> {
    if (this.sent === 0) return md5Of(this.buf.subarray(0, length));
    const from = this.sent;
    this.sent = length;
    return ask<string>({ op: "end", stream: this.stream, from, data: this.buf.subarray(from, length) });
  }

  /** The read failed: forget what was sent. */
  drop(): void {
    if (this.sent > 0) tell({ op: "drop", stream: this.stream });
    this.sent = 0;
  }
}
