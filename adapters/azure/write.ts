/**
 * write(): one Put Blob whenever the size allows, block lists only for very large bodies.
 *
 *  - size ≤ bufferMax (2 MiB): the body is read into memory, its MD5 computed (and compared with the
 *    caller's md5 when given) and sent as Content-MD5, so Azure rejects damaged bytes; one request.
 *  - size ≤ streamPutMax (256 MiB): one streaming Put Blob with Content-Length = source.size (and the
 *    caller's md5 as Content-MD5 when known). A body longer or shorter than announced aborts the
 *    request, so no wrong object appears.
 *  - larger: staged blocks + commit (multipart.ts stagedWrite).
 * Put Blob responses carry the Content-MD5 Azure computed; we report it as md5.
 * A Put Blob is atomic: nothing is visible under `key` unless the whole body arrived.
 */
import crypto from "node:crypto";
import { Transform, pipeline, type Readable } from "node:stream";
import type { ObjectInfo, WriteOptions, WriteResult } from "../types.js";
import { MigrateError } from "../../src/errors.js";
import { mapAzureError } from "./errors.js";
import { hex, toAzureMetadata, toHttpHeaders } from "./metadata.js";
import { stagedWrite, type BlobTarget } from "./multipart.js";

const MiB = 1024 * 1024;

/** Size thresholds of write(); tests shrink them to reach every path with small bodies. */
export interface WriteLimits {
  /** Bodies up to this size are buffered and sent with their MD5. */
  bufferMax: number;
  /** Bodies up to this size go in one streaming Put Blob. */
  streamPutMax: number;
  /** Block size and parallel blocks for larger bodies (memory ≈ (concurrency + 1) × blockSize). */
  blockSize: number;
  blockConcurrency: number;
}

export const DEFAULT_WRITE_LIMITS: Readonly<WriteLimits> = Object.freeze({
  bufferMax: 2 * MiB,
  streamPutMax: 256 * MiB,
  blockSize: 16 * MiB,
  blockConcurrency: 4,
});

export async function writeBlob(
  t: BlobTarget,
  key: string,
  body: Readable,
  source: ObjectInfo,
  opts: WriteOptions = {},
  limits: WriteLimits = DEFAULT_WRITE_LIMITS,
): Promise<WriteResult> {
  const size = source.size;
  if (size === undefined || size > limits.streamPutMax) {
    const staged = { blockSize: limits.blockSize, concurrency: limits.blockConcurrency, abortSignal: opts.abortSignal };
    return stagedWrite(t, key, body, source, staged);
  }
  if (size <= limits.bufferMax) return bufferedPut(t, key, body, source, opts);
  return streamingPut(t, key, body, source, opts);
}

/** One Put Blob of `data` (`size` bytes), checked by Azure against `md5` (hex) if given. */
async function put(t: BlobTarget, key: string, data: Buffer | Readable, size: number, source: ObjectInfo, md5: string | undefined, signal: AbortSignal | undefined): Promise<WriteResult> {
  try {
    const md5Bytes = md5 ? Buffer.from(md5, "hex") : undefined;
    const res = await t.writes.putBlob(t.url(key), data, size, toHttpHeaders(source), toAzureMetadata(source), md5Bytes, signal);
    return { size, md5: hex(res.contentMD5), etag: res.etag };
  } catch (err) {
    throw mapAzureError(err, t.what(key));
  }
}

async function bufferedPut(t: BlobTarget, key: string, body: Readable, source: ObjectInfo, opts: WriteOptions): Promise<WriteResult> {
  const chunks: Buffer[] = [];
  let len = 0;
  try {
    for await (const c of body) {
      chunks.push(c as Buffer);
      len += (c as Buffer).length;
      if (len > source.size) break;
    }
  } catch (err) {
    throw mapAzureError(err, t.what(key));
  }
  if (len !== source.size) {
    body.destroy();
    throw sizeError(t, key, len > source.size ? `more than ${source.size}` : String(len), source.size);
  }
  const data = Buffer.concat(chunks, len);
  const md5 = crypto.createHash("md5").update(data).digest("hex");
  if (opts.md5 && opts.md5.toLowerCase() !== md5) {
    throw new MigrateError("Integrity", `${t.what(key)}: body MD5 ${md5} differs from the source's ${opts.md5}`, { temporary: true });
  }
  return put(t, key, data, len, source, md5, opts.abortSignal);
}

function sizeError(t: BlobTarget, key: string, got: string, want: number): MigrateError {
  return new MigrateError("Integrity", `${t.what(key)}: body has ${got} bytes, source said ${want}`, { temporary: true });
}

async function streamingPut(t: BlobTarget, key: string, body: Readable, source: ObjectInfo, opts: WriteOptions): Promise<WriteResult> {
  const size = source.size;
  const ac = new AbortController();
  const onAbort = (): void => ac.abort();
  opts.abortSignal?.addEventListener("abort", onAbort, { once: true });
  let bodyError: unknown;
  let seen = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      cb(seen > size ? sizeError(t, key, `more than ${size}`, size) : null, chunk);
    },
    flush(cb) {
      cb(seen !== size ? sizeError(t, key, String(seen), size) : null);
    },
  });
  // A failing body must abort the request, which would wait for the rest of it.
  pipeline(body, counted, (err) => {
    if (err) {
      bodyError ??= err;
      ac.abort();
    }
  });
  try {
    return await put(t, key, counted, size, source, opts.md5, ac.signal);
  } catch (err) {
    // The service may have answered before reading the body: release the source stream.
    counted.destroy();
    throw bodyError ? mapAzureError(bodyError, t.what(key)) : err;
  } finally {
    opts.abortSignal?.removeEventListener("abort", onAbort);
  }
}
