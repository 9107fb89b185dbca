/**
 * A thin client for the GCS JSON API over node:http(s), with a keep-alive agent of our own.
 *
 * Why not the @google-cloud/storage request stack: it reads STORAGE_EMULATOR_HOST from
 * process.env only (not AdapterOptions.env) and then drops the "/storage/v1" base path; its
 * node-fetch timeout covers a whole upload rather than silence; and on any download stream error
 * it destroys the shared agent, resetting every other transfer in flight. We still use the
 * library's GoogleAuth (Application Default Credentials) for tokens.
 *
 * Contract: `send` resolves with the response once its headers arrive and the status is 2xx;
 * otherwise it rejects with a GcsHttpError (status, service message, reason, Retry-After) or the
 * network error as thrown by Node. No retries here: the engine retries.
 */
import http from "node:http";
import https from "node:https";
import { Readable } from "node:stream";
import { pipeline } from "node:stream";
import { GcsAuthError, GcsHttpError } from "./errors.js";
import { DirectGet, type IntoResponse } from "../http-into.js";

/** Produces Authorization headers; undefined for an emulator (no auth). */
export type AuthHeaders = () => Promise<Record<string, string>>;

export interface GcsRequest {
  method: "GET" | "POST" | "PUT" | "DELETE" | "PATCH" | "HEAD";
  /** Path below the endpoint, already percent-encoded, e.g. "/storage/v1/b/bkt/o". */
  path: string;
  query?: Record<string, string | undefined>;
  headers?: Record<string, string>;
  /**
   * A Buffer/string is sent with its length, and so are Buffers in sequence (no copy into one);
   * a stream is piped (with `contentLength` if known).
   */
  body?: Buffer | Buffer[] | string | Readable;
  contentLength?: number;
  signal?: AbortSignal;
}

/** Error bodies are read up to this many bytes for their message. */
const MAX_ERROR_BODY = 64 * 1024;

export class GcsHttp {
  private readonly agent: http.Agent;
  private readonly mod: typeof http | typeof https;
  /** Sockets of getInto, kept alive apart from the agent's. */
  private direct?: DirectGet;

  constructor(
    /** e.g. https://storage.googleapis.com or http://127.0.0.1:4443 (no trailing slash). */
    readonly endpoint: URL,
    private readonly auth: AuthHeaders | undefined,
    /** Silence (no bytes either way) longer than this aborts the request. */
    private readonly timeoutMs: number,
  ) {
    this.mod = endpoint.protocol === "http:" ? http : https;
    // Idle pooled sockets are dropped after 30 s, before servers tend to close them under us.
    const agentOpts = { keepAlive: true, maxSockets: 256, maxFreeSockets: 256, scheduling: "lifo" as const, timeout: 30_000 };
    this.agent = this.mod === http ? new http.Agent(agentOpts) : new https.Agent(agentOpts);
  }

  /**
   * GET `path` with the 2xx body written straight into `target` (http-into.ts): rejects like
   * `send` for any other status; DirectUnsupported, BodyTooLong as http-into throws them.
   */
  async getInto(path: string, query: Record<string, string>, headers: Record<string, string>, target: Buffer, onBody?: (got: number) => void): Promise<IntoResponse> {
    const url = new URL(this.endpoint.href.replace(/\/$/, "") + path);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    const res = await (this.direct ??= new DirectGet(this.timeoutMs)).getUrl(url, { ...(await this.authHeaders()), ...headers }, target, onBody);
    if (res.status < 200 || res.status >= 300) throw httpError(res.status, res.errorBody ?? "", res.headers);
    return res;
  }

  private async authHeaders(): Promise<Record<string, string>> {
    if (!this.auth) return {};
    try {
      return await this.auth();
    } catch (err) {
      throw authError(err);
    }
  }

  /** Send one request; resolves with the 2xx response (body unread). */
  async send(req: GcsRequest): Promise<http.IncomingMessage> {
    const headers: Record<string, string> = { ...(await this.authHeaders()), ...req.headers };
    const url = new URL(this.endpoint.href.replace(/\/$/, "") + req.path);
    for (const [k, v] of Object.entries(req.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    let body = req.body;
    if (typeof body === "string") body = Buffer.from(body);
    if (Buffer.isBuffer(body)) headers["content-length"] = String(body.length);
    else if (Array.isArray(body)) headers["content-length"] = String(body.reduce((n, b) => n + b.length, 0));
    else if (body && req.contentLength !== undefined) headers["content-length"] = String(req.contentLength);
    else if (!body && req.method !== "GET" && req.method !== "HEAD") headers["content-length"] = "0";

    return new Promise<http.IncomingMessage>((resolve, reject) => {
      let settled = false;
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        reject(err);
      };
      const r = this.mod.request(url, { method: req.method, headers, agent: this.agent, signal: req.signal });
      let response: http.IncomingMessage | undefined;
      // Silence on the socket, before or during the response body, ends the request; the
      // response (if any) fails with the timeout, not with a bare "aborted".
      r.setTimeout(this.timeoutMs, () => {
        const e = Object.assign(new Error(`no data for ${this.timeoutMs} ms`), { code: "ETIMEDOUT" });
        if (response && !response.complete) response.destroy(e);
        r.destroy(e);
      });
      r.on("error", fail);
      r.on("response", (res) => {
        response = res;
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) {
          settled = true;
          resolve(res);
          return;
        }
        readErrorBody(res).then(
          (text) => fail(httpError(status, text, res.headers)),
          () => fail(httpError(status, "", res.headers)),
        );
      });
      if (body instanceof Readable) {
        const stream = body;
        pipeline(stream, r, (err) => {
          // The body's own failure (e.g. the source broke) is the error to report, not the
          // resulting socket reset; a response that already arrived is left alone.
          if (err && !settled) fail(stream.errored ?? err);
        });
      } else if (Array.isArray(body)) {
        for (const b of body) r.write(b);
        r.end();
      } else {
        r.end(body);
      }
    });
  }

  /** Send and parse a JSON response body (an empty body yields undefined). */
  async json<T>(req: GcsRequest): Promise<T> {
    const res = await this.send(req);
    const text = await readAll(res);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** Send and discard the response body (keeps the socket reusable). */
  async empty(req: GcsRequest): Promise<void> {
    const res = await this.send(req);
    res.resume();
    await new Promise<void>((resolve, reject) => {
      res.on("end", resolve);
      res.on("error", reject);
    });
  }

  close(): void {
    this.agent.destroy();
    this.direct?.close();
  }
}

async function readAll(res: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

async function readErrorBody(res: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res) {
    if (n < MAX_ERROR_BODY) chunks.push(c as Buffer);
    n += (c as Buffer).length;
  }
  return Buffer.concat(chunks).toString("utf8").slice(0, MAX_ERROR_BODY);
}

/** Build a GcsHttpError from a JSON ({"error":{...}}), XML or plain-text error body. */
export function httpError(status: number, text: string, headers: http.IncomingHttpHeaders): GcsHttpError {
  let message = "";
  let reason: string | undefined;
  try {
    const j = JSON.parse(text) as { error?: { message?: string; errors?: { reason?: string }[] } | string };
    if (typeof j.error === "object" && j.error) {
      message = j.error.message ?? "";
      reason = j.error.errors?.[0]?.reason;
    } else if (typeof j.error === "string") message = j.error;
  } catch {
    const m = /<Message>([^<]*)<\/Message>/.exec(text);
    message = m ? m[1] : text.trim();
  }
  const ra = headers["retry-after"];
  return new GcsHttpError(status, message, reason, Array.isArray(ra) ? ra[0] : ra);
}

/** Classify a GoogleAuth failure: unreachable token service (retry) vs refused credentials. */
function authError(err: unknown): GcsAuthError {
  const e = err as { message?: string; code?: unknown; response?: { status?: number } } | null;
  const message = (e?.message ?? String(err)).split("\n")[0];
  const status = e?.response?.status;
  const transient =
    (status !== undefined && (status === 429 || status >= 500)) ||
    (status === undefined &&
      typeof e?.code === "string" &&
      /^(ECONNRESET|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|ENOTFOUND|ENETUNREACH|EHOSTUNREACH|EPIPE)$/.test(e.code));
  return new GcsAuthError(message, transient, err);
}
