/**
 * Progress of one file copy a worker thread makes, shared with the main thread that reports it.
 * Element 0: the bytes written so far, or TEMP_SIZE_IS_PROGRESS. Element 1: who holds it —
 * FREE, REPORTING (the main thread is reporting) or FINISHING (the worker is about to rename the
 * file into place). The handshake makes "no report runs once the file is final" exact: the
 * worker waits out a report in progress before it renames, and no report starts after that.
 */

/** What element 0 holds while the kernel copies (no bytes pass through the worker): the bytes
 * written so far are then the temporary file's size. */
export const TEMP_SIZE_IS_PROGRESS = -1n;

const FREE = 0n;
const REPORTING = 1n;
const FINISHING = 2n;

export type CopyProgress = BigInt64Array;

export function newCopyProgress(): CopyProgress {
  return new BigInt64Array(new SharedArrayBuffer(16));
}

/** Worker: store the bytes written so far. */
export function storeWritten(p: CopyProgress, bytes: bigint): void {
  Atomics.store(p, 0, bytes);
}

/** Main thread: the bytes written so far (or TEMP_SIZE_IS_PROGRESS). */
export function loadWritten(p: CopyProgress): bigint {
  return Atomics.load(p, 0);
}

/**
 * Main thread: run `report` unless the worker is finishing; false if it was. `report` must be
 * short and synchronous: the worker's finishCopy waits for it.
 */
export function reportWhileCopying(p: CopyProgress, report: () => void): boolean {
  if (Atomics.compareExchange(p, 1, FREE, REPORTING) !== FREE) return false;
  try {
    report();
  } finally {
    Atomics.store(p, 1, FREE);
    Atomics.notify(p, 1);
  }
  return true;
}

/** Worker, before the rename into place: waits out a report in progress; none starts after. */
export function finishCopy(p: CopyProgress): void {
  while (Atomics.compareExchange(p, 1, FREE, FINISHING) === REPORTING) Atomics.wait(p, 1, REPORTING, 50);
}
