/**
 * GCS object resources ⇄ ObjectInfo, and the object-name rules.
 *
 * Preserved mtime lives in user metadata "mtime" as RFC 3339 with ms, as rclone writes it. On the
 * way back we also understand integer ms (what cloudmigrate wrote before) and gsutil's
 * "goog-reserved-file-mtime" (seconds).
 * Multipart objects (composed, so GCS has no md5Hash for them) carry their whole-object MD5 in
 * user metadata "md5" (hex). Both bookkeeping keys are reported as `mtime`/`md5`, not as metadata.
 */
import type { ObjectInfo, WriteResult } from "../types.js";

/** The JSON API object resource, as far as we read it. Numbers arrive as strings. */
export interface GcsObject {
  name: string;
  size?: string;
  md5Hash?: string;
  crc32c?: string;
  etag?: string;
  generation?: string;
  updated?: string;
  contentType?: string;
  cacheControl?: string;
  contentEncoding?: string;
  contentDisposition?: string;
  contentLanguage?: string;
  metadata?: Record<string, string | null>;
}

/** The `fields` selector for object resources: a smaller answer than the full resource. */
export const OBJECT_FIELDS =
  "name,size,md5Hash,crc32c,etag,generation,updated,contentType,cacheControl,contentEncoding," +
  "contentDisposition,contentLanguage,metadata";

/** Where multipart parts live: a hidden top-level folder of the bucket. */
export const PARTS_ROOT = ".cloudmigrate-parts/";

/** GCS limit on object names, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 1024;

export function b64ToHex(b64: string | undefined): string | undefined {
  if (!b64) return undefined;
  const buf = Buffer.from(b64, "base64");
  return buf.length === 16 ? buf.toString("hex") : undefined;
}

export function hexToB64(hex: string): string {
  return Buffer.from(hex, "hex").toString("base64");
}

const HEX_MD5 = /^[0-9a-f]{32}$/;

/** Parse a preserved mtime from user metadata (names already lower-cased). */
function preservedMtime(meta: Record<string, string>): { ms: number; key: string } | undefined {
  const m = meta["mtime"];
  if (m !== undefined) {
    const ms = /^\d+$/.test(m) ? Number(m) : Date.parse(m);
    if (Number.isFinite(ms)) return { ms, key: "mtime" };
  }
  const g = meta["goog-reserved-file-mtime"];
  if (g !== undefined && /^\d+$/.test(g)) return { ms: Number(g) * 1000, key: "goog-reserved-file-mtime" };
  return undefined;
}

/** Map an object resource to ObjectInfo with `key` relative to the location prefix. */
export function toObjectInfo(o: GcsObject, key: string): ObjectInfo {
  const meta: Record<string, string> = {};
  for (const [k, v] of Object.entries(o.metadata ?? {})) if (v !== null && v !== undefined) meta[k.toLowerCase()] = v;
  const info: ObjectInfo = { key, size: Number(o.size ?? 0) };
  const pm = preservedMtime(meta);
  if (pm) {
    info.mtime = pm.ms;
    delete meta[pm.key];
  } else if (o.updated) {
    const t = Date.parse(o.updated);
    if (Number.isFinite(t)) info.mtime = t;
  }
  if (o.etag) info.etag = o.etag;
  const serviceMd5 = b64ToHex(o.md5Hash);
  const metaMd5 = meta["md5"]?.toLowerCase();
  if (serviceMd5) info.md5 = serviceMd5;
  else if (metaMd5 && HEX_MD5.test(metaMd5)) info.md5 = metaMd5;
  if (metaMd5 && HEX_MD5.test(metaMd5)) delete meta["md5"];
  if (o.crc32c) info.crc32c = o.crc32c;
  if (o.contentType) info.contentType = o.contentType;
  if (o.cacheControl) info.cacheControl = o.cacheControl;
  if (o.contentEncoding) info.contentEncoding = o.contentEncoding;
  if (o.contentDisposition) info.contentDisposition = o.contentDisposition;
  if (o.contentLanguage) info.contentLanguage = o.contentLanguage;
  if (Object.keys(meta).length > 0) info.metadata = meta;
  return info;
}

/** What an upload/compose response tells us about the stored object. */
export function toWriteResult(o: GcsObject): WriteResult {
  const r: WriteResult = { size: Number(o.size ?? 0) };
  const md5 = b64ToHex(o.md5Hash);
  if (md5) r.md5 = md5;
  if (o.crc32c) r.crc32c = o.crc32c;
  if (o.etag) r.etag = o.etag;
  return r;
}

/** Resource fields to store for `source`: content headers, user metadata, mtime (and md5). */
export function resourceFor(source: ObjectInfo, extraMeta?: Record<string, string>): Record<string, unknown> {
  const res: Record<string, unknown> = {};
  if (source.contentType) res.contentType = source.contentType;
  if (source.cacheControl) res.cacheControl = source.cacheControl;
  if (source.contentEncoding) res.contentEncoding = source.contentEncoding;
  if (source.contentDisposition) res.contentDisposition = source.contentDisposition;
  if (source.contentLanguage) res.contentLanguage = source.contentLanguage;
  const meta: Record<string, string> = {};
  for (const [k, v] of Object.entries(source.metadata ?? {})) meta[k.toLowerCase()] = v;
  if (source.mtime !== undefined && Number.isFinite(source.mtime)) meta["mtime"] = new Date(Math.round(source.mtime)).toISOString();
  Object.assign(meta, extraMeta);
  if (Object.keys(meta).length > 0) res.metadata = meta;
  return res;
}

/** Percent-encode an object name as one path segment ("/" becomes %2F). */
export function encName(name: string): string {
  return encodeURIComponent(name);
}

/** Why `name` (the full object name) cannot exist in GCS, or undefined. */
export function nameProblem(name: string): string | undefined {
  if (name === "") return "an object name cannot be empty";
  if (/\p{Cs}/u.test(name)) return "the name is not valid Unicode (lone surrogate)";
  if (Buffer.byteLength(name, "utf8") > MAX_NAME_BYTES) return `GCS object names are at most ${MAX_NAME_BYTES} bytes`;
  if (/[\r\n]/.test(name)) return "GCS object names cannot contain carriage return or line feed";
  if (name === "." || name === "..") return `GCS object names cannot be "${name}"`;
  if (name.startsWith(".well-known/acme-challenge/")) return "GCS reserves names under .well-known/acme-challenge/";
  if (name.startsWith(PARTS_ROOT)) return `the ${PARTS_ROOT} folder is reserved for cloudmigrate's multipart parts`;
  return undefined;
}

/**
 * The object resource as a media download's response headers describe it, so a whole-object
 * read carries the same info as `stat` without a second request.
 */
export function resourceFromHeaders(h: Record<string, string | string[] | undefined>): GcsObject {
  const one = (name: string): string | undefined => {
    const v = h[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const o: GcsObject = { name: "" };
  o.size = one("x-goog-stored-content-length") ?? one("content-length");
  for (const part of String(h["x-goog-hash"] ?? "").split(/,\s*/)) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const [k, v] = [part.slice(0, eq), part.slice(eq + 1)];
    if (k === "md5") o.md5Hash = v;
    if (k === "crc32c") o.crc32c = v;
  }
  o.etag = one("etag")?.replace(/^"(.*)"$/, "$1"); // the JSON API's etag is unquoted
  o.generation = one("x-goog-generation");
  const lm = one("last-modified");
  if (lm) o.updated = new Date(lm).toISOString();
  o.contentType = one("content-type");
  o.cacheControl = one("cache-control");
  o.contentEncoding = one("x-goog-stored-content-encoding") ?? one("content-encoding");
  // "identity" is what the header says of an object stored without an encoding.
  if (o.contentEncoding === "identity") delete o.contentEncoding;
  o.contentDisposition = one("content-disposition");
  o.contentLanguage = one("content-language");
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) {
    if (k.startsWith("x-goog-meta-") && v !== undefined) metadata[k.slice("x-goog-meta-".length)] = Array.isArray(v) ? v.join(",") : v;
  }
  o.metadata = metadata;
  return o;
}
