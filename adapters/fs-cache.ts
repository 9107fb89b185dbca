/**
 * Page-cache hygiene for local files: bytes read for a copy are read once, so after the last read
 * of a range the kernel is told they will not be needed again (POSIX_FADV_DONTNEED), as rclone's
 * local backend does. A migration of terabytes then does not push everything the machine had
 * cached out of memory, and the memory its reads took is free again at once.
 *
 * Advisory only. Dirty pages and pages another process has mapped stay; where the native binding
 * is missing (not POSIX, or it failed to build at install) nothing happens.
 */
import { createRequire } from "node:module";

interface FadviseBinding {
  posix_fadvise(fd: number, offset: number, length: number, advice: number): number;
  POSIX_FADV_DONTNEED: number;
  /** Set by the package when its native part did not load (its functions then do nothing). */
  failed_to_load?: boolean;
}

const binding = ((): FadviseBinding | undefined => {
  try {
    const got = createRequire(import.meta.url)("fadvise") as FadviseBinding;
    return got.failed_to_load ? undefined : got;
  } catch {
    return undefined;
  }
})();

/** Whether dropCached can do anything here. */
export const canDropCached = binding !== undefined;

/** Drop the cached pages of `length` bytes of `fd` from `offset` (0: to the end). Never throws. */
export function dropCached(fd: number, offset = 0, length = 0): void {
  binding?.posix_fadvise(fd, offset, length, binding.POSIX_FADV_DONTNEED);
}
