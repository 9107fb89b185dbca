/**
 * Page-cache hygiene for local files: bytes read for a copy are read once, so after the last read
 * of a range the kernel is told they will not be needed again (POSIX_FADV_DONTNEED), as rclone's
 * local backend does. A migration of terabytes then does not push everything the machine had
 * cached out of memory, and the memory its reads took is free again at once.
 *
 * Advisory only. Dirty pages and pages another process has mapped stay; where the native binding
 * is missing (not Linux, or no compiler at install) nothing happens. Our own few lines of C
 * rather than the npm package fadvise: its C++ wrapper turns a call refused while a file thread
 * is torn down (a process exiting as its threads load it) into a fatal error of the process.
 */
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

/** native/fadvise.c, built by `npm install` into build/Release/ at the package root. */
interface FadviseBinding {
  dropCached(fd: number, offset: number, length: number): number | undefined;
}

const binding = ((): FadviseBinding | undefined => {
  // The package root is the nearest folder up with a package.json (this file runs from
  // adapters/, dist/adapters/ or dist/bundle/).
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, "package.json"))) {
      try {
        const got = createRequire(import.meta.url)(path.join(dir, "build", "Release", "fadvise.node")) as Partial<FadviseBinding>;
        return typeof got.dropCached === "function" ? (got as FadviseBinding) : undefined;
      } catch {
        return undefined; // not built (no compiler at install, or not Linux)
      }
    }
    if (path.dirname(dir) === dir) return undefined;
  }
})();

/** Whether dropCached can do anything here. */
export const canDropCached = binding !== undefined;

/** Drop the cached pages of `length` bytes of `fd` from `offset` (0: to the end). Never throws. */
export function dropCached(fd: number, offset = 0, length = 0): void {
  binding?.dropCached(fd, offset, length);
}
