/**
 * MD5 of large buffers on worker threads, so the main thread keeps moving bytes while parts are
 * hashed. Small buffers are hashed in place: a message costs more than their hash.
 */
import os from "node:os";
import { WorkerPool, workerScript } from "./worker-pool.js";
import { md5Hex } from "./hashing.js";

/** Below this, hashing in place is cheaper than a round trip to a worker. */
const INLINE_BELOW = 256 * 1024;
let pool: WorkerPool | undefined;
const hashPool = (): WorkerPool => (pool ??= new WorkerPool(workerScript(import.meta.url, "hash-worker"), Math.min(4, Math.max(2, os.availableParallelism()))));

/** Boot the hash threads now, so the first large buffer does not wait tens of ms for them. */
export function warmHashPool(): void {
  hashPool().warm();
}

export function md5Of(buf: Buffer): Promise<string> {
  if (buf.length < INLINE_BELOW) return Promise.resolve(md5Hex(buf));
  return hashPool().callAlone<string>("md5", buf);
}

/** The saved MD5 state after `buf`, continuing from `state` (undefined: from the start). */
export async function md5Continue(state: Uint8Array | undefined, buf: Buffer): Promise<Uint8Array> {
  return hashPool().callAlone<Uint8Array>("md5Continue", state, buf);
}

export function md5Finish(state: Uint8Array | undefined): Promise<string> {
  return hashPool().call<string>("md5Finish", state);
}
