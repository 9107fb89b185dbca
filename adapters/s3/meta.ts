/**
 * Translating between ObjectInfo and S3's headers / user metadata.
 *
 * - The source mtime is stored as user metadata "mtime" in rclone's form, seconds since the epoch
 *   with a fraction ("1700000000.123"), so rclone reads it too. On read, integer ms (what
 *   cloudmigrate wrote before) is understood as well.
 * - A whole-object md5 we know for a multipart upload is stored as user metadata "md5" (hex).
 * - User metadata values HTTP cannot carry verbatim (non-ASCII, control characters, edge
 *   whitespace) are sent as one RFC 2047 encoded word, `=?UTF-8?B?…?=`, the form S3 itself
 *   uses when it returns such values; encoded words are decoded on read (../encoded-word.ts).
 * - Content-Type & co get the same treatment when they are not plain ASCII.
 * - Names are lower-case on read; "mtime" and "md5" are reported as fields, not in `metadata`.
 */
import type { ObjectInfo } from "../types.js";
import { decodeMetaValue, encodeHeaderValue, encodeMetaValue } from "../encoded-word.js";

export { decodeMetaValue, encodeMetaValue };

export const MTIME_META = "mtime";
export const MD5_META = "md5";

const HEX_MD5 = /^[0-9a-f]{32}$/;

/** The header fields PutObject and CreateMultipartUpload share. */
export interface S3WriteHeaders {
  ContentType?: string;
  CacheControl?: string;
  ContentEncoding?: string;
  ContentDisposition?: string;
  ContentLanguage?: string;
  Metadata: Record<string, string>;
}

/** The header fields HeadObject and GetObject return. */
export interface S3ReadHeaders {
  ContentLength?: number;
  LastModified?: Date;
  ETag?: string;
  ContentType?: string;
  CacheControl?: string;
  ContentEncoding?: string;
  ContentDisposition?: string;
  ContentLanguage?: string;
  Metadata?: Record<string, string>;
  ServerSideEncryption?: string;
  SSECustomerAlgorithm?: string;
}

/** Strip the quotes S3 puts around ETags. */
export function cleanEtag(etag: string | undefined): string | undefined {
  return etag ? etag.replace(/^W\//, "").replace(/^"|"$/g, "") : undefined;
}

/** The md5 an ETag stands for: a single-request upload's ETag is its hex MD5 ("abc-3" is not). */
export function md5FromEtag(etag: string | undefined, sse?: string, ssec?: string): string | undefined {
  const e = cleanEtag(etag)?.toLowerCase();
  if (!e || !HEX_MD5.test(e)) return undefined;
  // SSE-KMS and SSE-C objects have ETags that are not the MD5 of the data.
  if (ssec || (sse && sse.startsWith("aws:kms"))) return undefined;
  return e;
}

/**
 * What a multipart upload's ETag stands for: "<hex MD5 of the parts' MD5s>-<part count>".
 * Undefined for other ETags, and for SSE-KMS and SSE-C objects, whose ETags are not MD5-based.
 */
export function multipartEtag(etag: string | undefined, sse?: string, ssec?: string): { md5OfPartMd5s: string; parts: number } | undefined {
  const m = /^([0-9a-f]{32})-([1-9][0-9]{0,4})$/.exec(cleanEtag(etag)?.toLowerCase() ?? "");
  if (!m || ssec || (sse && sse.startsWith("aws:kms"))) return undefined;
  return { md5OfPartMd5s: m[1], parts: Number(m[2]) };
}

export function isHexMd5(v: string | undefined): v is string {
  return v !== undefined && HEX_MD5.test(v);
}

/**
 * Headers to store `source` with. `md5` (hex) is added as metadata when given (multipart
 * uploads); a single PutObject does not need it, its ETag is the md5.
 */
export function writeHeaders(source: ObjectInfo, md5?: string): S3WriteHeaders {
  const meta: Record<string, string> = {};
  for (const [k, v] of Object.entries(source.metadata ?? {})) {
    const name = k.toLowerCase();
    if (name === MTIME_META || name === MD5_META) continue;
    meta[name] = encodeMetaValue(v);
  }
  if (source.mtime !== undefined && Number.isFinite(source.mtime)) meta[MTIME_META] = formatMtime(source.mtime);
  if (md5) meta[MD5_META] = md5;
  return {
    ContentType: encodeHeaderValue(source.contentType),
    CacheControl: encodeHeaderValue(source.cacheControl),
    ContentEncoding: encodeHeaderValue(source.contentEncoding),
    ContentDisposition: encodeHeaderValue(source.contentDisposition),
    ContentLanguage: encodeHeaderValue(source.contentLanguage),
    Metadata: meta,
  };
}

/** ms since the epoch → rclone's S3 "mtime": seconds with a fraction, "1700000000.123". */
export function formatMtime(ms: number): string {
  return (Math.round(ms) / 1000).toFixed(3);
}

/** "1700000000.123456789" (rclone's and ours, s) or "1700000000123" (older cloudmigrate, ms) → ms; undefined if neither. */
export function parseMtime(v: string | undefined): number | undefined {
  if (!v || !/^-?\d+(\.\d+)?$/.test(v.trim())) return undefined;
  const n = Number(v.trim());
  if (!Number.isFinite(n)) return undefined;
  // ms values for any date after 1973 exceed 1e11; seconds stay below it until the year 5138.
  return v.includes(".") || n < 1e11 ? Math.round(n * 1000) : n;
}

/** ObjectInfo from HeadObject/GetObject output. */
export function infoFromHeaders(key: string, h: S3ReadHeaders): ObjectInfo {
  const metadata: Record<string, string> = {};
  let mtimeMeta: string | undefined;
  let md5Meta: string | undefined;
  for (const [k, v] of Object.entries(h.Metadata ?? {})) {
    const name = k.toLowerCase();
    const value = decodeMetaValue(v);
    if (name === MTIME_META) mtimeMeta = value;
    else if (name === MD5_META) md5Meta = value.toLowerCase();
    else metadata[name] = value;
  }
  const etag = cleanEtag(h.ETag);
  const info: ObjectInfo = {
    key,
    size: h.ContentLength ?? 0,
    mtime: parseMtime(mtimeMeta) ?? h.LastModified?.getTime(),
    etag,
    // The service's own digest first; our "md5" metadata covers multipart objects.
    md5: md5FromEtag(etag, h.ServerSideEncryption, h.SSECustomerAlgorithm) ?? (isHexMd5(md5Meta) ? md5Meta : undefined),
    metadata,
  };
  if (h.ContentType) info.contentType = decodeMetaValue(h.ContentType);
  if (h.CacheControl) info.cacheControl = decodeMetaValue(h.CacheControl);
  if (h.ContentEncoding) info.contentEncoding = decodeMetaValue(h.ContentEncoding);
  if (h.ContentDisposition) info.contentDisposition = decodeMetaValue(h.ContentDisposition);
  if (h.ContentLanguage) info.contentLanguage = decodeMetaValue(h.ContentLanguage);
  return info;
}
