/**
 * The writes without the SDK: Put Blob, Put Block and Put Block List, the requests an upload
 * makes. Through the SDK's pipeline each cost about 2 CPU-ms besides sending the body (client,
 * policies, request id, logging, serializer): S3→Azure, 1 GiB in 8 MiB blocks, its code was
 * ~140 ms of the main thread's ~1.3 CPU-s; and a copy that only writes never loads the SDK
 * (~45 ms of each start).
 *
 * Signed with the account's shared key (shared-key.ts), or authorized by the SAS in the blob
 * URL; sent on the connection's keep-alive agent (its idle timeout fails a silent request with
 * ETIMEDOUT). Non-2xx answers become RestError-shaped errors (direct.ts) for mapAzureError; a
 * request cut off is Node's socket error; `signal` aborts with an AbortError.
 */
import http from "node:http";
import https from "node:https";
import type { Readable } from "node:stream";
import type { BlobHTTPHeaders, Metadata } from "@azure/storage-blob";
import { API_VERSION, restError } from "./direct.js";
import { type SharedKey, sharedKeyAuthorization } from "./shared-key.js";

/** The start of an error answer kept for its code and message. */
const MAX_ERROR_BODY = 64 * 1024;

/** What a write answers: the blob's ETag, and for Put Blob the MD5 Azure computed (raw bytes). */
export interface PutResult {
  etag?: string;
  contentMD5?: Buffer;
}

/** The x-ms-blob-* and x-ms-meta-* headers that set a blob's properties and metadata. */
function blobHeaders(props: BlobHTTPHeaders, metadata: Metadata): Record<string, string> {
  const h: Record<string, string> = {};
  if (props.blobContentType) h["x-ms-blob-content-type"] = props.blobContentType;
  if (props.blobCacheControl) h["x-ms-blob-cache-control"] = props.blobCacheControl;
  if (props.blobContentEncoding) h["x-ms-blob-content-encoding"] = props.blobContentEncoding;
  if (props.blobContentDisposition) h["x-ms-blob-content-disposition"] = props.blobContentDisposition;
  if (props.blobContentLanguage) h["x-ms-blob-content-language"] = props.blobContentLanguage;
  if (props.blobContentMD5) h["x-ms-blob-content-md5"] = Buffer.from(props.blobContentMD5).toString("base64");
  for (const [name, value] of Object.entries(metadata)) h[`x-ms-meta-${name.toLowerCase()}`] = value;
  return h;
}

export class BlobRequests {
  constructor(
    private readonly key: SharedKey | undefined,
    private readonly agent: http.Agent,
  ) {}

  /** Put Blob: `body` (`size` bytes) as the block blob at `blobUrl`; Azure checks it against `md5` if given. */
  putBlob(
    blobUrl: string,
    body: Buffer | Readable,
    size: number,
    props: BlobHTTPHeaders,
    metadata: Metadata,
    md5?: Buffer,
    signal?: AbortSignal,
  ): Promise<PutResult> {
    const headers: Record<string, string> = { "content-length": String(size), "x-ms-blob-type": "BlockBlob", ...blobHeaders(props, metadata) };
    if (md5) headers["content-md5"] = md5.toString("base64");
    return this.put(new URL(blobUrl), headers, body, signal);
  }

  /** Put Block: `body` as block `blockId` (base64) of the blob at `blobUrl`, checked by Azure against `md5`. */
  async putBlock(blobUrl: string, blockId: string, body: Buffer, md5: Buffer, signal?: AbortSignal): Promise<void> {
    const url = withQuery(blobUrl, `comp=block&blockid=${encodeURIComponent(blockId)}`);
    await this.put(url, { "content-length": String(body.length), "content-md5": md5.toString("base64") }, body, signal);
  }

  /** Put Block List: the blob at `blobUrl` becomes blocks `ids` (base64, staged), in order, with these properties and metadata. */
  putBlockList(blobUrl: string, ids: string[], props: BlobHTTPHeaders, metadata: Metadata, signal?: AbortSignal): Promise<PutResult> {
    const xml = Buffer.from(`<?xml version="1.0" encoding="utf-8"?><BlockList>${ids.map((id) => `<Latest>${id}</Latest>`).join("")}</BlockList>`);
    const headers = { "content-length": String(xml.length), "content-type": "application/xml; charset=utf-8", ...blobHeaders(props, metadata) };
    return this.put(withQuery(blobUrl, "comp=blocklist"), headers, xml, signal);
  }

  private put(url: URL, headers: Record<string, string>, body: Buffer | Readable, signal?: AbortSignal): Promise<PutResult> {
    headers["x-ms-date"] = new Date().toUTCString();
    headers["x-ms-version"] = API_VERSION;
    if (this.key) headers.authorization = sharedKeyAuthorization(this.key, url, headers, "PUT");
    const request = url.protocol === "https:" ? https.request : http.request;
    return new Promise((resolve, reject) => {
      const req = request(url, { method: "PUT", headers, agent: this.agent, signal }, (res) => {
        const status = res.statusCode ?? 0;
        const ok = status >= 200 && status < 300;
        const chunks: Buffer[] = [];
        let kept = 0;
        res.on("data", (c: Buffer) => {
          if (ok || kept >= MAX_ERROR_BODY) return;
          chunks.push(c);
          kept += c.length;
        });
        res.on("error", reject);
        res.on("end", () => {
          const h: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h[k] = Array.isArray(v) ? v.join(", ") : v;
          if (!ok) return reject(restError({ status, headers: h, errorBody: Buffer.concat(chunks).toString("utf8") }));
          resolve({ etag: h.etag, contentMD5: h["content-md5"] ? Buffer.from(h["content-md5"], "base64") : undefined });
        });
      });
      req.on("error", reject);
      if (Buffer.isBuffer(body)) {
        req.end(body);
      } else {
        // A failing body fails the request (the caller sees the request's error and its own body's).
        body.on("error", (err) => req.destroy(err));
        body.pipe(req);
      }
    });
  }
}

function withQuery(blobUrl: string, query: string): URL {
  const url = new URL(blobUrl);
  url.search = [url.search.slice(1), query].filter(Boolean).join("&");
  return url;
}
