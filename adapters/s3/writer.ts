/**
 * Writing objects: a streaming single PutObject, and the four multipart steps.
 *
 * Verification:
 * - PutObject sends Content-MD5 when the caller knows the digest, or else a whole body's CRC32C
 *   when the caller gives one (S3 rejects a mismatching body), and reports the ETag as md5 (a
 *   single-request ETag is the body's MD5, computed by S3).
 * - Uploads are created with ChecksumAlgorithm CRC32C: each UploadPart sends the part's CRC32C
 *   (hardware-fast, where an MD5 is a full pass on one core), which S3 checks on arrival, and
 *   CompleteMultipartUpload names every part's CRC32C, which S3 checks against what it holds.
 * - CompleteMultipartUpload's ETag is checked against md5(concat(part ETags))-N, proving S3
 *   assembled exactly the parts we meant.
 *
 * The whole-object md5 of a multipart object ends up in user metadata "md5":
 * - when the source already knows its md5, it is stored at CreateMultipartUpload (free), and
 *   completeUpload refuses to complete if the bytes sent hash to something else;
 * - otherwise S3 cannot add metadata at completion, so the object is copied onto itself
 *   (CopyObject, MetadataDirective REPLACE, If-Match the assembled ETag) with the md5 added.
 *   MinIO does that as a metadata-only update; AWS copies server-side (no bytes through us) and
 *   returns a plain-MD5 ETag, which is then checked against the md5 we computed. Above the 5 GiB
 *   CopyObject limit the md5 is not stored (the write result still carries the verified md5).
 */
import { Transform, pipeline, type Readable, type TransformCallback } from "node:stream";
import type { S3Client } from "@aws-sdk/client-s3";
import { sdk } from "./sdk.js";
import type { MultipartSteps, ObjectInfo, WriteOptions, WriteResult } from "../types.js";
import { CantDoThatHere, MigrateError, afterFailedCheck, toMigrateError } from "../../src/errors.js";
import { mapS3Error } from "./errors.js";
import { cleanEtag, infoFromHeaders, isHexMd5, md5FromEtag, writeHeaders, type S3WriteHeaders } from "./meta.js";
import type { LeanS3 } from "./lean.js";
import { md5Hex, md5OfPartMd5s } from "../../src/hashing.js";

export const MAX_SINGLE_PUT = 5 * 1024 ** 3;

function md5Base64(hex: string): string {
  return Buffer.from(hex, "hex").toString("base64");
}

/** Passes exactly `size` bytes through; errors if the body is longer or shorter. */
class ExactLength extends Transform {
  private seen = 0;
  constructor(
    private readonly size: number,
    private readonly what: string,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.size) cb(this.mismatch("more"));
    else cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    cb(this.seen === this.size ? null : this.mismatch("fewer"));
  }
  private mismatch(how: string): MigrateError {
    return new MigrateError("Integrity", `${this.what}: body has ${how} bytes than the ${this.size} expected (source changed?)`, {
      temporary: true,
    });
  }
}

/** PutObject's header fields as the HTTP headers S3 takes (content headers, x-amz-meta-*). */
function rawHeaders(h: S3WriteHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  if (h.ContentType !== undefined) out["content-type"] = h.ContentType;
  if (h.CacheControl !== undefined) out["cache-control"] = h.CacheControl;
  if (h.ContentEncoding !== undefined) out["content-encoding"] = h.ContentEncoding;
  if (h.ContentDisposition !== undefined) out["content-disposition"] = h.ContentDisposition;
  if (h.ContentLanguage !== undefined) out["content-language"] = h.ContentLanguage;
  for (const [k, v] of Object.entries(h.Metadata)) out[`x-amz-meta-${k}`] = v;
  return out;
}

/** The multipart ETag S3 computes from the parts' MD5s (meta.ts's multipartEtag reads one back). */
export function expectedMultipartEtag(partMd5s: string[]): string {
  return `${md5OfPartMd5s(partMd5s)}-${partMd5s.length}`;
}

export class S3Writer implements MultipartSteps {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    /** Location key → full S3 key. */
    private readonly fullKey: (key: string) => string,
    /** Small PUTs without the SDK's middleware, once it knows where to send them. */
    private readonly lean?: LeanS3,
  ) {}

  /** Stream `body` (exactly source.size bytes) to one PutObject. */
  async write(key: string, body: Readable, source: ObjectInfo, opts: WriteOptions = {}): Promise<WriteResult> {
    const Key = this.fullKey(key);
    const ctx = { op: "PutObject", bucket: this.bucket, key: Key };
    const size = source.size;
    const want = opts.md5?.toLowerCase();
    if (size > MAX_SINGLE_PUT) {
      body.destroy();
      throw new CantDoThatHere(`PutObject s3://${this.bucket}/${Key}: ${size} bytes exceeds the 5 GiB single-request limit; use multipart`);
    }
    if (opts.whole && opts.whole.length === size) return this.putWhole(Key, opts.whole, source, want, opts.crc32c);
    const ac = new AbortController();
    const onAbort = () => ac.abort(opts.abortSignal?.reason);
    if (opts.abortSignal?.aborted) onAbort();
    opts.abortSignal?.addEventListener("abort", onAbort, { once: true });
    let bodyError: unknown;
    const counted = new ExactLength(size, `PutObject s3://${this.bucket}/${Key}`);
    // pipeline destroys both streams on failure; aborting the request stops S3 waiting for bytes.
    pipeline(body, counted, (err) => {
      if (err && bodyError === undefined) {
        bodyError = err;
        ac.abort(err);
      }
    });
    try {
      const out = await this.client.send(
        new sdk.PutObjectCommand({
          Bucket: this.bucket,
          Key,
          Body: counted,
          ContentLength: size,
          ContentMD5: isHexMd5(want) ? md5Base64(want) : undefined,
          ...writeHeaders(source),
        }),
        { abortSignal: ac.signal },
      );
      const etag = cleanEtag(out.ETag);
      const md5 = md5FromEtag(etag, out.ServerSideEncryption, out.SSECustomerAlgorithm);
      if (md5 && isHexMd5(want) && md5 !== want) {
        throw new MigrateError("Integrity", `PutObject s3://${this.bucket}/${Key}: stored md5 ${md5} != expected ${want}`, {
          temporary: true,
        });
      }
      return { size, md5, etag };
    } catch (err) {
      if (bodyError !== undefined) throw toMigrateError(bodyError);
      if (!body.destroyed) body.destroy();
      if (err instanceof MigrateError) throw err;
      throw mapS3Error(err, ctx);
    } finally {
      opts.abortSignal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * A body already in memory: one PutObject with the Buffer itself (no stream plumbing), with
   * its MD5 if known, else its CRC32C if given (S3 checks either on arrival).
   */
  private async putWhole(Key: string, Body: Buffer, source: ObjectInfo, want: string | undefined, crc32c: string | undefined): Promise<WriteResult> {
    const byCrc = !isHexMd5(want) && crc32c !== undefined;
    let out: { ETag?: string; ServerSideEncryption?: string; SSECustomerAlgorithm?: string; ChecksumCRC32C?: string };
    try {
      if (this.lean?.ready) {
        // The lean path always sends a checksum: it is what makes S3 check the body.
        const check: Record<string, string> = byCrc ? { "x-amz-checksum-crc32c": crc32c } : { "content-md5": md5Base64(isHexMd5(want) ? want : md5Hex(Body)) };
        const r = await this.lean.put(Key, Body, { ...rawHeaders(writeHeaders(source)), ...check });
        out = { ETag: r.etag, ServerSideEncryption: r.serverSideEncryption, SSECustomerAlgorithm: r.sseCustomerAlgorithm, ChecksumCRC32C: r.checksumCrc32c };
      } else out = await this.client.send(
        new sdk.PutObjectCommand({
          Bucket: this.bucket,
          Key,
          Body,
          ContentLength: Body.length,
          ContentMD5: isHexMd5(want) ? md5Base64(want) : undefined,
          ChecksumCRC32C: byCrc ? crc32c : undefined,
          ...writeHeaders(source),
        }),
      );
    } catch (err) {
      throw mapS3Error(err, { op: "PutObject", bucket: this.bucket, key: Key });
    }
    if (byCrc && out.ChecksumCRC32C && out.ChecksumCRC32C !== crc32c) {
      throw new MigrateError("Integrity", `PutObject s3://${this.bucket}/${Key}: stored crc32c ${out.ChecksumCRC32C} != sent ${crc32c}`, { temporary: true });
    }
    const etag = cleanEtag(out.ETag);
    const md5 = md5FromEtag(etag, out.ServerSideEncryption, out.SSECustomerAlgorithm);
    if (md5 && isHexMd5(want) && md5 !== want) {
      throw new MigrateError("Integrity", `PutObject s3://${this.bucket}/${Key}: stored md5 ${md5} != expected ${want}`, { temporary: true });
    }
    return { size: Body.length, md5, etag, crc32c: byCrc ? out.ChecksumCRC32C : undefined };
  }

  /** `partSize` is not needed by S3 (parts are sized per request). */
  async startUpload(key: string, source: ObjectInfo, _partSize?: number): Promise<string> {
    const Key = this.fullKey(key);
    try {
      const out = await this.client.send(
        new sdk.CreateMultipartUploadCommand({
          Bucket: this.bucket,
          Key,
          // Parts carry CRC32Cs (capability partChecksum): no MD5 pass per part on our side.
          ChecksumAlgorithm: "CRC32C",
          ...writeHeaders(source, isHexMd5(source.md5) ? source.md5 : undefined),
        }),
      );
      if (!out.UploadId) throw new MigrateError("Unexpected", `CreateMultipartUpload s3://${this.bucket}/${Key}: no UploadId returned`);
      return out.UploadId;
    } catch (err) {
      throw mapS3Error(err, { op: "CreateMultipartUpload", bucket: this.bucket, key: Key });
    }
  }

  /** `crc32c`: the part's CRC32C (base64), which S3 checks on arrival. */
  async uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer, crc32c: string): Promise<string> {
    const Key = this.fullKey(key);
    const ctx = { op: `UploadPart #${partNumber}`, bucket: this.bucket, key: Key };
    let out;
    try {
      out = await this.client.send(
        new sdk.UploadPartCommand({
          Bucket: this.bucket,
          Key,
          UploadId: uploadId,
          PartNumber: partNumber,
          Body: body,
          ContentLength: body.length,
          ChecksumCRC32C: crc32c,
        }),
      );
    } catch (err) {
      throw mapS3Error(err, ctx);
    }
    const etag = cleanEtag(out.ETag);
    if (!etag) throw new MigrateError("Unexpected", `${ctx.op} s3://${this.bucket}/${Key}: no ETag returned`, { temporary: true });
    if (out.ChecksumCRC32C && out.ChecksumCRC32C !== crc32c) {
      throw new MigrateError("Integrity", `${ctx.op} s3://${this.bucket}/${Key}: stored crc32c ${out.ChecksumCRC32C} != sent ${crc32c}`, { temporary: true });
    }
    return etag;
  }

  async completeUpload(
    key: string,
    uploadId: string,
    parts: { partNumber: number; etag: string; size: number; checksum: string }[],
    source: ObjectInfo,
    wholeMd5: string | undefined,
  ): Promise<WriteResult> {
    const Key = this.fullKey(key);
    const where = `CompleteMultipartUpload s3://${this.bucket}/${Key}`;
    const md5 = wholeMd5?.toLowerCase();
    // The "md5" metadata was fixed at start from source.md5: the bytes must hash to it.
    if (isHexMd5(source.md5) && md5 && source.md5 !== md5) {
      throw new MigrateError("Integrity", `${where}: uploaded bytes have md5 ${wholeMd5}, the source said ${source.md5}`, { temporary: true });
    }
    const sorted = [...parts].sort((a, b) => a.partNumber - b.partNumber);
    const size = sorted.reduce((n, p) => n + p.size, 0);
    const partEtags = sorted.map((p) => cleanEtag(p.etag) ?? "");
    const expected = partEtags.every((e) => isHexMd5(e.toLowerCase())) ? expectedMultipartEtag(partEtags) : undefined;
    let out;
    try {
      out = await this.client.send(
        new sdk.CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key,
          UploadId: uploadId,
          MultipartUpload: {
            Parts: sorted.map((p, i) => ({ PartNumber: p.partNumber, ETag: `"${partEtags[i]}"`, ChecksumCRC32C: p.checksum })),
          },
        }),
      );
    } catch (err) {
      const mapped = mapS3Error(err, { op: "CompleteMultipartUpload", bucket: this.bucket, key: Key });
      if (mapped.kind !== "NotFound") throw mapped;
      // A retried completion whose first response was lost: the object may already be there.
      let done: ObjectInfo | undefined;
      try {
        done = infoFromHeaders(Key, await this.client.send(new sdk.HeadObjectCommand({ Bucket: this.bucket, Key })));
      } catch (headErr) {
        const check = mapS3Error(headErr, { op: "HeadObject", bucket: this.bucket, key: Key });
        if (check.kind !== "NotFound") throw afterFailedCheck(mapped, check);
      }
      if (done && done.size === size && md5 && done.md5 === md5) return { size, md5: done.md5, etag: done.etag };
      if (done && expected && done.etag === expected) return this.addMd5(Key, source, md5, size, expected);
      throw mapped;
    }
    const etag = cleanEtag(out.ETag);
    const kms = out.ServerSideEncryption?.startsWith("aws:kms");
    if (expected && etag && !kms && /^[0-9a-f]{32}-\d+$/.test(etag) && etag !== expected) {
      throw new MigrateError("Integrity", `${where}: object ETag ${etag} != ${expected} computed from the parts`);
    }
    return this.addMd5(Key, source, md5, size, etag);
  }

  /** Store `md5` (lower-case) as "md5" metadata unless startUpload already did (see the file comment). */
  private async addMd5(Key: string, source: ObjectInfo, md5: string | undefined, size: number, etag: string | undefined): Promise<WriteResult> {
    if (isHexMd5(source.md5) || size > MAX_SINGLE_PUT || !etag || !md5 || !isHexMd5(md5)) return { size, md5, etag };
    let out;
    try {
      out = await this.client.send(
        new sdk.CopyObjectCommand({
          Bucket: this.bucket,
          Key,
          CopySource: `${this.bucket}/${Key.split("/").map(encodeURIComponent).join("/")}`,
          CopySourceIfMatch: `"${etag}"`,
          MetadataDirective: "REPLACE",
          ...writeHeaders(source, md5),
        }),
      );
    } catch (err) {
      throw mapS3Error(err, { op: "CopyObject (adding md5 metadata)", bucket: this.bucket, key: Key });
    }
    const newEtag = cleanEtag(out.CopyObjectResult?.ETag) ?? etag;
    const stored = md5FromEtag(newEtag, out.ServerSideEncryption, out.SSECustomerAlgorithm);
    if (stored && stored !== md5) {
      throw new MigrateError("Integrity", `CompleteMultipartUpload s3://${this.bucket}/${Key}: S3 computed md5 ${stored}, we sent ${md5}`, {
        temporary: true,
      });
    }
    return { size, md5, etag: newEtag };
  }

  async abortUpload(key: string, uploadId: string): Promise<void> {
    const Key = this.fullKey(key);
    try {
      await this.client.send(new sdk.AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId: uploadId }));
    } catch (err) {
      const mapped = mapS3Error(err, { op: "AbortMultipartUpload", bucket: this.bucket, key: Key });
      if (mapped.kind === "NotFound") return;
      throw mapped;
    }
  }
}
