/**
 * The "bare SDK loop" baseline: one large object copied with nothing but the service SDK's
 * plainest call, no checkpoint, no hashing, no verification — the ceiling a careful tool can
 * approach against the same emulator. Run as its own process so its wall time and peak RSS are
 * measured like the tools'.
 *
 *   node dist/bench/sdk-baseline.js FROM TO PART_SIZE CONCURRENCY
 *     FROM: fs:/abs/file | s3:bucket/key | gs:bucket/key | az:container/key
 *     TO: s3:bucket/key (from fs, gs or az) | az:container/key | gs:bucket/key (from s3)
 *
 * What each destination does:
 * - s3: @aws-sdk/client-s3 multipart — CreateMultipartUpload, PART_SIZE parts, CONCURRENCY
 *   UploadPart calls in flight, CompleteMultipartUpload (no Content-MD5, SDK checksums off as in
 *   our adapter). Endpoint and keys from AWS_* env. Each part is read before it is sent: with a
 *   positioned fs read (its pages then dropped from the page cache, as cloudmigrate and rclone
 *   drop a local source's), or by the source SDK's plainest ranged read into a Buffer
 *   (File.download({start, end}) for GCS, BlockBlobClient.downloadToBuffer for Azure).
 * - az: @azure/storage-blob BlockBlobClient.uploadStream(body, PART_SIZE, CONCURRENCY) from a
 *   single S3 GetObject stream. AZURE_STORAGE_CONNECTION_STRING.
 * - gs: @google-cloud/storage file.createWriteStream({ resumable: false, validation: false })
 *   fed by a single S3 GetObject stream (one streaming upload request). STORAGE_EMULATOR_HOST.
 *
 * Prints one JSON line: {"bytes": N}.
 */
import fs from "node:fs";
import { Readable, pipeline } from "node:stream";
import { promisify } from "node:util";
import { dropCached } from "../adapters/fs-cache.js";
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";

const pipe = promisify(pipeline);

function split(spec: string): { kind: string; bucket: string; key: string } {
  const m = /^(fs|s3|az|gs):(.*)$/.exec(spec);
  if (!m) throw new Error(`bad location ${spec}`);
  if (m[1] === "fs") return { kind: "fs", bucket: "", key: m[2] };
  const slash = m[2].indexOf("/");
  return { kind: m[1], bucket: m[2].slice(0, slash), key: m[2].slice(slash + 1) };
}

function s3Client(): S3Client {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
  return new S3Client({
    endpoint: process.env.AWS_ENDPOINT_URL,
    region: process.env.AWS_REGION ?? "us-east-1",
    forcePathStyle: true,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

/** Reads `length` bytes at `start` of the source object. */
type ReadPart = (start: number, length: number) => Promise<Buffer>;

/** The source object's size and a ranged reader, through its own SDK. */
async function sourceReader(from: { kind: string; bucket: string; key: string }): Promise<{ size: number; readPart: ReadPart; done: () => Promise<void> }> {
  if (from.kind === "fs") {
    const fh = await fs.promises.open(from.key, "r");
    const readPart: ReadPart = async (start, length) => {
      const body = Buffer.allocUnsafe(length);
      await fh.read(body, 0, length, start);
      dropCached(fh.fd, start, length);
      return body;
    };
    return { size: (await fh.stat()).size, readPart, done: () => fh.close() };
  }
  if (from.kind === "gs") {
    const { Storage } = await import("@google-cloud/storage");
    // With STORAGE_EMULATOR_HOST in the environment the library drops "/storage/v1" from its
    // JSON API URLs (404 on fake-gcs-server); the same endpoint given as apiEndpoint works.
    const endpoint = process.env.STORAGE_EMULATOR_HOST;
    delete process.env.STORAGE_EMULATOR_HOST;
    const file = new Storage({ projectId: "test", apiEndpoint: endpoint }).bucket(from.bucket).file(from.key);
    const [meta] = await file.getMetadata();
    const readPart: ReadPart = async (start, length) => (await file.download({ start, end: start + length - 1, validation: false }))[0];
    return { size: Number(meta.size), readPart, done: async () => undefined };
  }
  if (from.kind === "az") {
    const { BlobServiceClient } = await import("@azure/storage-blob");
    const blob = BlobServiceClient.fromConnectionString(process.env.AZURE_STORAGE_CONNECTION_STRING!).getContainerClient(from.bucket).getBlockBlobClient(from.key);
    const size = (await blob.getProperties()).contentLength ?? 0;
    return { size, readPart: (start, length) => blob.downloadToBuffer(start, length), done: async () => undefined };
  }
  throw new Error(`no ranged reader for ${from.kind}`);
}

async function s3Multipart(from: { kind: string; bucket: string; key: string }, bucket: string, key: string, partSize: number, concurrency: number): Promise<number> {
  const s3 = s3Client();
  const { size, readPart, done } = await sourceReader(from);
  try {
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    const count = Math.max(1, Math.ceil(size / partSize));
    const etags: string[] = new Array(count);
    let next = 0;
    const worker = async () => {
      for (let n = next++; n < count; n = next++) {
        const start = n * partSize;
        const len = Math.min(partSize, size - start);
        const body = await readPart(start, len);
        const r = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: n + 1, Body: body, ContentLength: len }));
        etags[n] = r.ETag!;
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId,
        MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
      }),
    );
    return size;
  } finally {
    await done();
    s3.destroy();
  }
}

async function s3Stream(bucket: string, key: string): Promise<{ body: Readable; size: number; done: () => void }> {
  const s3 = s3Client();
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return { body: r.Body as Readable, size: r.ContentLength ?? 0, done: () => s3.destroy() };
}

async function main(): Promise<void> {
  const [fromSpec, toSpec, partSizeArg, concurrencyArg] = process.argv.slice(2);
  const from = split(fromSpec);
  const to = split(toSpec);
  const partSize = Number(partSizeArg);
  const concurrency = Number(concurrencyArg);
  let bytes: number;
  if (to.kind === "s3" && from.kind !== "s3") {
    bytes = await s3Multipart(from, to.bucket, to.key, partSize, concurrency);
  } else if (from.kind === "s3" && to.kind === "az") {
    const { BlobServiceClient } = await import("@azure/storage-blob");
    const src = await s3Stream(from.bucket, from.key);
    const blob = BlobServiceClient.fromConnectionString(process.env.AZURE_STORAGE_CONNECTION_STRING!)
      .getContainerClient(to.bucket)
      .getBlockBlobClient(to.key);
    await blob.uploadStream(src.body, partSize, concurrency);
    src.done();
    bytes = src.size;
  } else if (from.kind === "s3" && to.kind === "gs") {
    const { Storage } = await import("@google-cloud/storage");
    const storage = new Storage({ projectId: "test", apiEndpoint: process.env.STORAGE_EMULATOR_HOST });
    const src = await s3Stream(from.bucket, from.key);
    await pipe(src.body, storage.bucket(to.bucket).file(to.key).createWriteStream({ resumable: false, validation: false }));
    src.done();
    bytes = src.size;
  } else {
    throw new Error(`no baseline for ${from.kind} → ${to.kind}`);
  }
  process.stdout.write(JSON.stringify({ bytes }) + "\n");
}

main().catch((err: unknown) => {
  process.stderr.write(`sdk-baseline: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
