/**
 * Page-cache hygiene for local files: bytes read for a copy are read once, so after the last read
 * of a range the kernel is told they will not be needed again (POSIX_FADV_DONTNEED), as rclone's
 * local backend does. A migration of terabytes then does not push everything the machine had
 * cached out of memory, and the memory its reads took is free again at once.
 *
 * Advisory only. Dirty pages and pages another process has mapped stay; where the native binding
 * is missing (not Linux, or no compiler at install) nothing happens. Our own few lines of C
 * (native/fadvise.c) rather than the npm package fadvise: its C++ wrapper turns a call refused
 * while a file thread is torn down (a process exiting as its threads load it) into a fatal error
 * of the process.
 */
import { fsNative } from "../src/native.js";

const drop = fsNative.dropCached;

/** Whether dropCached can do anything here. */
export const canDropCached = drop !== undefined;

/** Drop the cached pages of `length` bytes of `fd` from `offset` (0: to the end). Never throws. */
export function dropCached(fd: number, offset = 0, length = 0): void {
  drop?.(fd, offset, length);
}
