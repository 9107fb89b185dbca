/**
 * PutObject for small bodies and whole-object GetObject without the SDK's per-request
 * middleware (about 0.5-1 ms of CPU a request, more than a 4 KiB object costs to move): the
 * request is signed with the SDK's own SigV4 signer and sent on the client's keep-alive agent.
 * And GETs whose body lands straight in the caller's memory (getInto, on http-into.ts sockets).
 *
 * Where to send it is never worked out here: the SDK resolves the endpoint (region, path or
 * virtual-host style, custom endpoints), and the first PutObject, GetObject or HeadObject that
 * goes through the SDK records the URL it resolved; later requests reuse it. Until then, or if
 * the recorded URL does not end in the key as encoded here, the SDK path is used.
 *
 * Responses are mapped like SDK errors (mapS3Error sees the same Code, status and headers).
 */
import crypto from "node:crypto";
import http from "node:http";
import https from "node:https";
import type { S3Client } from "@aws-sdk/client-s3";
import type { SignatureV4 } from "@smithy/signature-v4";
import { signing } from "./sdk.js";
import type { S3ReadHeaders } from "./meta.js";
import { DirectGet } from "../http-into.js";

/** Where the bucket's objects live, as the SDK resolved it. */
interface Target {
  protocol: string;
  hostname: string;
  port?: number;
  /** Path before "/<encoded key>": "/bucket" (path style) or "" (virtual host). */
  basePath: string;
}

/** The shape mapS3Error reads from SDK errors. */
export interface LeanS3Error extends Error {
  Code: string;
  $metadata: { httpStatusCode: number };
  $response: { statusCode: number; headers: Record<string, string> };
}

export interface LeanPutResult {
  etag?: string;
  serverSideEncryption?: string;
  sseCustomerAlgorithm?: string;
  /** The CRC32C S3 confirms, when the request carried one. */
  checksumCrc32c?: string;
}

/** S3's key encoding in paths: RFC 3986 unreserved characters and "/" stay as they are. */
export function encodeKey(key: string): string {
  return key
    .split("/")
    .map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase()))
    .join("/");
}

type SourceData = string | ArrayBuffer | ArrayBufferView;
const bytes = (d: SourceData): string | Uint8Array =>
  typeof d === "string" ? d : d instanceof ArrayBuffer ? new Uint8Array(d) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength);

/** The signer's hash: SHA-256, or HMAC-SHA-256 with a secret, on node:crypto. */
class Sha256 {
  private readonly h: crypto.Hash | crypto.Hmac;
  constructor(secret?: SourceData) {
    this.h = secret ? crypto.createHmac("sha256", bytes(secret)) : crypto.createHash("sha256");
  }
  update(data: SourceData): void {
    this.h.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return this.h.digest();
  }
}

/** A GetObject response: the body (an http.IncomingMessage) and its headers, SDK-shaped. */
export interface LeanGetResult {
  body: http.IncomingMessage;
  headers: S3ReadHeaders;
}

export class LeanS3 {
  private target?: Target;
  private signer?: Promise<SignatureV4>;
  private readonly direct: DirectGet;

  constructor(
    private readonly client: S3Client,
    private readonly agents: { http: http.Agent; https: https.Agent },
    private readonly idleTimeoutMs: number,
  ) {
    this.direct = new DirectGet(idleTimeoutMs);
  }

  get ready(): boolean {
    return this.target !== undefined;
  }

  /** Record the URL the SDK resolved for a request on `key` (a build-step middleware calls this). */
  learn(key: string, req: { protocol?: string; hostname?: string; port?: number; path?: string }): void {
    if (this.target || !req.hostname || !req.path || !req.protocol) return;
    const tail = "/" + encodeKey(key);
    if (!req.path.endsWith(tail)) return;
    this.target = { protocol: req.protocol, hostname: req.hostname, port: req.port, basePath: req.path.slice(0, -tail.length) };
  }

  /** PUT `body` as `key`; `headers` are the object's content headers and x-amz-meta-*. */
  async put(key: string, body: Buffer, headers: Record<string, string>, signal?: AbortSignal): Promise<LeanPutResult> {
    // A Content-MD5 or x-amz-checksum-crc32c (the caller always sends one) lets S3 check the
    // body, so it is not hashed again for the signature.
    const res = await this.request("PUT", key, { ...headers, "content-length": String(body.length), "x-amz-content-sha256": "UNSIGNED-PAYLOAD" }, body, signal);
    res.resume(); // PUT answers carry no body worth reading
    const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
    return {
      etag: one(res.headers.etag),
      serverSideEncryption: one(res.headers["x-amz-server-side-encryption"]),
      sseCustomerAlgorithm: one(res.headers["x-amz-server-side-encryption-customer-algorithm"]),
      checksumCrc32c: one(res.headers["x-amz-checksum-crc32c"]),
    };
  }

  /** GET the whole object `key`; the body streams from the response. */
  async get(key: string, signal?: AbortSignal): Promise<LeanGetResult> {
    const res = await this.request("GET", key, { "x-amz-content-sha256": EMPTY_SHA256 }, undefined, signal);
    return { body: res, headers: readHeaders(res.headers) };
  }

  /**
   * Bytes of `key` into `target`, read off the socket straight into it (see http-into.ts): from
   * `start`, as many as fit; or, without `start`, the whole object, which must fit (BodyTooLong
   * if it does not, before any of it is read). Throws DirectUnsupported when the store answers
   * in a way that path does not read: the caller then reads through the SDK.
   */
  async getInto(key: string, target: Buffer, start?: number, onBody?: (got: number) => void): Promise<{ length: number; headers: S3ReadHeaders }> {
    const headers: Record<string, string> = { "x-amz-content-sha256": EMPTY_SHA256 };
    if (start !== undefined) headers.range = `bytes=${start}-${start + target.length - 1}`;
    const { t, path, signed } = await this.sign("GET", key, headers);
    const origin = { protocol: t.protocol === "https:" ? ("https:" as const) : ("http:" as const), hostname: t.hostname, port: t.port, secureContext: this.agents.https.options.secureContext };
    const res = await this.direct.get(origin, path, signed, target, onBody);
    if (res.status < 200 || res.status >= 300) throw serviceError(res.status, res.errorBody ?? "", res.headers);
    return { length: res.length, headers: readHeaders(res.headers) };
  }

  /** Close the sockets the direct reads keep alive. */
  close(): void {
    this.direct.close();
  }

  /** Sign and send `method` on `key` at the learned URL. */
  private async request(method: string, key: string, headers: Record<string, string>, body: Buffer | undefined, signal?: AbortSignal): Promise<http.IncomingMessage> {
    const { t, path, signed } = await this.sign(method, key, headers, body);
    return this.send(method, t, path, signed, body, signal);
  }

  /** The learned URL's path for `key`, and `headers` with host and the SigV4 signature added. */
  private async sign(method: string, key: string, headers: Record<string, string>, body?: Buffer): Promise<{ t: Target; path: string; signed: Record<string, string> }> {
    const t = this.target!;
    const signer = await (this.signer ??= this.makeSigner());
    const host = t.port ? `${t.hostname}:${t.port}` : t.hostname;
    const path = `${t.basePath}/${encodeKey(key)}`;
    const signed = await signer.sign({ method, protocol: t.protocol, hostname: t.hostname, port: t.port, path, query: {}, headers: { ...headers, host }, body });
    return { t, path, signed: signed.headers };
  }

  private async makeSigner(): Promise<SignatureV4> {
    const region = await this.client.config.region();
    return new signing.SignatureV4({ credentials: this.client.config.credentials, region, service: "s3", sha256: Sha256, uriEscapePath: false, applyChecksum: false });
  }

  /**
   * Send one request. A 2xx response is handed over unread (its body is the caller's); any
   * other is read whole and rejected as an SDK-shaped error. Silence for `idleTimeoutMs`, also
   * mid-body, destroys the request.
   */
  private send(method: string, t: Target, path: string, headers: Record<string, string>, body: Buffer | undefined, signal?: AbortSignal): Promise<http.IncomingMessage> {
    const mod = t.protocol === "https:" ? https : http;
    const agent = t.protocol === "https:" ? this.agents.https : this.agents.http;
    return new Promise((resolve, reject) => {
      const req = mod.request({ method, hostname: t.hostname, port: t.port, path, headers, agent, signal });
      req.setTimeout(this.idleTimeoutMs, () => req.destroy(Object.assign(new Error(`no data for ${this.idleTimeoutMs} ms`), { code: "ETIMEDOUT" })));
      req.on("error", reject);
      req.on("response", (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) return resolve(res);
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => reject(serviceError(status, Buffer.concat(chunks).toString("utf8"), res.headers)));
      });
      req.end(body);
    });
  }
}

/** SHA-256 of an empty body, the payload hash of a GET. */
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/** A GetObject response's headers in the shape the SDK gives them (user metadata unprefixed). */
function readHeaders(raw: http.IncomingHttpHeaders): S3ReadHeaders {
  const one = (name: string): string | undefined => {
    const v = raw[name];
    return Array.isArray(v) ? v.join(", ") : v;
  };
  const Metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (k.startsWith("x-amz-meta-") && v !== undefined) Metadata[k.slice("x-amz-meta-".length)] = Array.isArray(v) ? v.join(", ") : v;
  }
  const length = one("content-length");
  const modified = one("last-modified");
  return {
    ContentLength: length === undefined ? undefined : Number(length),
    LastModified: modified === undefined ? undefined : new Date(modified),
    ETag: one("etag"),
    ContentType: one("content-type"),
    CacheControl: one("cache-control"),
    ContentEncoding: one("content-encoding"),
    ContentDisposition: one("content-disposition"),
    ContentLanguage: one("content-language"),
    Metadata,
    ServerSideEncryption: one("x-amz-server-side-encryption"),
    SSECustomerAlgorithm: one("x-amz-server-side-encryption-customer-algorithm"),
  };
}

function serviceError(status: number, xml: string, raw: http.IncomingHttpHeaders): LeanS3Error {
  const tag = (name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1];
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(", ") : v;
  const code = tag("Code") ?? (status === 404 ? "NotFound" : `Http${status}`);
  return Object.assign(new Error(tag("Message") ?? `HTTP ${status}`), {
    name: code,
    Code: code,
    $metadata: { httpStatusCode: status },
    $response: { statusCode: status, headers },
  });
}
