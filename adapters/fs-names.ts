/**
 * Names the filesystem adapter gives its temporary files, shared by the adapter and its worker
 * threads (a worker works out the name itself, so the main thread computes nothing per file).
 */
import crypto from "node:crypto";
import path from "node:path";

/**
 * Prefix of our temporary files; never listed, so an interrupted write leaves nothing visible.
 * The name is derived from the final name, so the retry or resume of an interrupted write reuses
 * (truncates) the same temporary file instead of leaving one behind.
 */
export const TEMP_PREFIX = ".cloudmigrate-tmp-";

/**
 * Longest final name (UTF-8 bytes) kept as it is in its temporary name. Longer ones are hashed,
 * so a temporary name never runs past a filesystem's name limit where its final name fits.
 */
const PLAIN_MAX_BYTES = 100;

/**
 * The temporary file, in the same folder, that `finalPath` is written to before its rename:
 * the prefix, "_" and the name itself, or a SHA-256 of a long name. Keys with a segment that
 * starts with the prefix are refused, so no final name is ever a temporary one; and "_" is no
 * hex digit, so a kept name never meets a hashed one or a partial upload's.
 */
export function tempNameFor(finalPath: string): string {
  const cut = Math.max(finalPath.lastIndexOf("/"), finalPath.lastIndexOf(path.sep)) + 1;
  const name = finalPath.slice(cut);
  // A UTF-16 unit is at most 3 bytes in UTF-8, so short names need no count. Hashing every
  // name cost about 80 ms of thread CPU per 10,000 files (a fresh process, as a run is).
  if (name.length * 3 <= PLAIN_MAX_BYTES || Buffer.byteLength(name) <= PLAIN_MAX_BYTES) return finalPath.slice(0, cut) + TEMP_PREFIX + "_" + name;
  return hashedTempName(finalPath);
}

/**
 * The prefix and 24 hex digits of the name's SHA-256, as every temporary name was before short
 * names kept theirs. Partial uploads into a local file keep this form: a resumed job works their
 * path out again from the key and the recorded upload id, so it must not change between builds.
 */
export function hashedTempName(finalPath: string): string {
  const digest = crypto.createHash("sha256").update(path.basename(finalPath)).digest("hex").slice(0, 24);
  return path.join(path.dirname(finalPath), TEMP_PREFIX + digest);
}
