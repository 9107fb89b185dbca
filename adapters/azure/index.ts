/**
 * Azure Blob Storage adapter (az://account/container/prefix, or
 * https://ACCOUNT.blob.core.windows.net/container/prefix?SAS). Block blobs only.
 *
 * - Credentials and endpoint: client.ts. Errors: errors.ts (the one mapping place).
 * - Requests: reads (direct.ts), listings (list.ts) and writes (blob-requests.ts) are our own,
 *   Shared Key signed (shared-key.ts); the SDK, imported on first use, only gets properties,
 *   streams reads the direct path cannot take, and deletes.
 * - Headers, metadata name/value encoding, mtime/md5 metadata: metadata.ts.
 * - write(): write.ts (one Put Blob up to 256 MiB, block lists above).
 * - multipart: multipart.ts (stage block / commit block list; abort is a no-op).
 * - list(): List Blobs (flat) with metadata, 5000 per page, streamed page by page (list.ts reads
 *   the pages: about 15 CPU-µs per blob, the SDK's models about 300). Azure and
 *   Azurite return UTF-16 code-unit order; order.ts repairs it to UTF-8 byte order in bounded
 *   memory. (Accounts with a hierarchical namespace, ADLS Gen2, list in path-tree order instead
 *   — "a/x" before "a-b" — which this does not repair.)
 *   "Folder" placeholders (name ending in "/" with size 0, or hdi_isfolder=true) are skipped.
 * - mtime: the source mtime is stored as metadata "mtime" (RFC 3339, as rclone does) and reported by list and stat.
 */
import { PassThrough, pipeline, type Readable } from "node:stream";
import type { BlockBlobClient } from "@azure/storage-blob";
import type { Adapter, AdapterOptions, ByteRange, Capabilities, Location, MultipartSteps, ObjectInfo, ObjectStream, WriteOptions, WriteResult } from "../types.js";
import { MigrateError } from "../../src/errors.js";
import { STREAM_BUFFER } from "../../src/memory.js";
import { connect, type AzureConnection } from "./client.js";
import { mapAzureError } from "./errors.js";
import { toObjectInfo } from "./metadata.js";
import { inCodePointOrder } from "./order.js";
import { ListPageError, type ListedBlob } from "./list.js";
import { MAX_PARTS, MAX_PART_SIZE, multipartSteps, type BlobTarget } from "./multipart.js";
import { DEFAULT_WRITE_LIMITS, writeBlob, type WriteLimits } from "./write.js";
import { BodyTooLong, DirectUnsupported, wholeReadTarget } from "../http-into.js";
import { propsFromHeaders } from "./direct.js";
import { Md5Feed } from "../../src/hash-thread.js";
import { fillFrom } from "../../src/fill.js";

/** Azure's limit on blob names, in characters (UTF-16 code units, as .NET counts them). */
const MAX_NAME_CHARS = 1024;
const PAGE_SIZE = 5000;

const capabilities: Capabilities = Object.freeze({
  readRange: true,
  listMd5: true,
  writeReportsMd5: true,
  writeChecksMd5: true,
  crc32c: false,
  preservesMtime: true,
  mtimePrecisionMs: 1,
  // 1024 characters; every character is at least one UTF-8 byte, so 1024 bytes always fit.
  maxKeyBytes: MAX_NAME_CHARS,
  metadata: true,
  // Up to 256 MiB one streaming Put Blob beats staged blocks (rclone's cutoff too).
  multipart: Object.freeze({ minPartSize: 1, maxPartSize: MAX_PART_SIZE, maxParts: MAX_PARTS, defaultThreshold: DEFAULT_WRITE_LIMITS.streamPutMax }),
});

export class AzureAdapter implements Adapter {
  readonly display: string;
  readonly capabilities = capabilities;
  readonly multipart: MultipartSteps;
  /** The location's prefix as a folder: "" or "some/prefix/". */
  private readonly base: string;
  private readonly target: BlobTarget;
  /** Parts are read by direct.ts until the service answers in a way it does not read. */
  private directReads = true;
  /** write() size thresholds (tests lower them). */
  writeLimits: WriteLimits = DEFAULT_WRITE_LIMITS;

  constructor(
    loc: Location,
    private readonly conn: AzureConnection,
  ) {
    this.display = loc.display;
    this.base = loc.prefix ? loc.prefix + "/" : "";
    this.target = { url: (k) => conn.blobUrl(this.name(k)), writes: conn.writes, what: (k) => this.what(k) };
    this.multipart = multipartSteps(this.target);
  }

  private what(key: string): string {
    return `${this.display}${this.display.endsWith("/") ? "" : "/"}${key}`;
  }

  /** The blob name for `key`; throws Unsupported for one Azure cannot hold. */
  private name(key: string): string {
    const problem = this.keyProblem(key);
    if (problem) throw new MigrateError("Unsupported", `${this.what(key)}: ${problem}`);
    return this.base + key;
  }

  /** The SDK's client for `key`'s blob (loading the SDK the first time). */
  private async blob(key: string): Promise<BlockBlobClient> {
    const name = this.name(key);
    return (await this.conn.sdk()).getBlockBlobClient(name);
  }

  keyProblem(key: string): string | undefined {
    if (!key) return "an Azure blob name cannot be empty";
    const name = this.base + key;
    if (name.length > MAX_NAME_CHARS) return `an Azure blob name is at most ${MAX_NAME_CHARS} characters`;
    if (name.endsWith("/")) return "a name ending in '/' is a folder placeholder in Azure";
    if (name.endsWith(".")) return "Azure drops trailing dots from blob names";
    if (name.includes("\\")) return "Azure stores '\\' in blob names as '/'";
    if (name.split("/").some((s) => s === "." || s === "..")) return "'.' and '..' path segments are removed from Azure blob URLs";
    if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(name)) return "the name is not valid UTF-16 (lone surrogate)";
    if (name.includes("\0")) return "an Azure blob name cannot contain NUL";
    return undefined;
  }

  async *list(prefix = ""): AsyncIterable<ObjectInfo> {
    const clean = prefix.replace(/^\/+|\/+$/g, "");
    const full = this.base + (clean ? clean + "/" : "");
    for await (const item of inCodePointOrder((p) => this.rawList(p), (b) => b.name, full)) {
      const p = item.properties;
      if (item.name.endsWith("/") && !p.contentLength) continue;
      if (item.metadata?.hdi_isfolder === "true") continue;
      yield toObjectInfo(item.name.slice(this.base.length), p, item.metadata);
    }
  }

  /** Blobs whose names start with `prefix` (a plain string prefix), as the service orders them. */
  private async *rawList(prefix: string): AsyncGenerator<ListedBlob> {
    let marker: string | undefined;
    do {
      const page = await this.conn.lister.page(prefix, marker, PAGE_SIZE).catch((err: unknown) => {
        const what = `${this.display}: listing ${prefix || "/"}`;
        // Temporary: the listing is retried from where it stopped (limits.ts).
        if (err instanceof ListPageError) throw new MigrateError("Unexpected", `${what}: ${err.message}`, { temporary: true, cause: err });
        throw mapAzureError(err, what);
      });
      yield* page.blobs;
      marker = page.nextMarker;
    } while (marker);
  }

  async stat(key: string): Promise<ObjectInfo> {
    const client = await this.blob(key);
    try {
      const p = await client.getProperties();
      return toObjectInfo(key, p, p.metadata);
    } catch (err) {
      throw mapAzureError(err, this.what(key));
    }
  }

  /**
   * A part's bytes straight off the socket into `target` (direct.ts). Through the SDK's download
   * instead when the service answers in a way that path does not read (without a length: from
   * then on), or with more than asked (that once: read() judges it).
   */
  async readInto(key: string, start: number, target: Buffer): Promise<number> {
    const url = this.conn.blobUrl(this.name(key));
    if (this.directReads) {
      try {
        const res = await this.conn.direct.getInto(url, target, start);
        // A whole-blob answer (200) holds the range asked only if that started at 0 (and it fit).
        if (res.status === 206 || start === 0) return res.length;
      } catch (err) {
        if (!(err instanceof DirectUnsupported) && !(err instanceof BodyTooLong)) throw mapAzureError(err, this.what(key));
        if (err instanceof DirectUnsupported) this.directReads = false;
      }
    }
    return fillFrom(await this.read(key, { start, end: start + target.length - 1 }), target, this.what(key));
  }

  /**
   * The whole blob, read straight off the socket into the engine's memory (`opts.memory`), with
   * its info from the response; hashed as it lands (Md5Feed) if `opts.md5`. Undefined (stream it
   * instead) if it does not fit, or once the service answered in a way the direct path does not
   * read.
   */
  async readWhole(key: string, max: number, opts?: { md5?: boolean; memory?: () => Buffer }): Promise<{ body: Buffer; md5?: string; info: ObjectInfo } | undefined> {
    if (!this.directReads) return undefined;
    const url = this.conn.blobUrl(this.name(key));
    const body = wholeReadTarget(max, opts?.memory);
    const hash = opts?.md5 ? new Md5Feed(body) : undefined;
    let res;
    try {
      res = await this.conn.direct.getInto(url, body, undefined, hash?.filled);
    } catch (err) {
      hash?.drop();
      if (err instanceof BodyTooLong) return undefined;
      if (!(err instanceof DirectUnsupported)) throw mapAzureError(err, this.what(key));
      this.directReads = false;
      return undefined;
    }
    const { props, metadata } = propsFromHeaders(res.headers);
    return { body: body.subarray(0, res.length), info: toObjectInfo(key, props, metadata), md5: await hash?.digest(res.length) };
  }

  /** A whole-object read carries the object's info from the download response. */
  async read(key: string, range?: ByteRange): Promise<ObjectStream> {
    const client = await this.blob(key);
    const offset = range ? range.start : 0;
    const count = range ? range.end - range.start + 1 : undefined;
    if (range && count !== undefined && count <= 0) return new PassThrough().end();
    let body: NodeJS.ReadableStream | undefined;
    let info: ObjectInfo | undefined;
    try {
      // maxRetryRequests 0: a cut-off body is an error for the engine to retry, not resumed here.
      const res = await client.download(offset, count, { maxRetryRequests: 0 });
      body = res.readableStreamBody;
      if (!range) info = toObjectInfo(key, res, res.metadata);
    } catch (err) {
      throw mapAzureError(err, this.what(key));
    }
    if (!body) throw new MigrateError("Unexpected", `${this.what(key)}: download returned no body`);
    // Pass the bytes through so stream errors come out as MigrateErrors.
    const out = new PassThrough({ highWaterMark: STREAM_BUFFER });
    pipeline(body as Readable, out, (err) => {
      if (err) out.destroy(mapAzureError(err, this.what(key)));
    });
    return Object.assign(out, { info });
  }

  async write(key: string, body: Readable, source: ObjectInfo, opts?: WriteOptions): Promise<WriteResult> {
    const problem = this.keyProblem(key);
    if (problem) {
      body.destroy();
      throw new MigrateError("Unsupported", `${this.what(key)}: ${problem}`);
    }
    return writeBlob(this.target, key, body, source, opts, this.writeLimits);
  }

  async delete(key: string): Promise<void> {
    try {
      await (await this.blob(key)).delete({ deleteSnapshots: "include" });
    } catch (err) {
      const e = mapAzureError(err, this.what(key));
      if (e.kind !== "NotFound") throw e;
    }
  }

  /** One List Blobs call of one entry, as list() makes them: proves the credential, the container and list access. */
  async check(role: "source" | "destination"): Promise<void> {
    try {
      await this.conn.lister.page(this.base, undefined, 1);
    } catch (err) {
      const e = mapAzureError(err, `${role} ${this.display}`);
      const hint = e.kind === "PermissionDenied" ? ` (credentials: ${this.conn.credentialSource})` : "";
      throw new MigrateError(e.kind, e.message + hint, { scope: "run", temporary: e.temporary, retryAfterMs: e.retryAfterMs, cause: err });
    }
  }

  async close(): Promise<void> {
    this.conn.close();
  }
}

export async function createAzureAdapter(loc: Location, opts: AdapterOptions): Promise<Adapter> {
  return new AzureAdapter(loc, connect(loc, opts));
}
