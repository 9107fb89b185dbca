/**
 * The fsnative addon (native/*.c), built by `npm install` into build/Release/ at the package root,
 * for the filesystem adapter (its file calls) and for md5-lanes.ts (md5x4, md5x8).
 * Optional: where it did not build (no compiler at install) or is not Linux, `fsNative` has no
 * functions and the filesystem adapter does their work in JavaScript (and md5-lanes.ts its x4
 * in WebAssembly).
 */
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

/** An Error as copySmallFiles gives it, with the fields of Node's own fs errors. */
export interface NativeFsError extends Error {
  code: string;
  errno: number;
  syscall: string;
  path?: string;
  dest?: string;
}

export interface FsNative {
  /** posix_fadvise(fd, offset, length, POSIX_FADV_DONTNEED); never throws. See native/fadvise.c. */
  dropCached?(fd: number, offset: number, length: number): number | undefined;
  /**
   * Copy each file below 1 MiB, in order, on one thread of libuv's pool: the bytes copied, or
   * the error. mtimesMs: NaN leaves the mtime alone. See native/copy-files.c.
   */
  copySmallFiles?(srcs: string[], tmps: string[], finals: string[], sizes: number[], mtimesMs: number[]): Promise<(number | NativeFsError)[]>;
  /**
   * The files (links to files followed) and folders in `dir`, names starting with `skip` left
   * out: their names, and per name 3 numbers (1 for a folder, size, mtimeMs). See native/list-dir.c.
   */
  listDir?(dir: string, skip: string): Promise<[names: string[], meta: Float64Array]>;
  /**
   * Each whole file: its bytes, true when bigger than `max` (not read), null when it could not
   * be read. See native/read-files.c.
   */
  readSmallFiles?(paths: string[], max: number): Promise<(Buffer | true | null)[]>;
  /**
   * Four MD5s advanced together over `blocks` 64-byte blocks, lane l reading from `p<l>`; `state`
   * holds A, B, C, D of the four lanes (state[4 × word + lane]). `sse2`: not the AVX-512 code
   * even where the CPU has it (tests). x86-64 only. See native/md5-x4.c.
   */
  md5x4?(state: Uint32Array, p0: Uint8Array, p1: Uint8Array, p2: Uint8Array, p3: Uint8Array, blocks: number, sse2?: boolean): void;
  /**
   * md5x4 for eight lanes (state[8 × word + lane]). `avx2`: not the AVX-512 code even where the
   * CPU has it (tests). x86-64 with AVX2 only. See native/md5-x8.c.
   */
  md5x8?(state: Uint32Array, p0: Uint8Array, p1: Uint8Array, p2: Uint8Array, p3: Uint8Array, p4: Uint8Array, p5: Uint8Array, p6: Uint8Array, p7: Uint8Array, blocks: number, avx2?: boolean): void;
}

/** The binding file's name (binding.gyp's target). */
export const FS_NATIVE_FILE = "fsnative.node";

export const fsNative = ((): FsNative => {
  // The package root is the nearest folder up with a package.json (this file runs from
  // src/, dist/src/ or dist/bundle/).
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, "package.json"))) {
      try {
        // A plain object: its functions can be replaced (tests count calls through them).
        return { ...(createRequire(import.meta.url)(path.join(dir, "build", "Release", FS_NATIVE_FILE)) as FsNative) };
      } catch {
        return {}; // not built
      }
    }
    if (path.dirname(dir) === dir) return {};
  }
})();
