/**
 * Multipart uploads as Azure block lists: Put Block (stage) + Put Block List (commit), both
 * sent by blob-requests.ts.
 *
 * Azure has no upload id, so startUpload makes one up (16 random hex chars, no request). Block
 * ids are derived from it and the part number — base64("<uploadId>-<part, 6 digits>"), always
 * 32 characters — so a resumed run stages and commits the very same ids, and every block id we
 * ever use for a blob has the same length (Azure requires that of a blob's uncommitted blocks).
 *
 * abortUpload is a no-op: Azure has no call to drop uncommitted blocks short of deleting the
 * blob (which would also delete a committed blob under that name); they are discarded by the
 * next commit of the blob, or by Azure after 7 days.
 */
import crypto from "node:crypto";
import type { Readable } from "node:stream";
import type { MultipartSteps, ObjectInfo, WriteResult } from "../types.js";
import { MigrateError } from "../../src/errors.js";
import { mapAzureError } from "./errors.js";
import { toAzureMetadata, toHttpHeaders } from "./metadata.js";
import type { BlobRequests } from "./blob-requests.js";

const UPLOAD_ID = /^[0-9a-f]{16}$/;
export const MAX_PARTS = 50_000;
export const MAX_PART_SIZE = 4000 * 1024 * 1024;

export function newUploadId(): string {
  return crypto.randomBytes(8).toString("hex");
}

export function blockId(uploadId: string, partNumber: number): string {
  if (!UPLOAD_ID.test(uploadId)) throw new MigrateError("ConditionNotMatch", `not an Azure upload id from this tool: ${uploadId}`);
  if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > MAX_PARTS) {
    throw new MigrateError("Unsupported", `part number ${partNumber} outside 1..${MAX_PARTS}`);
  }
  return Buffer.from(`${uploadId}-${String(partNumber).padStart(6, "0")}`).toString("base64");
}

/** The adapter pieces multipart and write() need. */
export interface BlobTarget {
  /** The URL of `key`'s blob; throws Unsupported for a key Azure cannot hold. */
  url(key: string): string;
  writes: BlobRequests;
  /** "key a/b" for messages. */
  what(key: string): string;
}

export function multipartSteps(t: BlobTarget): MultipartSteps {
  return {
    async startUpload() {
      return newUploadId();
    },

    async uploadPart(key, uploadId, partNumber, body, md5) {
      const id = blockId(uploadId, partNumber);
      try {
        await t.writes.putBlock(t.url(key), id, body, Buffer.from(md5, "hex"));
      } catch (err) {
        throw mapAzureError(err, `${t.what(key)} part ${partNumber}`);
      }
      return id;
    },

    async completeUpload(key, uploadId, parts, source, wholeMd5) {
      const sorted = [...parts].sort((a, b) => a.partNumber - b.partNumber);
      const ids = sorted.map((p) => blockId(uploadId, p.partNumber));
      const size = sorted.reduce((n, p) => n + p.size, 0);
      return commit(t, key, ids, size, source, wholeMd5);
    },

    async abortUpload() {
      // Nothing to do; see the file comment.
    },
  };
}

async function commit(
  t: BlobTarget,
  key: string,
  ids: string[],
  size: number,
  source: ObjectInfo,
  wholeMd5: string | undefined,
  abortSignal?: AbortSignal,
): Promise<WriteResult> {
  try {
    const res = await t.writes.putBlockList(t.url(key), ids, toHttpHeaders(source, wholeMd5), toAzureMetadata(source, wholeMd5), abortSignal);
    return { size, etag: res.etag };
  } catch (err) {
    throw mapAzureError(err, t.what(key));
  }
}

/**
 * write() for bodies too big for one Put Blob: read `blockSize` chunks, stage up to
 * `concurrency` of them at once (each with its MD5), hash the whole stream on the way, and
 * commit with Content-MD5 and "md5" metadata set. Memory: about (concurrency + 1) × blockSize.
 * Nothing is visible under `key` until the commit.
 */
export async function stagedWrite(
  t: BlobTarget,
  key: string,
  body: Readable,
  source: ObjectInfo,
  opts: { blockSize: number; concurrency: number; abortSignal?: AbortSignal },
): Promise<WriteResult> {
  const uploadId = newUploadId();
  const whole = crypto.createHash("md5");
  const inFlight = new Set<Promise<void>>();
  const ids: string[] = [];
  let failure: unknown;
  let size = 0;
  const stage = (chunk: Buffer, part: number): void => {
    const id = blockId(uploadId, part);
    ids.push(id);
    const md5 = crypto.createHash("md5").update(chunk).digest();
    const p = t.writes
      .putBlock(t.url(key), id, chunk, md5, opts.abortSignal)
      .then(
        () => undefined,
        (err: unknown) => {
          failure ??= mapAzureError(err, `${t.what(key)} block ${part}`);
        },
      )
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  };

  let pending: Buffer[] = [];
  let pendingLen = 0;
  try {
    for await (const data of body) {
      const buf = data as Buffer;
      whole.update(buf);
      size += buf.length;
      pending.push(buf);
      pendingLen += buf.length;
      while (pendingLen >= opts.blockSize) {
        const all = Buffer.concat(pending, pendingLen);
        stage(all.subarray(0, opts.blockSize), ids.length + 1);
        const rest = all.subarray(opts.blockSize);
        pending = rest.length ? [rest] : [];
        pendingLen = rest.length;
        while (inFlight.size >= opts.concurrency) await Promise.race(inFlight);
        if (failure) throw failure;
      }
    }
    // An empty body commits an empty block list: a zero-byte blob (Azure refuses empty blocks).
    if (pendingLen > 0) stage(Buffer.concat(pending, pendingLen), ids.length + 1);
    await Promise.all(inFlight);
    if (failure) throw failure;
  } catch (err) {
    body.destroy();
    await Promise.allSettled(inFlight);
    throw mapAzureError(err, t.what(key));
  }
  if (source.size !== undefined && size !== source.size) {
    throw new MigrateError("Integrity", `${t.what(key)}: read ${size} bytes, source said ${source.size}`, { temporary: true });
  }
  const md5 = whole.digest("hex");
  const res = await commit(t, key, ids, size, source, md5, opts.abortSignal);
  return { ...res, md5 };
}
