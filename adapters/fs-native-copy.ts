/**
 * Small local files copied by the fsnative addon (native/copy-files.c) instead of a file thread:
 * the same system calls with no JavaScript per file. 10,000 × 4 KiB fs→fs: see
 * bench/results/README.md.
 *
 * Contract: a batch is files of one folder; batches for one folder run one at a time (threads
 * creating files in one folder contend for it in the kernel, as WorkerPool.callPinned avoids),
 * and at most `threads` batches run at once on libuv's pool.
 */
import pLimit, { type LimitFunction } from "p-limit";
import { fsNative } from "../src/native.js";
import type { CopiedOrFailed } from "./fs-worker.js";

/** Files below this size may go to copySmallFiles (it reads a file in one call up to it). */
export const NATIVE_COPY_BELOW = 1024 * 1024;

export interface NativeCopy {
  src: string;
  tmp: string;
  final: string;
  size: number;
  mtimeMs?: number;
}

export class NativeCopier {
  private readonly limit: LimitFunction;
  /** Per folder, the end of its last batch queued. */
  private readonly tails = new Map<string, Promise<unknown>>();

  private constructor(threads: number) {
    this.limit = pLimit(threads);
  }

  /** A copier, or undefined where the addon has no copySmallFiles. */
  static create(threads: number): NativeCopier | undefined {
    return fsNative.copySmallFiles ? new NativeCopier(threads) : undefined;
  }

  /** Copy `files` (all into `folder`, each below NATIVE_COPY_BELOW): each one's outcome, in order. */
  copy(folder: string, files: readonly NativeCopy[]): Promise<CopiedOrFailed[]> {
    const run = () => this.limit(() => this.run(files));
    const prev = this.tails.get(folder);
    const done = prev ? prev.then(run, run) : run();
    const tail = done.catch(() => undefined);
    this.tails.set(folder, tail);
    void tail.then(() => {
      if (this.tails.get(folder) === tail) this.tails.delete(folder);
    });
    return done;
  }

  private async run(files: readonly NativeCopy[]): Promise<CopiedOrFailed[]> {
    const got = await fsNative.copySmallFiles!(
      files.map((f) => f.src),
      files.map((f) => f.tmp),
      files.map((f) => f.final),
      files.map((f) => f.size),
      files.map((f) => f.mtimeMs ?? NaN),
    );
    return got.map((g, i): CopiedOrFailed => {
      if (typeof g === "number") return { ok: { size: g, complete: g === files[i].size } };
      return { error: { message: g.message, code: g.code, syscall: g.syscall, path: g.path } };
    });
  }
}
