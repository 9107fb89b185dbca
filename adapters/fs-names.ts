/**
 * Names the filesystem adapter gives its temporary files, shared by the adapter and its worker
 * threads (a worker works out the name itself, so the main thread hashes nothing per file).
 */
import crypto from "node:crypto";
import path from "node:path";

/**
 * Prefix of our temporary files; never listed, so an interrupted write leaves nothing visible.
 * The name is derived from the final name, so the retry or resume of an interrupted write reuses
 * (truncates) the same temporary file instead of leaving one behind.
 */
export const TEMP_PREFIX = ".cloudmigrate-tmp-";

/** The temporary file, in the same folder, that `finalPath` is written to before its rename. */
export function tempNameFor(finalPath: string): string {
  const digest = crypto.createHash("sha256").update(path.basename(finalPath)).digest("hex").slice(0, 24);
  return path.join(path.dirname(finalPath), TEMP_PREFIX + digest);
}
