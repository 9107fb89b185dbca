/**
 * ObjectInfo ⇄ Azure blob properties, headers and metadata.
 *
 * Metadata names. Azure requires C# identifiers ([A-Za-z_][A-Za-z0-9_]*, case-insensitive),
 * while S3/GCS names are often like "content-id" or even non-ASCII. Rule (reversible):
 *  - names are lower-cased (Azure is case-insensitive, our contract reports lower-case);
 *  - a valid name that does not start with "cmx_" is stored as is;
 *  - any other name is stored as "cmx_" + the name with every byte of its UTF-8 outside
 *    [a-z0-9] written as "_xx" (two lower-case hex digits): "content-id" → "cmx_content_2did",
 *    "a_b" (only when escaped) → "cmx_a_5fb". Reading reverses it, so the name round-trips.
 * Values, and Content-Type & co: those HTTP cannot carry as they are go as encoded words
 * (../encoded-word.ts), decoded on read. Sent as it is, a UTF-8 filename in a
 * Content-Disposition went out as Latin-1 (or was refused by Node) while the Shared Key
 * signature covers its UTF-8, so the write failed (a 403) or the value came back garbled.
 * Reserved names: "mtime" (source mtime, RFC 3339 with ms, as rclone writes it) and "md5" (hex MD5 of
 * the whole object, written for block-list uploads) are ours: a source's own "mtime"/"md5"
 * metadata is replaced by ours on write, and both are reported as fields, not metadata.
 */
import type { BlobHTTPHeaders, Metadata } from "@azure/storage-blob";
import type { ObjectInfo } from "../types.js";
import { decodeMetaValue, encodeHeaderValue, encodeMetaValue } from "../encoded-word.js";

export { decodeMetaValue, encodeMetaValue };

export const MTIME_KEY = "mtime";
export const MD5_KEY = "md5";
const ESCAPED = "cmx_";
const VALID_NAME = /^[a-z_][a-z0-9_]*$/;

export function encodeMetaName(name: string): string {
  const lower = name.toLowerCase();
  if (VALID_NAME.test(lower) && !lower.startsWith(ESCAPED)) return lower;
  let out = ESCAPED;
  for (const byte of Buffer.from(lower, "utf8")) {
    const c = String.fromCharCode(byte);
    out += /[a-z0-9]/.test(c) ? c : "_" + byte.toString(16).padStart(2, "0");
  }
  return out;
}

export function decodeMetaName(stored: string): string {
  const lower = stored.toLowerCase();
  if (!lower.startsWith(ESCAPED)) return lower;
  const bytes: number[] = [];
  const body = lower.slice(ESCAPED.length);
  for (let i = 0; i < body.length; i++) {
    if (body[i] === "_" && /^[0-9a-f]{2}$/.test(body.slice(i + 1, i + 3))) {
      bytes.push(parseInt(body.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(body.charCodeAt(i));
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

/** The metadata we store for `source`: its user metadata (encoded) plus mtime and `md5`. */
export function toAzureMetadata(source: ObjectInfo, md5?: string): Metadata {
  const out: Metadata = {};
  for (const [name, value] of Object.entries(source.metadata ?? {})) {
    const lower = name.toLowerCase();
    if (lower === MTIME_KEY || lower === MD5_KEY) continue;
    out[encodeMetaName(lower)] = encodeMetaValue(value);
  }
  if (source.mtime !== undefined && Number.isFinite(source.mtime)) out[MTIME_KEY] = new Date(Math.round(source.mtime)).toISOString();
  if (md5) out[MD5_KEY] = md5;
  return out;
}

export function toHttpHeaders(source: ObjectInfo, md5?: string): BlobHTTPHeaders {
  const h: BlobHTTPHeaders = {};
  if (source.contentType) h.blobContentType = encodeHeaderValue(source.contentType);
  if (source.cacheControl) h.blobCacheControl = encodeHeaderValue(source.cacheControl);
  if (source.contentEncoding) h.blobContentEncoding = encodeHeaderValue(source.contentEncoding);
  if (source.contentDisposition) h.blobContentDisposition = encodeHeaderValue(source.contentDisposition);
  if (source.contentLanguage) h.blobContentLanguage = encodeHeaderValue(source.contentLanguage);
  if (md5) h.blobContentMD5 = Buffer.from(md5, "hex");
  return h;
}

/** The blob properties both listings and Get Blob Properties give us. */
export interface AzureProps {
  contentLength?: number;
  lastModified?: Date;
  etag?: string;
  contentMD5?: Uint8Array;
  contentType?: string;
  cacheControl?: string;
  contentEncoding?: string;
  contentDisposition?: string;
  contentLanguage?: string;
}

export function hex(bytes: Uint8Array | undefined): string | undefined {
  return bytes && bytes.length ? Buffer.from(bytes).toString("hex") : undefined;
}

/**
 * Our "mtime" metadata: RFC 3339 (what rclone writes to Azure too). Also understood: integer ms
 * (what cloudmigrate wrote before) and seconds with a fraction ("1700000000.5"). Anything else → undefined.
 */
export function parseMtime(v: string): number | undefined {
  if (/^\d+$/.test(v)) return Number(v);
  if (/^\d+\.\d*$/.test(v)) return Math.round(Number(v) * 1000);
  const t = /^\d{4}-\d\d-\d\dT/.test(v) ? Date.parse(v) : NaN;
  return Number.isNaN(t) ? undefined : t;
}

/** ObjectInfo from properties + raw metadata; mtime from our "mtime" metadata, else Last-Modified. */
export function toObjectInfo(key: string, p: AzureProps, rawMeta: Metadata | undefined): ObjectInfo {
  const metadata: Record<string, string> = {};
  let mtime: number | undefined;
  let metaMd5: string | undefined;
  for (const [stored, value] of Object.entries(rawMeta ?? {})) {
    const name = decodeMetaName(stored);
    if (name === MTIME_KEY) mtime = parseMtime(value);
    else if (name === MD5_KEY) metaMd5 = /^[0-9a-f]{32}$/i.test(value) ? value.toLowerCase() : undefined;
    else metadata[name] = decodeMetaValue(value);
  }
  const info: ObjectInfo = {
    key,
    size: p.contentLength ?? 0,
    mtime: mtime ?? p.lastModified?.getTime(),
  };
  // Bare, as a listing gives it (Get Blob Properties and Get Blob quote it, as HTTP ETags are).
  if (p.etag) info.etag = p.etag.replace(/^"(.*)"$/, "$1");
  const md5 = hex(p.contentMD5) ?? metaMd5;
  if (md5) info.md5 = md5;
  if (p.contentType) info.contentType = decodeMetaValue(p.contentType);
  if (p.cacheControl) info.cacheControl = decodeMetaValue(p.cacheControl);
  if (p.contentEncoding) info.contentEncoding = decodeMetaValue(p.contentEncoding);
  if (p.contentDisposition) info.contentDisposition = decodeMetaValue(p.contentDisposition);
  if (p.contentLanguage) info.contentLanguage = decodeMetaValue(p.contentLanguage);
  if (Object.keys(metadata).length) info.metadata = metadata;
  return info;
}
