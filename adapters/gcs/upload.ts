/**
 * Single-request uploads (JSON API `uploadType=multipart`): one multipart/related body with the
 * object resource (name, headers, metadata, optional md5Hash for GCS to verify) followed by the
 * bytes, streamed. GCS makes the object visible only once all bytes arrived, so a failed upload
 * leaves nothing under the name.
 *
 * When the size is known the exact Content-Length is sent (no chunked encoding), and a body that
 * yields a different number of bytes fails the request instead of storing a wrong object.
 */
import crypto from "node:crypto";
import { Readable } from "node:stream";
import { MigrateError } from "../../src/errors.js";
import type { GcsHttp } from "./http.js";
import type { GcsObject } from "./objects.js";
import { OBJECT_FIELDS } from "./objects.js";

export interface UploadArgs {
  bucket: string;
  name: string;
  /** Resource fields: contentType, cacheControl, metadata, md5Hash... */
  resource: Record<string, unknown>;
  body: Readable | Buffer;
  /** Expected byte count of `body`, if known. */
  size?: number;
  signal?: AbortSignal;
}

/** Upload one object in one request; returns the stored object's resource. */
export async function uploadObject(http: GcsHttp, a: UploadArgs): Promise<GcsObject> {
  // randomUUID draws on a cached entropy pool: 0.7 µs a call against randomBytes' 4.7 µs.
  const boundary = "cloudmigrate-" + crypto.randomUUID();
  const mediaType = typeof a.resource.contentType === "string" ? a.resource.contentType : "application/octet-stream";
  const head = Buffer.from(
    `--${boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n` +
      JSON.stringify({ ...a.resource, name: a.name }) +
      `\r\n--${boundary}\r\nContent-Type: ${mediaType}\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const size = Buffer.isBuffer(a.body) ? a.body.length : a.size;
  const known = size !== undefined && Number.isSafeInteger(size) && size >= 0;

  let body: Buffer[] | Readable;
  if (Buffer.isBuffer(a.body)) {
    body = [head, a.body, tail]; // not concatenated: a 64 MiB part would be copied whole
  } else {
    body = Readable.from(framed(head, a.body, tail, known ? size : undefined, a.bucket, a.name), {
      objectMode: false,
    });
  }
  return http.json<GcsObject>({
    method: "POST",
    path: `/upload/storage/v1/b/${encodeURIComponent(a.bucket)}/o`,
    query: { uploadType: "multipart", name: a.name, projection: "noAcl", fields: OBJECT_FIELDS },
    headers: { "content-type": `multipart/related; boundary=${boundary}` },
    body,
    contentLength: known && !Array.isArray(body) ? head.length + (size as number) + tail.length : undefined,
    signal: a.signal,
  });
}

/** head, then the body's bytes (checked against `expected`), then tail. */
async function* framed(
  head: Buffer,
  body: Readable,
  tail: Buffer,
  expected: number | undefined,
  bucket: string,
  name: string,
): AsyncGenerator<Buffer> {
  yield head;
  let n = 0;
  for await (const chunk of body) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    n += buf.length;
    if (expected !== undefined && n > expected) throw sizeMismatch(bucket, name, expected, `more than ${expected}`);
    yield buf;
  }
  if (expected !== undefined && n !== expected) throw sizeMismatch(bucket, name, expected, String(n));
  yield tail;
}

function sizeMismatch(bucket: string, name: string, expected: number, got: string): MigrateError {
  return new MigrateError(
    "Integrity",
    `gs://${bucket}/${name}: source gave ${got} bytes, expected ${expected}; upload abandoned`,
    { temporary: true },
  );
}
