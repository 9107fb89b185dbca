/**
 * A small pool of worker threads for blocking work: synchronous file calls and hashing. Each
 * file call made through libuv costs the main thread a thread-pool round trip and a promise;
 * a worker runs a whole sequence of them (open, read, close) as plain syscalls instead.
 *
 * Calls made in the same turn of the event loop travel together: one message per worker per
 * batch, each way. A worker holds at most two batches, so a long call (hashing a big file)
 * delays only the batch queued behind it, and other workers keep serving.
 *
 * A long call may name an affinity (a destination folder): calls with the same one go to the
 * same worker while any of them is in flight there, and wait for it rather than run alongside.
 *
 * Workers are unreferenced while idle: an idle pool never keeps the process alive.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Worker, parentPort, type TransferListItem } from "node:worker_threads";

type Call = { seq: number; op: string; args: unknown[]; alone?: boolean; affinity?: string; first?: boolean };
type Waiter = { resolve(v: unknown): void; reject(e: Error): void; affinity?: string };
type Reply = { seq: number; ok: true; value: unknown } | { seq: number; ok: false; error: WorkerErrorShape };
/** An error as it crosses between threads: its message and errno fields. */
export interface WorkerErrorShape {
  message: string;
  code?: string;
  syscall?: string;
  path?: string;
}

export function toErrorShape(err: unknown): WorkerErrorShape {
  const e = err as NodeJS.ErrnoException;
  return { message: e.message, code: e.code, syscall: e.syscall, path: e.path };
}

/** The Error again, with `code`, `syscall` and `path` where the worker's had them. */
export const fromErrorShape = (shape: WorkerErrorShape): NodeJS.ErrnoException => Object.assign(new Error(shape.message), shape);

/** Calls sent to one worker in one message, at most. */
const BATCH_MAX = 64;
/** Batches a worker may hold (one running, one waiting). */
const BATCHES_PER_WORKER = 2;
/**
 * Fewest calls a batch is split down to. A message costs the main thread tens of µs each way,
 * more than a small file call itself, so a handful of calls go to one worker together.
 */
const MIN_SHARE = 8;

interface Slot {
  worker: Worker;
  batches: number;
  pending: Map<number, Waiter>;
}

export class WorkerPool {
  private slots: Slot[] = [];
  private queue: Call[] = [];
  private waiting = new Map<number, Waiter>();
  /** Affinities with calls in flight: the worker they are on, and how many. */
  private pins = new Map<string, { slot: Slot; calls: number }>();
  private seq = 0;
  private flushScheduled = false;
  private closed = false;

  /** `script`: the worker's compiled module (see workerScript). */
  constructor(
    private readonly script: string,
    readonly size: number,
  ) {}

  /** Run `op` on some worker. Errors keep the worker's `code`, `syscall` and `path`. */
  call<T>(op: string, ...args: unknown[]): Promise<T> {
    return this.enqueue<T>({ op, args });
  }

  /**
   * Like `call`, for a long call (hashing or reading a part, hashing a whole file): it travels
   * in a batch of its own, so several such calls spread over the threads instead of queueing
   * behind each other on one.
   */
  callAlone<T>(op: string, ...args: unknown[]): Promise<T> {
    return this.enqueue<T>({ op, args, alone: true });
  }

  /**
   * Like `callAlone`, ahead of every call not yet sent to a worker: for work others wait on (a
   * listing that feeds the copies queued behind it).
   */
  callFirst<T>(op: string, ...args: unknown[]): Promise<T> {
    return this.enqueue<T>({ op, args, alone: true, first: true });
  }

  /**
   * `callAlone` on the worker that has calls of the same `affinity` in flight, if one has: such
   * calls run one after another there, never side by side. For writes into one folder: threads
   * creating files in the same folder contend for its lock in the kernel (10,000 × 4 KiB into
   * folders of 100 on ext4, two threads: 1.02 CPU-s dealt file by file, 0.77 folder by folder).
   */
  callPinned<T>(affinity: string, op: string, ...args: unknown[]): Promise<T> {
    return this.enqueue<T>({ op, args, alone: true, affinity });
  }

  private enqueue<T>(c: Omit<Call, "seq">): Promise<T> {
    if (this.closed) return Promise.reject(new Error("worker pool is closed"));
    const seq = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(seq, { resolve: resolve as (v: unknown) => void, reject, affinity: c.affinity });
      if (c.first) {
        // After the other calls sent first, ahead of the rest.
        let at = 0;
        while (at < this.queue.length && this.queue[at].first) at++;
        this.queue.splice(at, 0, { seq, ...c });
      } else this.queue.push({ seq, ...c });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => {
          this.flushScheduled = false;
          this.dispatch();
        });
      }
    });
  }

  /** Start the threads now (they take tens of ms to boot) rather than on the first call. */
  warm(): void {
    if (!this.slots.length && !this.closed) for (let i = 0; i < this.size; i++) this.slots.push(this.spawn());
  }

  async close(): Promise<void> {
    this.closed = true;
    const slots = this.slots;
    this.slots = [];
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private dispatch(): void {
    if (!this.queue.length) return;
    this.warm();
    for (;;) {
      const open = this.slots.filter((s) => s.batches < BATCHES_PER_WORKER);
      if (!open.length) return;
      // The first call that may go now: any but one pinned to a worker that has no room.
      const i = this.queue.findIndex((c) => {
        const pin = c.affinity === undefined ? undefined : this.pins.get(c.affinity);
        return !pin || pin.slot.batches < BATCHES_PER_WORKER;
      });
      if (i < 0) return;
      const first = this.queue[i];
      const pin = first.affinity === undefined ? undefined : this.pins.get(first.affinity);
      // Emptiest worker first, so calls spread instead of piling on the first one.
      const slot = pin?.slot ?? open.reduce((a, b) => (b.batches < a.batches ? b : a));
      const share = Math.min(BATCH_MAX, Math.max(MIN_SHARE, Math.ceil(this.queue.length / open.length)));
      // A long call goes alone; short ones go together, up to the next long one.
      let take = 1;
      if (!first.alone) while (take < share && i + take < this.queue.length && !this.queue[i + take].alone) take++;
      const batch = this.queue.splice(i, take);
      for (const c of batch) {
        slot.pending.set(c.seq, this.waiting.get(c.seq)!);
        this.waiting.delete(c.seq);
        if (c.affinity !== undefined) this.pins.set(c.affinity, { slot, calls: (this.pins.get(c.affinity)?.calls ?? 0) + 1 });
      }
      if (slot.batches++ === 0) slot.worker.ref();
      slot.worker.postMessage(batch);
    }
  }

  /** A call of `waiter`'s has left its worker (answered, or the worker failed). */
  private unpin(waiter: Waiter): void {
    if (waiter.affinity === undefined) return;
    const pin = this.pins.get(waiter.affinity);
    if (pin && --pin.calls === 0) this.pins.delete(waiter.affinity);
  }

  private spawn(): Slot {
    const worker = new Worker(this.script);
    const slot: Slot = { worker, batches: 0, pending: new Map() };
    worker.on("message", (replies: Reply[]) => {
      for (const r of replies) {
        const p = slot.pending.get(r.seq);
        if (!p) continue;
        slot.pending.delete(r.seq);
        this.unpin(p);
        if (r.ok) p.resolve(r.value);
        else p.reject(fromErrorShape(r.error));
      }
      if (--slot.batches === 0) worker.unref();
      this.dispatch();
    });
    const fail = (err: Error) => {
      for (const p of slot.pending.values()) {
        this.unpin(p);
        p.reject(err);
      }
      slot.pending.clear();
      const i = this.slots.indexOf(slot);
      if (i >= 0 && !this.closed) this.slots[i] = this.spawn();
      this.dispatch();
    };
    worker.on("error", fail);
    worker.on("exit", (code) => {
      if (slot.pending.size) fail(new Error(`worker thread exited (code ${code}) with calls in flight`));
    });
    worker.unref(); // after the listeners: adding one refs the worker again
    return slot;
  }
}

/** What a worker handler returns: a value, and the buffers to move rather than copy. */
export type Handled = { value: unknown; transfer?: TransferListItem[] } | undefined;
export type Handlers = Record<string, (...args: never[]) => Handled | Promise<Handled>>;

/** Worker side: answer batches of calls with `handlers`, in order. */
export function serve(handlers: Handlers): void {
  const port = parentPort;
  if (!port) throw new Error("serve() runs in a worker thread");
  port.on("message", async (batch: Call[]) => {
    const replies: Reply[] = [];
    const transfer: TransferListItem[] = [];
    for (const c of batch) {
      try {
        const h = handlers[c.op];
        if (!h) throw new Error(`unknown worker call ${c.op}`);
        const out = await (h as (...a: unknown[]) => Handled | Promise<Handled>)(...c.args);
        replies.push({ seq: c.seq, ok: true, value: out?.value });
        if (out?.transfer) transfer.push(...out.transfer);
      } catch (err) {
        replies.push({ seq: c.seq, ok: false, error: toErrorShape(err) });
      }
    }
    port.postMessage(replies, transfer);
  });
}

/**
 * The compiled worker module for a source file next to `importMetaUrl`. Under the test runner the
 * sources are TypeScript, which a worker cannot load, so the build's copy in dist/ is used.
 */
export function workerScript(importMetaUrl: string, name: string): string {
  const here = path.dirname(fileURLToPath(importMetaUrl));
  const sibling = path.join(here, `${name}.js`);
  if (fs.existsSync(sibling)) return sibling;
  const root = findRoot(here);
  const built = path.join(root, "dist", path.relative(root, here), `${name}.js`);
  if (fs.existsSync(built)) return built;
  throw new Error(`${name}.js not found (run npm run build)`);
}

function findRoot(dir: string): string {
  for (let d = dir; ; d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, "package.json"))) return d;
    if (path.dirname(d) === d) return dir;
  }
}
