/** Making a file's folder on demand, for the filesystem adapter's worker threads. */
import fs from "node:fs";
import path from "node:path";

/**
 * `create()` makes `file`; when it fails with ENOENT (and not for `otherCause`), file's folder is
 * made and `create()` runs once more. The folder is made, and `create()` retried, even when the
 * folder exists by then: another thread writing into the same new folder may have made it since
 * `create()` failed.
 */
export function inItsFolder<T>(file: string, create: () => T, otherCause?: () => boolean): T {
  try {
    return create();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT" || otherCause?.()) throw err;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    return create();
  }
}
