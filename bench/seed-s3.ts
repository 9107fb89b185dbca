/**
 * An S3 source bucket filled the way most real buckets were: as `aws s3 cp --recursive` writes
 * with its default settings (multipart_threshold 8 MiB, multipart_chunksize 8 MiB,
 * max_concurrent_requests 10), and nothing else.
 *
 * - Objects under 8 MiB: one PutObject, so their ETag is their MD5.
 * - Objects of 8 MiB or more: a multipart upload in 8 MiB parts. Their ETag is the MD5 of the
 *   parts' MD5s, and nothing states their whole MD5.
 * - No user metadata: no "md5" (which cloudmigrate adds to every multipart object it writes)
 *   and no "mtime".
 * A bucket seeded by cloudmigrate itself would hand it the whole MD5 of every large object,
 * which a bucket written by other tools does not.
 */
import fs from "node:fs";
import path from "node:path";
import pLimit from "p-limit";
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { MiB, type Workload } from "./options.js";
import { keyOf } from "./sources.js";
import { s3ClientFor } from "../tests/emulators/minio.js";
import { mapS3Error, type S3ErrorContext } from "../adapters/s3/errors.js";
import { withRetry } from "../src/retry.js";

/** The AWS CLI's defaults. */
export const AWS_CLI = { threshold: 8 * MiB, partSize: 8 * MiB, concurrency: 10 } as const;

/** A client that adds no checksums S3 does not require, so objects carry none (as the AWS CLI's did). */
export const plainS3Client = (env: Record<string, string>): S3Client =>
  s3ClientFor(env, { requestChecksumCalculation: "WHEN_REQUIRED", responseChecksumValidation: "WHEN_REQUIRED" });

/**
 * One request, retried as the engine retries (only errors mapped as temporary, with backoff).
 * MinIO now and then answers a whole PUT with 400 IncompleteBody, "You did not provide the number
 * of bytes specified by the Content-Length HTTP header" (minio/minio#21425); the SDK does not
 * retry a 400, and one such answer cost the full run of 2026-12-02 its 1 GiB S3→Azure case.
 */
function sendRetried<T>(ctx: S3ErrorContext, send: () => Promise<T>): Promise<T> {
  return withRetry({ attempts: 3, baseDelayMs: 200, maxDelayMs: 2_000 }, () =>
    send().catch((err: unknown) => {
      throw mapS3Error(err, ctx);
    }),
  );
}

/** Read `length` bytes of `file` at `offset`. */
function readAt(file: string, offset: number, length: number): Buffer {
  const fd = fs.openSync(file, "r");
  try {
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const n = fs.readSync(fd, buf, got, length - got, offset + got);
      if (n === 0) throw new Error(`${file}: ended at ${offset + got}, expected ${offset + length}`);
      got += n;
    }
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

/** Upload the workload's local tree `dir` to `bucket` as the AWS CLI would (see the file comment). */
export async function seedLikeAwsCli(env: Record<string, string>, bucket: string, dir: string, w: Workload): Promise<void> {
  const s3 = plainS3Client(env);
  const limit = pLimit(AWS_CLI.concurrency);
  try {
    const uploads: Promise<unknown>[] = [];
    for (let i = 0; i < w.count; i++) {
      const key = keyOf(i, w.count);
      const file = path.join(dir, ...key.split("/"));
      const size = fs.statSync(file).size;
      if (size < AWS_CLI.threshold) {
        uploads.push(limit(() => sendRetried({ op: "PutObject", bucket, key }, () => s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: readAt(file, 0, size) })))));
        continue;
      }
      uploads.push(
        (async () => {
          const { UploadId } = await limit(() => s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key })));
          const parts: Promise<{ PartNumber: number; ETag?: string }>[] = [];
          for (let n = 1, off = 0; off < size; n++, off += AWS_CLI.partSize) {
            const [part, at, len] = [n, off, Math.min(AWS_CLI.partSize, size - off)];
            parts.push(
              limit(async () => {
                const body = readAt(file, at, len);
                const r = await sendRetried({ op: "UploadPart", bucket, key }, () => s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: part, Body: body })));
                return { PartNumber: part, ETag: r.ETag };
              }),
            );
          }
          const done = await Promise.all(parts);
          await limit(() => sendRetried({ op: "CompleteMultipartUpload", bucket, key }, () => s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: done } }))));
        })(),
      );
    }
    await Promise.all(uploads);
  } finally {
    s3.destroy();
  }
}
