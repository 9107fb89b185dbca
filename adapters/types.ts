/**
 * The adapter contract: everything the engine needs from a storage service.
 *
 * An adapter is bound to one location (a bucket/container/directory plus a prefix). Keys are
 * relative to that prefix and `/`-separated. All errors thrown are MigrateErrors (src/errors.ts)
 * mapped in one place per adapter.
 */
import type { Readable } from "node:stream";
import type { MigrateError } from "../src/errors.js";

export interface ObjectInfo {
  key: string;
  size: number;
  /** Modification time in ms since the epoch: the source mtime we preserved, else the service's. */
  mtime?: number;
  /** The service's entity tag, without the quotes HTTP puts around it; the same from a listing and from stat. */
  etag?: string;
  /** Hex MD5 of the whole object, when the service knows it (or we stored it as metadata). */
  md5?: string;
  /** Base64 big-endian CRC32C, as GCS and S3 report it. */
  crc32c?: string;
  contentType?: string;
  cacheControl?: string;
  contentEncoding?: string;
  contentDisposition?: string;
  contentLanguage?: string;
  /** User metadata, names lower-case, without any service prefix. */
  metadata?: Record<string, string>;
}

/**
 * What `read` returns. An adapter whose read response carries the object's headers (content-type,
 * user metadata, mtime, size) attaches them as `info`, sparing the engine a separate `stat`. An
 * adapter that read the bytes whole (a small file) attaches them as `whole`; the stream then
 * carries the same bytes and need not be consumed.
 */
export type ObjectStream = Readable & { info?: ObjectInfo; whole?: Buffer };

export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, inclusive. */
  end: number;
}

/**
 * How an object was uploaded, as the service reports it: `parts` parts of `partSize` bytes (the
 * last one shorter) and the MD5 of their MD5s (S3's multipart ETag). The service does not
 * promise equal parts, so a check against it that fails may mean unequal parts, not bad bytes.
 */
export interface PartLayout {
  partSize: number;
  parts: number;
  /** Hex MD5 of the parts' binary MD5s, concatenated in order. */
  md5OfPartMd5s: string;
  /** The service kept each part's CRC32C: partChecksum() gives it, part by part. */
  partCrc32c?: boolean;
}

/** One part of an object, as the service recorded it. */
export interface PartChecksum {
  size: number;
  /** Base64 CRC32C of the part's bytes. */
  crc32c: string;
}

/** What the destination says it stored. */
export interface WriteResult {
  size: number;
  md5?: string;
  crc32c?: string;
  etag?: string;
}

export interface WriteOptions {
  /** Hex MD5 of the body, if known in advance: the service may verify it on arrival. */
  md5?: string;
  /** Base64 CRC32C of a `whole` body, sent instead of an MD5 (see writeChecksCrc32c). */
  crc32c?: string;
  /**
   * The whole body, when the engine already holds it (small objects): an adapter may send it
   * instead of reading `body`, which then carries the same bytes.
   */
  whole?: Buffer;
  abortSignal?: AbortSignal;
}

/** Limits and optional behaviours; everything defaults to off. Frozen per adapter. */
export interface Capabilities {
  /** `read` honours a byte range. */
  readonly readRange: boolean;
  /** `list`/`stat` report `md5` for objects written by a single request. */
  readonly listMd5: boolean;
  /** `write` returns an md5 the service computed itself, so it can be checked. */
  readonly writeReportsMd5: boolean;
  /**
   * `write` given `opts.md5` stores nothing and fails with a temporary Integrity error unless the
   * bytes that arrived have that MD5 (the service checks it, e.g. S3 Content-MD5). The engine then
   * need not hash a body whose MD5 the source already gave.
   */
  readonly writeChecksMd5: boolean;
  /**
   * `write` given `opts.crc32c` and a `whole` body fails with a temporary Integrity error unless
   * the bytes that arrived have that CRC32C (e.g. S3 x-amz-checksum-crc32c), and reports it back
   * as `crc32c` when the service confirms it, with the MD5 the service computed, if any.
   */
  readonly writeChecksCrc32c?: boolean;
  /** `list`/`stat`/`write` report crc32c. */
  readonly crc32c: boolean;
  /** `write` keeps the source's mtime and `list` reports it back (within mtimePrecisionMs). */
  readonly preservesMtime: boolean;
  readonly mtimePrecisionMs: number;
  /** Longest key in UTF-8 bytes, including the location's prefix. */
  readonly maxKeyBytes: number;
  /** Holds content-type & co and user metadata. */
  readonly metadata: boolean;
  /** Multipart limits, present when the adapter implements `multipart`. */
  readonly multipart?: {
    readonly minPartSize: number;
    readonly maxPartSize: number;
    readonly maxParts: number;
    /**
     * Objects at least this big go in parts unless the user says otherwise. A local disk gains
     * nothing from parallel parts (one stream is faster), so the filesystem sets this high.
     */
    readonly defaultThreshold?: number;
    /** Preferred part size unless the user says otherwise (default 16 MiB). */
    readonly defaultPartSize?: number;
    /**
     * The whole-object MD5 can be stored with the object only if known when the upload starts
     * (S3 takes metadata at CreateMultipartUpload, not at completion).
     */
    readonly md5AtStart?: boolean;
    /**
     * The checksum uploadPart sends for the service to verify the part on arrival: "md5" (hex,
     * the default) or "crc32c" (base64 big-endian; hardware-fast, so no MD5 pass per part).
     */
    readonly partChecksum?: "md5" | "crc32c";
  };
}

/** Multipart upload steps. The shared uploader owns part sizing, concurrency and abort-on-error. */
export interface MultipartSteps {
  /**
   * Start an upload; returns an id that stays valid across process restarts. Every part but the
   * last is `partSize` bytes.
   */
  startUpload(key: string, source: ObjectInfo, partSize: number): Promise<string>;
  /**
   * Upload part `partNumber` (1-based) with its `checksum` (the kind `multipart.partChecksum`
   * names), which the service verifies. Returns the part's etag/token to pass to completeUpload.
   */
  uploadPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Buffer,
    checksum: string,
  ): Promise<string>;
  /** `parts`: each with the etag uploadPart returned and the checksum it was sent with. */
  completeUpload(
    key: string,
    uploadId: string,
    parts: { partNumber: number; etag: string; size: number; checksum: string }[],
    source: ObjectInfo,
    /** Undefined where the engine did not work it out (the bytes were checked another way). */
    wholeMd5: string | undefined,
  ): Promise<WriteResult>;
  /** Abort an upload; an unknown or already-finished upload is not an error. */
  abortUpload(key: string, uploadId: string): Promise<void>;
}

export interface Adapter {
  /** For messages and reports: the location as the user wrote it, never with secrets. */
  readonly display: string;
  readonly capabilities: Capabilities;

  /**
   * Objects under `prefix` (relative to the location; "" for all), in ascending order of the
   * keys' UTF-8 bytes, page by page. A missing prefix or empty location yields nothing.
   * `prefix` is a folder: "a" lists "a/…", never "ab".
   */
  list(prefix?: string): AsyncIterable<ObjectInfo>;

  /**
   * Optional: the same listing as `list`, in pages (arrays, possibly empty), each in key order
   * and after the one before. For long listings: one await per page instead of per object.
   */
  listPages?(prefix?: string): AsyncIterable<ObjectInfo[]>;

  /** One object's info, or a NotFound error. */
  stat(key: string): Promise<ObjectInfo>;

  /** The object's bytes, or the inclusive `range` of them. NotFound if missing. */
  read(key: string, range?: ByteRange): Promise<ObjectStream>;

  /**
   * Store `body` under `key`, with `source`'s content headers, user metadata and mtime where the
   * service can hold them. No partial object is ever visible under `key`.
   */
  write(key: string, body: Readable, source: ObjectInfo, opts?: WriteOptions): Promise<WriteResult>;

  /** Delete `key`; deleting a missing key succeeds. */
  delete(key: string): Promise<void>;

  /**
   * Check the location is usable before a run: credentials work, bucket exists, and (as a
   * destination) we may write. Throws a run-scoped MigrateError otherwise.
   */
  check(role: "source" | "destination"): Promise<void>;

  /** Why `key` cannot exist here (e.g. a name too long), or undefined if it can. */
  keyProblem?(key: string): string | undefined;

  /**
   * Fill `target` with the object's bytes from `start`; returns how many were read (fewer only at
   * the end of the object). For parts: spares the engine a stream and a copy per chunk.
   */
  readInto?(key: string, start: number, target: Buffer): Promise<number>;
  /**
   * A hint: `read(key)` (whole) will soon be called for each of these small objects, so fetch
   * them together now (a local source reads them in one worker message instead of one each).
   * read() behaves the same with or without it; what is fetched but never read is dropped.
   */
  prefetch?(keys: readonly string[]): void;
  /**
   * The path of a local file holding `key`'s bytes, if this adapter keeps objects as files on
   * this machine. With the destination's `writeFromFile`, bytes then never cross the engine.
   */
  localPath?(key: string): string;
  /**
   * Store the local file `file` under `key` (as `write` would: `source`'s mtime and headers, no
   * partial object visible). The file must hold exactly `source.size` bytes, else a temporary
   * Integrity error. With `opts.md5`, the result's `md5` is that of the bytes read, which were
   * the bytes stored; without it nothing is hashed (nobody would compare the MD5).
   * `opts.onBytes`: told of bytes as they are written, where the copy takes long enough for a
   * progress bar to show it; what it is told adds up to at most the bytes written (the caller
   * counts the rest from the result, or takes it back if the call fails).
   */
  writeFromFile?(key: string, file: string, source: ObjectInfo, opts?: { md5?: boolean; onBytes?(n: number): void }): Promise<WriteResult>;
  /**
   * writeFromFile for several small files at once (one call instead of one per file). Each
   * result is that file's WriteResult, or the error writeFromFile would have thrown for it.
   */
  writeFromFiles?(items: readonly FileHandoff[]): Promise<(WriteResult | MigrateError)[]>;
  /**
   * The whole object in memory (with its hex MD5 if `opts.md5`), read and hashed off the main
   * thread; or undefined, and the engine streams it: it holds more than `max` bytes (or than the
   * memory `opts.memory` lends, where the adapter reads into that), or the adapter cannot read
   * it this way now. For objects of a few MiB, where streaming them through the main thread
   * costs more than holding them, and for small ones, where a stream's plumbing costs more than
   * their bytes (not asked of a source that offers `prefetch`: it serves small objects from
   * read()). `opts.memory`: the engine's reusable memory for the object,
   * sized for it as listed, for an adapter that reads into memory of its own choosing; taken
   * back once the object is written. `info`: the object as read, where the read tells more
   * than the listing (metadata).
   */
  readWhole?(key: string, max: number, opts?: { md5?: boolean; memory?: () => Buffer }): Promise<{ body: Buffer; md5?: string; info?: ObjectInfo } | undefined>;
  /** Compute a checksum the listing lacks (e.g. MD5 of a local file); hex. */
  computeMd5?(key: string): Promise<string>;
  /**
   * In one read: the whole object's MD5 (hex) and the CRC32C (base64) of each `partSize`-byte
   * part, for an upload that needs the MD5 at its start. Parts then go with these CRC32Cs, so
   * the service refuses any part whose bytes changed since.
   */
  digestParts?(key: string, partSize: number): Promise<{ md5: string; partCrc32c: string[] }>;
  /**
   * The object's part layout (`info` is its stat), when it was uploaded in parts and the service
   * gives their MD5s' digest; undefined otherwise or when the object changed since `info`. A copy
   * into a destination whose parts carry MD5s can then hash each part once and check the bytes
   * read against the source, without a pass over the whole object.
   */
  partLayout?(key: string, info: ObjectInfo): Promise<PartLayout | undefined>;
  /**
   * Part `partNumber` (from 1) of the object version `info` stands for (its ETag), for a layout
   * with `partCrc32c`: undefined if the service kept no CRC32C for it; a ConditionNotMatch error
   * if the object changed since. A copy into a destination whose parts carry CRC32Cs can check
   * the bytes read against these, hardware-fast, instead of an MD5 pass over the whole object.
   */
  partChecksum?(key: string, partNumber: number, info: ObjectInfo): Promise<PartChecksum | undefined>;

  multipart?: MultipartSteps;

  /** Release sockets and handles. */
  close?(): Promise<void>;
}

/** The location an adapter is built from (see src/location.ts). */
export interface Location {
  scheme: string;
  /** Bucket, container (az: "account/container"), or absolute directory for file. */
  root: string;
  /** Prefix inside root, no leading or trailing slash; "" for the whole root. */
  prefix: string;
  /** The location as the user typed it, minus secrets. */
  display: string;
  /** Parsed options the adapter may need (endpoint, account...), never persisted secrets. */
  extra: Record<string, string>;
}

export interface AdapterOptions {
  s3Endpoint?: string;
  s3Region?: string;
  s3ForcePathStyle?: boolean;
  /** Per-request timeout in ms for cloud adapters (default 60 s of silence). */
  requestTimeoutMs?: number;
  /**
   * Where to read credentials and endpoints from instead of process.env (tests use it to give
   * one adapter a bad credential). Adapters pass explicit values to the SDK when set here.
   */
  env?: NodeJS.ProcessEnv;
}

/** One file for writeFromFiles: what writeFromFile takes. */
export interface FileHandoff {
  key: string;
  file: string;
  source: ObjectInfo;
  md5?: boolean;
}
