/**
 * The S3 adapter (AWS S3 and S3-compatible stores such as MinIO), bound to s3://bucket/prefix.
 *
 * Location keys map to S3 keys as `prefix + "/" + key` (or `key` when the prefix is empty).
 * See client.ts for endpoint/credential resolution, lister.ts for listing, writer.ts for uploads
 * and their verification, meta.ts for headers and metadata, errors.ts for error mapping.
 */
import type { Readable } from "node:stream";
import type { S3Client } from "@aws-sdk/client-s3";
import type { Adapter, AdapterOptions, ByteRange, Capabilities, Location, ObjectInfo, ObjectStream, PartChecksum, PartLayout, WriteOptions, WriteResult } from "../types.js";
import { MigrateError } from "../../src/errors.js";
import { createS3Client } from "./client.js";
import { sdk } from "./sdk.js";
import type { LeanS3 } from "./lean.js";
import { mapS3Error } from "./errors.js";
import { BodyTooLong, DirectUnsupported, wholeReadTarget } from "../http-into.js";
import { Md5Feed } from "../../src/hash-thread.js";
import { fillFrom } from "../../src/fill.js";
import { listObjectPages } from "./lister.js";
import { flatten } from "../../src/listing.js";
import { cleanEtag, infoFromHeaders, multipartEtag, type S3ReadHeaders } from "./meta.js";
import { MAX_SINGLE_PUT, S3Writer } from "./writer.js";

const MiB = 1024 * 1024;
/**
 * Objects below this go in one streaming PUT (rclone's cutoff too): its ETag is the MD5, so it
 * needs no MD5 pre-pass, and one stream to S3 is not the bottleneck at this size.
 */
const SINGLE_PUT_CUTOFF = 200 * MiB;

export const S3_CAPABILITIES: Capabilities = Object.freeze({
  readRange: true,
  listMd5: true,
  writeReportsMd5: true,
  writeChecksMd5: true,
  writeChecksCrc32c: true,
  crc32c: false,
  // ListObjectsV2 returns no metadata, so list() reports the upload time, not the source mtime.
  preservesMtime: false,
  mtimePrecisionMs: 1,
  maxKeyBytes: 1024,
  metadata: true,
  multipart: Object.freeze({ minPartSize: 5 * MiB, maxPartSize: MAX_SINGLE_PUT, maxParts: 10_000, md5AtStart: true, defaultThreshold: SINGLE_PUT_CUTOFF, partChecksum: "crc32c" }),
});

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function trimSlashes(s: string): string {
  return s.replace(/^\/+|\/+$/g, "");
}

export class S3Adapter implements Adapter {
  readonly display: string;
  readonly capabilities = S3_CAPABILITIES;
  readonly multipart: S3Writer;
  private readonly bucket: string;
  /** Location prefix with a trailing "/", or "". */
  private readonly base: string;
  /** Cleared when the store answers a direct read in a way http-into.ts does not read. */
  private directReads = true;
  /** The HeadObject that shows the lean path the URL, shared by the whole reads waiting on it. */
  private learning?: Promise<unknown>;

  constructor(
    loc: Location,
    private readonly client: S3Client,
    private readonly lean?: LeanS3,
  ) {
    this.display = loc.display;
    this.bucket = loc.root;
    this.base = loc.prefix ? `${trimSlashes(loc.prefix)}/` : "";
    this.multipart = new S3Writer(client, this.bucket, (k) => this.fullKey(k), lean);
  }

  private fullKey(key: string): string {
    return this.base + key;
  }

  list(prefix = ""): AsyncIterable<ObjectInfo> {
    return flatten(this.listPages(prefix));
  }

  listPages(prefix = ""): AsyncIterable<ObjectInfo[]> {
    const sub = trimSlashes(prefix);
    return listObjectPages({
      client: this.client,
      bucket: this.bucket,
      listPrefix: this.base + (sub ? `${sub}/` : ""),
      stripPrefix: this.base,
    });
  }

  async stat(key: string): Promise<ObjectInfo> {
    const Key = this.fullKey(key);
    try {
      const h = await this.client.send(new sdk.HeadObjectCommand({ Bucket: this.bucket, Key }));
      return infoFromHeaders(key, h);
    } catch (err) {
      throw mapS3Error(err, { op: "HeadObject", bucket: this.bucket, key: Key });
    }
  }

  /**
   * From the multipart ETag and a HEAD of part 1 (its Content-Length is the part size). A store
   * that ignores partNumber answers with the whole object, which the part count then refuses;
   * one that rejects it gets no layout (the copy hashes the whole object instead). `partCrc32c`
   * when part 1 has a CRC32C of its own: an upload made with CRC32C parts (as cloudmigrate's
   * are), not one whose checksum covers the full object.
   */
  async partLayout(key: string, info: ObjectInfo): Promise<PartLayout | undefined> {
    const Key = this.fullKey(key);
    if (!multipartEtag(info.etag)) return undefined;
    let h;
    try {
      h = await this.client.send(new sdk.HeadObjectCommand({ Bucket: this.bucket, Key, PartNumber: 1, ChecksumMode: "ENABLED" }));
    } catch (err) {
      const e = mapS3Error(err, { op: "HeadObject (part 1)", bucket: this.bucket, key: Key });
      if (e.temporary || e.kind === "NotFound") throw e;
      return undefined;
    }
    const etag = multipartEtag(h.ETag, h.ServerSideEncryption, h.SSECustomerAlgorithm);
    const partSize = h.ContentLength ?? 0;
    if (!etag || cleanEtag(h.ETag) !== info.etag || partSize <= 0) return undefined;
    if (etag.parts !== Math.max(1, Math.ceil(info.size / partSize)) || (h.PartsCount !== undefined && h.PartsCount !== etag.parts)) return undefined;
    return { partSize, ...etag, partCrc32c: Boolean(h.ChecksumCRC32C) && h.ChecksumType !== "FULL_OBJECT" };
  }

  /** HEAD of one part, If-Match the ETag of `info`: its Content-Length and CRC32C. */
  async partChecksum(key: string, partNumber: number, info: ObjectInfo): Promise<PartChecksum | undefined> {
    const Key = this.fullKey(key);
    let h;
    try {
      h = await this.client.send(
        new sdk.HeadObjectCommand({ Bucket: this.bucket, Key, PartNumber: partNumber, ChecksumMode: "ENABLED", IfMatch: info.etag && `"${info.etag}"` }),
      );
    } catch (err) {
      throw mapS3Error(err, { op: `HeadObject (part ${partNumber})`, bucket: this.bucket, key: Key });
    }
    if (!h.ChecksumCRC32C || h.ContentLength === undefined || h.ChecksumType === "FULL_OBJECT") return undefined;
    return { size: h.ContentLength, crc32c: h.ChecksumCRC32C };
  }

  /**
   * Once the lean path knows where objects live, the bytes go from the socket straight into
   * `target` (http-into.ts); before that, or if the store answers in a way that path does not
   * read, through the SDK.
   */
  async readInto(key: string, start: number, target: Buffer): Promise<number> {
    const Key = this.fullKey(key);
    if (this.direct()) {
      let got;
      try {
        got = await this.directGet(Key, target, start);
      } catch (err) {
        if (!(err instanceof BodyTooLong)) throw err;
        throw new MigrateError("Integrity", `GetObject s3://${this.bucket}/${Key}: ranged read returned ${err.announced} bytes, more than the ${err.room} asked`, { temporary: true });
      }
      if (got) return got.length;
    }
    return fillFrom(await this.read(key, { start, end: start + target.length - 1 }), target, `GetObject s3://${this.bucket}/${Key}`);
  }

  /**
   * The whole object, read straight off the socket into the engine's memory (`opts.memory`),
   * with its info from the response; hashed as it lands (Md5Feed) if `opts.md5`. Undefined
   * (stream it instead) if it does not fit, or if the lean path cannot learn the URL.
   */
  async readWhole(key: string, max: number, opts?: { md5?: boolean; memory?: () => Buffer }): Promise<{ body: Buffer; md5?: string; info: ObjectInfo } | undefined> {
    const Key = this.fullKey(key);
    if (!(await this.whenDirect(Key))) return undefined;
    const body = wholeReadTarget(max, opts?.memory);
    const hash = opts?.md5 ? new Md5Feed(body) : undefined;
    let got;
    try {
      got = await this.directGet(Key, body, undefined, hash?.filled);
    } catch (err) {
      hash?.drop();
      if (err instanceof BodyTooLong) return undefined;
      throw err;
    }
    if (!got) {
      hash?.drop();
      return undefined;
    }
    const info = infoFromHeaders(key, got.headers);
    return { body: body.subarray(0, got.length), info, md5: await hash?.digest(got.length) };
  }

  private direct(): boolean {
    return this.directReads && this.lean?.ready === true;
  }

  /**
   * direct(), once the lean path has had its chance to learn the URL: before the first call on
   * an object, one HeadObject through the SDK (its answer does not matter; building it resolves
   * the URL), shared by every whole read that starts meanwhile. Those reads used to go through
   * the SDK instead: all the copies a run starts at once, 16-21 of 100 × 10 MiB S3→Azure, each
   * streamed and hashed on the main thread (0.3 s of its CPU).
   */
  private async whenDirect(Key: string): Promise<boolean> {
    if (this.lean && !this.lean.ready && this.directReads) {
      this.learning ??= this.client.send(new sdk.HeadObjectCommand({ Bucket: this.bucket, Key })).catch(() => undefined);
      await this.learning;
    }
    return this.direct();
  }

  /**
   * lean.getInto with errors mapped; undefined if the store answers in a way the direct path
   * does not read (the SDK path is used from then on). BodyTooLong passes through, for the
   * caller to judge.
   */
  private async directGet(Key: string, target: Buffer, start?: number, onBody?: (got: number) => void): Promise<{ length: number; headers: S3ReadHeaders } | undefined> {
    try {
      return await this.lean!.getInto(Key, target, start, onBody);
    } catch (err) {
      if (err instanceof BodyTooLong) throw err;
      if (!(err instanceof DirectUnsupported)) throw mapS3Error(err, { op: "GetObject", bucket: this.bucket, key: Key });
      this.directReads = false;
      return undefined;
    }
  }

  /** A whole-object read carries the object's info from the GET response headers. */
  async read(key: string, range?: ByteRange): Promise<ObjectStream> {
    const Key = this.fullKey(key);
    if (!range && this.lean?.ready) {
      try {
        const out = await this.lean.get(Key);
        const body = out.body as ObjectStream;
        body.info = infoFromHeaders(key, out.headers);
        return body;
      } catch (err) {
        throw mapS3Error(err, { op: "GetObject", bucket: this.bucket, key: Key });
      }
    }
    try {
      const out = await this.client.send(
        new sdk.GetObjectCommand({ Bucket: this.bucket, Key, Range: range ? `bytes=${range.start}-${range.end}` : undefined }),
      );
      // In Node the SDK's Body is the http.IncomingMessage (a Readable) with helper mixins.
      const body = out.Body as ObjectStream;
      if (!range) body.info = infoFromHeaders(key, out);
      return body;
    } catch (err) {
      throw mapS3Error(err, { op: "GetObject", bucket: this.bucket, key: Key });
    }
  }

  write(key: string, body: Readable, source: ObjectInfo, opts?: WriteOptions): Promise<WriteResult> {
    return this.multipart.write(key, body, source, opts);
  }

  async delete(key: string): Promise<void> {
    const Key = this.fullKey(key);
    try {
      await this.client.send(new sdk.DeleteObjectCommand({ Bucket: this.bucket, Key }));
    } catch (err) {
      const mapped = mapS3Error(err, { op: "DeleteObject", bucket: this.bucket, key: Key });
      if (mapped.kind !== "NotFound") throw mapped;
    }
  }

  /** One ListObjectsV2 (1 key): proves the endpoint answers, credentials work, bucket exists, listing is allowed. */
  async check(role: "source" | "destination"): Promise<void> {
    try {
      await this.client.send(new sdk.ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.base || undefined, MaxKeys: 1 }));
    } catch (err) {
      const e = mapS3Error(err, { op: `check (${role})`, bucket: this.bucket, check: true });
      if (e.scope === "run") throw e;
      throw new MigrateError(e.kind, e.message, { temporary: e.temporary, retryAfterMs: e.retryAfterMs, scope: "run", cause: e });
    }
  }

  keyProblem(key: string): string | undefined {
    if (LONE_SURROGATE.test(key)) return "key is not valid Unicode (lone surrogate)";
    const bytes = Buffer.byteLength(this.fullKey(key), "utf8");
    if (bytes > S3_CAPABILITIES.maxKeyBytes) {
      return `key is ${bytes} bytes with the prefix; S3 allows at most ${S3_CAPABILITIES.maxKeyBytes}`;
    }
    return undefined;
  }

  async close(): Promise<void> {
    this.lean?.close();
    this.client.destroy();
  }
}

export async function createS3Adapter(loc: Location, opts: AdapterOptions): Promise<Adapter> {
  const { client, lean } = createS3Client(loc.root, opts);
  return new S3Adapter(loc, client, lean);
}
