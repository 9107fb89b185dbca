/**
 * Cross-cutting limits as a wrapper around an adapter (not code inside each adapter):
 * - requests per second (`--tps-limit`), a token bucket per service;
 * - bytes per second written (`--bwlimit`), one bucket for the whole run;
 * - adaptive concurrency: each throttling answer (RateLimited) halves the requests this service
 *   may have in flight; successes win them back one at a time (AIMD), up to the configured cap.
 */
import { Transform, pipeline, type TransformCallback } from "node:stream";
import type { Adapter, MultipartSteps, ObjectInfo, ObjectStream } from "../adapters/types.js";
import { toMigrateError } from "./errors.js";
import { backoffDelay, sleep, withRetry, type RetryPolicy } from "./retry.js";
import { compareKeys } from "./keys.js";
import { flatten, listPagesOf } from "./listing.js";

/** Tokens refill continuously at `rate` per second, up to one second's worth. */
export class TokenBucket {
  private tokens: number;
  private last = Date.now();
  private queue: Promise<void> = Promise.resolve();

  constructor(readonly rate: number) {
    this.tokens = rate;
  }

  /** Wait until `n` tokens are available, in arrival order. */
  take(n: number): Promise<void> {
    const turn = this.queue.then(async () => {
      for (;;) {
        const now = Date.now();
        this.tokens = Math.min(this.rate, this.tokens + ((now - this.last) / 1000) * this.rate);
        this.last = now;
        // A request bigger than the bucket goes once the bucket is full, and leaves it in debt.
        if (this.tokens >= Math.min(n, this.rate)) {
          this.tokens -= n;
          return;
        }
        await sleep(Math.ceil(((Math.min(n, this.rate) - this.tokens) / this.rate) * 1000));
      }
    });
    this.queue = turn;
    return turn;
  }
}

/** In-flight cap that halves on throttling and grows back by one per `limit` successes. */
export class AdaptiveLimit {
  private inFlight = 0;
  private successes = 0;
  private lastCut = 0;
  private readonly waiters: (() => void)[] = [];
  limit: number;
  /** Lowest limit reached, and how many times throttling cut it (for the summary). */
  floor: number;
  cuts = 0;

  /** Starts at `initial` (default `max`) and may grow to `max` while nothing is throttled. */
  constructor(
    readonly max: number,
    initial = max,
  ) {
    this.limit = Math.min(initial, max);
    this.floor = this.limit;
  }

  async acquire(): Promise<void> {
    if (this.inFlight < this.limit) {
      this.inFlight++;
      return;
    }
    await new Promise<void>((r) => this.waiters.push(r));
  }

  release(outcome: "ok" | "throttled" | "error"): void {
    this.inFlight--;
    const now = Date.now();
    if (outcome === "throttled") {
      // One cut per half second: a burst of 429s from the same moment is one signal.
      if (now - this.lastCut > 500) {
        this.limit = Math.max(1, Math.floor(this.limit / 2));
        this.floor = Math.min(this.floor, this.limit);
        this.lastCut = now;
        this.successes = 0;
        this.cuts++;
      }
    } else if (outcome === "ok" && this.limit < this.max && ++this.successes >= this.limit) {
      this.limit++;
      this.successes = 0;
    }
    while (this.waiters.length && this.inFlight < this.limit) {
      this.inFlight++;
      this.waiters.shift()!();
    }
  }
}

export interface LimitSettings {
  /** Retries for requests the engine does not retry itself (listing pages, checks). */
  retry: RetryPolicy;
  /** Requests per second to this service; undefined for no cap. */
  tps?: number;
  /** Shared bytes-per-second bucket for writes; undefined for no cap. */
  bandwidth?: TokenBucket;
  /** Most requests in flight to this service. */
  maxInFlight: number;
  /** Where the in-flight cap starts (default maxInFlight): a first throttle then bites at once. */
  initialInFlight?: number;
}

function outcomeOf(err: unknown): "throttled" | "error" {
  return toMigrateError(err).kind === "RateLimited" ? "throttled" : "error";
}

/** A stream that lets bytes through no faster than the bucket allows. */
function throttleStream(bucket: TokenBucket): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      bucket.take(chunk.length).then(() => cb(null, chunk), cb);
    },
  });
}

/**
 * A listing that survives temporary errors: it lists again after a backoff and skips the keys it
 * already yielded (listings come in key order), so a reset mid-listing does not end the run.
 */
async function* retryingPages(inner: Adapter, prefix: string | undefined, policy: RetryPolicy, pace: () => Promise<void> | undefined): AsyncGenerator<ObjectInfo[]> {
  let last: string | undefined;
  let failures = 0;
  for (;;) {
    // A listing started again gives the keys up to `last` again: skipped until it is past them.
    let skipThrough = last;
    try {
      await pace();
      for await (const page of listPagesOf(inner, prefix)) {
        let fresh = page;
        if (skipThrough !== undefined) {
          const through = skipThrough;
          fresh = page.filter((o) => compareKeys(o.key, through) > 0);
          if (fresh.length) skipThrough = undefined;
        }
        // Only new keys count as progress: a listing that fails at the same place every time gives up.
        if (!fresh.length) continue;
        failures = 0;
        last = fresh[fresh.length - 1].key;
        yield fresh;
      }
      return;
    } catch (raw) {
      const err = toMigrateError(raw);
      if (!err.temporary || ++failures >= policy.attempts) throw err;
      await sleep(backoffDelay(policy, failures - 1, err));
    }
  }
}

/** Wrap `inner` so every request goes through the limits. The result keeps the same contract. */
export function withLimits(inner: Adapter, s: LimitSettings): Adapter & { readonly concurrency: AdaptiveLimit } {
  const gate = new AdaptiveLimit(s.maxInFlight, s.initialInFlight);
  const tps = s.tps ? new TokenBucket(s.tps) : undefined;

  /** One request: wait for a token and a slot, report how it went. */
  async function request<T>(fn: () => Promise<T>): Promise<T> {
    await tps?.take(1);
    await gate.acquire();
    try {
      const v = await fn();
      gate.release("ok");
      return v;
    } catch (err) {
      gate.release(outcomeOf(err));
      throw err;
    }
  }

  const multipart: MultipartSteps | undefined = inner.multipart && {
    startUpload: (k, src, partSize) => request(() => inner.multipart!.startUpload(k, src, partSize)),
    uploadPart: async (k, id, n, body, checksum) => {
      await s.bandwidth?.take(body.length);
      return request(() => inner.multipart!.uploadPart(k, id, n, body, checksum));
    },
    completeUpload: (k, id, parts, src, md5) => request(() => inner.multipart!.completeUpload(k, id, parts, src, md5)),
    abortUpload: (k, id) => request(() => inner.multipart!.abortUpload(k, id)),
  };

  return {
    display: inner.display,
    capabilities: inner.capabilities,
    concurrency: gate,
    list: (prefix) => flatten(retryingPages(inner, prefix, s.retry, () => tps?.take(1))),
    listPages: (prefix) => retryingPages(inner, prefix, s.retry, () => tps?.take(1)),
    stat: (key) => request(() => inner.stat(key)),
    // A read holds its slot until the stream is done with (or arrived whole).
    read: async (key, range) => {
      await tps?.take(1);
      await gate.acquire();
      let stream: ObjectStream;
      try {
        stream = await inner.read(key, range);
      } catch (err) {
        gate.release(outcomeOf(err));
        throw err;
      }
      if (stream.whole) {
        // Read whole already: the request is over.
        gate.release("ok");
        return stream;
      }
      let released = false;
      const release = (outcome: "ok" | "error") => {
        if (!released) {
          released = true;
          gate.release(outcome);
        }
      };
      stream.once("end", () => release("ok"));
      stream.once("error", () => release("error"));
      stream.once("close", () => release("ok"));
      return stream;
    },
    write: async (key, body, source, opts) => {
      if (!s.bandwidth) return request(() => inner.write(key, body, source, opts));
      // A body the adapter may send from memory is paid for up front, like a part.
      if (opts?.whole) {
        await s.bandwidth.take(opts.whole.length);
        return request(() => inner.write(key, body, source, opts));
      }
      return request(() => inner.write(key, pipeline(body, throttleStream(s.bandwidth!), () => undefined), source, opts));
    },
    delete: (key) => request(() => inner.delete(key)),
    check: (role) => withRetry(s.retry, () => request(() => inner.check(role))),
    keyProblem: inner.keyProblem?.bind(inner),
    readInto: inner.readInto && ((key, start, target) => request(() => inner.readInto!(key, start, target))),
    // A read-ahead of a few small local files: paid for, like any read, when read() takes it.
    prefetch: inner.prefetch?.bind(inner),
    localPath: inner.localPath?.bind(inner),
    writeFromFile: inner.writeFromFile && (async (key, file, source, opts) => {
      await s.bandwidth?.take(source.size);
      return request(() => inner.writeFromFile!(key, file, source, opts));
    }),
    writeFromFiles: inner.writeFromFiles && (async (items) => {
      await s.bandwidth?.take(items.reduce((n, it) => n + it.source.size, 0));
      return request(() => inner.writeFromFiles!(items));
    }),
    readWhole: inner.readWhole && ((key, max, opts) => request(() => inner.readWhole!(key, max, opts))),
    computeMd5: inner.computeMd5?.bind(inner),
    digestParts: inner.digestParts?.bind(inner),
    partLayout: inner.partLayout && ((key, info) => request(() => inner.partLayout!(key, info))),
    partChecksum: inner.partChecksum && ((key, n, info) => request(() => inner.partChecksum!(key, n, info))),
    multipart,
    close: inner.close?.bind(inner),
  };
}
