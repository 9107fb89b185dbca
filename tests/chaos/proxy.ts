/**
 * A fault-injecting HTTP reverse proxy for the chaos tests (node:http only, no dependencies).
 *
 * `startFaultProxy({ target })` listens on a free 127.0.0.1 port and forwards every request to
 * `target` (an emulator's http://host:port), streaming bodies both ways (never buffering a whole
 * body). At `rate` per request (a seeded PRNG decides, so a seed replays the same decisions for the
 * same request order) it injects one fault, chosen by `weights`:
 *
 *  - reset           the client's socket is destroyed as soon as the request arrives; the
 *                    emulator never sees it.
 *  - reset-after     the request is forwarded and answered by the emulator, then the client's
 *                    socket is destroyed after the response headers (or before them, when the
 *                    answer has no body): the client cannot know whether it took effect.
 *  - http500 / http503
 *  - http429         429 without Retry-After.
 *  - http429-ra      429 with `Retry-After: <retryAfterSeconds>`.
 *  - slowdown        S3's 503 `<Error><Code>SlowDown</Code>…` XML body.
 *                    (The answered faults drain the request body first; the emulator never sees
 *                    the request.)
 *  - stall           response headers and part of the body, then silence for `stallMs` (longer
 *                    than the client's timeout), then the socket is destroyed. With no body:
 *                    silence before the headers.
 *  - truncate        response headers with the real Content-Length, part of the body, then the
 *                    socket is destroyed. With no body it degrades to, and counts as, reset-after.
 *  - upload-cut      part of the request body reaches the emulator, then both connections are
 *                    destroyed (the emulator sees an incomplete upload). Without a request body it
 *                    degrades to, and counts as, reset.
 *  - upload-stall    part of the request body is read, then nothing more is read or answered for
 *                    `stallMs`. Without a request body it degrades to, and counts as, stall.
 *
 * `rules` answer matching requests the same way every time (e.g. always 500 for one key), before
 * any random fault. `latencyMs` delays every forwarded request (to make in-flight counts
 * observable). Counters (`stats`) and a bounded per-request log let tests assert what was
 * injected, peak requests in flight, requests per second and bytes per second.
 *
 * Location headers naming the target are rewritten to name the proxy.
 */
import http from "node:http";
import type net from "node:net";

export const FAULT_KINDS = [
  "reset",
  "reset-after",
  "http500",
  "http503",
  "http429",
  "http429-ra",
  "slowdown",
  "stall",
  "truncate",
  "upload-cut",
  "upload-stall",
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** What a rule or test sees of a request. `path` is the raw request target (path and query). */
export interface RequestInfo {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
}

/** A fixed answer for requests that `match`. */
export interface Rule {
  match(req: RequestInfo): boolean;
  /** The status to answer with; 0: reset the connection instead. */
  status: number;
  body?: string;
  headers?: Record<string, string>;
}

export interface ProxyOptions {
  /** e.g. "http://127.0.0.1:9000". */
  target: string;
  /** Fraction of requests (0..1) that get a random fault. Default 0. */
  rate?: number;
  /** Relative weights of the fault kinds; missing kinds weigh 0. Default: all kinds 1. */
  weights?: Partial<Record<FaultKind, number>>;
  seed?: number;
  /** How long a stall lasts before the socket is destroyed. Default 5000 ms. */
  stallMs?: number;
  /** Retry-After for http429-ra. Default 1 s. */
  retryAfterSeconds?: number;
  /** Delay before each request is forwarded (a function: per request). Default 0. */
  latencyMs?: number | ((req: RequestInfo) => number);
  rules?: Rule[];
  /** Requests for which this returns false never get a random fault. Default: all may. */
  eligible?(req: RequestInfo): boolean;
  /** Most log entries kept (oldest first; later requests are counted but not logged). Default 200k. */
  maxLog?: number;
}

/** One request as the proxy saw it. Times in ms since the proxy started. */
export interface LogEntry {
  method: string;
  path: string;
  /** The Range (or x-ms-range) request header, if any: with method and path, what was asked. */
  range?: string;
  start: number;
  /** When the exchange ended (response finished, or a socket closed); -1 while open. */
  end: number;
  /** Status sent to the client; 0 when none was sent. */
  status: number;
  fault?: FaultKind | "rule";
  /** Request body bytes received from the client. */
  bytesIn: number;
  /** Response body bytes sent to the client. */
  bytesOut: number;
}

export interface ProxyStats {
  requests: number;
  faults: Record<FaultKind, number>;
  /** Requests answered by a rule. */
  ruled: number;
  inFlight: number;
  peakInFlight: number;
  bytesIn: number;
  bytesOut: number;
}

export interface FaultProxy {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  readonly stats: ProxyStats;
  readonly log: LogEntry[];
  /** Request body bytes received per TICK_MS since the proxy started (index = tick). */
  readonly bytesInTicks: number[];
  /** ms since the proxy started (the log's clock). */
  now(): number;
  /** Change rate, weights, latency or rules from now on. */
  configure(o: Partial<Omit<ProxyOptions, "target" | "seed" | "maxLog">>): void;
  /** Zero the counters and the log (peakInFlight restarts from the current in-flight). */
  reset(): void;
  /** Total faults injected. */
  totalFaults(): number;
  /** "reset=3 http503=2 …" for messages. */
  describe(): string;
  close(): Promise<void>;
}

/** mulberry32: a small, fast, seeded PRNG returning [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Resolution of `bytesInTicks`. */
export const TICK_MS = 100;

const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer", "expect"]);

const SLOWDOWN_XML =
  '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>' +
  "<RequestId>chaos</RequestId><HostId>chaos</HostId></Error>";

/** Faults the proxy answers itself: status and body. */
const CANNED: Partial<Record<FaultKind, [number, string]>> = {
  http500: [500, '{"error":{"code":500,"message":"chaos: internal error"}}'],
  http503: [503, '{"error":{"code":503,"message":"chaos: service unavailable"}}'],
  http429: [429, '{"error":{"code":429,"message":"chaos: too many requests"}}'],
  "http429-ra": [429, '{"error":{"code":429,"message":"chaos: too many requests"}}'],
  slowdown: [503, SLOWDOWN_XML],
};

function zeroFaults(): Record<FaultKind, number> {
  return Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
}

function hasRequestBody(h: http.IncomingHttpHeaders): boolean {
  return Number(h["content-length"] ?? 0) > 0 || h["transfer-encoding"] !== undefined;
}

export async function startFaultProxy(opts: ProxyOptions): Promise<FaultProxy> {
  const target = new URL(opts.target);
  const cfg = {
    rate: opts.rate ?? 0,
    weights: opts.weights ?? (Object.fromEntries(FAULT_KINDS.map((k) => [k, 1])) as Partial<Record<FaultKind, number>>),
    stallMs: opts.stallMs ?? 5000,
    retryAfterSeconds: opts.retryAfterSeconds ?? 1,
    latencyMs: (opts.latencyMs ?? 0) as number | ((req: RequestInfo) => number),
    rules: opts.rules ?? [],
    eligible: opts.eligible,
  };
  const random = prng(opts.seed ?? 1);
  const maxLog = opts.maxLog ?? 200_000;
  const t0 = Date.now();
  const now = () => Date.now() - t0;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const stats: ProxyStats = { requests: 0, faults: zeroFaults(), ruled: 0, inFlight: 0, peakInFlight: 0, bytesIn: 0, bytesOut: 0 };
  const log: LogEntry[] = [];
  const bytesInTicks: number[] = [];
  let proxyUrl = "";

  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };

  const pickFault = (info: RequestInfo): FaultKind | undefined => {
    // Always draw, so the sequence of decisions depends only on the request order.
    const roll = random();
    const which = random();
    if (roll >= cfg.rate || (cfg.eligible && !cfg.eligible(info))) return undefined;
    const entries = FAULT_KINDS.map((k) => [k, Math.max(0, cfg.weights[k] ?? 0)] as const).filter(([, w]) => w > 0);
    const total = entries.reduce((s, [, w]) => s + w, 0);
    if (!total) return undefined;
    let x = which * total;
    for (const [k, w] of entries) {
      if ((x -= w) < 0) return k;
    }
    return entries[entries.length - 1][0];
  };

  const handle = (req: http.IncomingMessage, res: http.ServerResponse) => {
    stats.requests++;
    stats.inFlight++;
    stats.peakInFlight = Math.max(stats.peakInFlight, stats.inFlight);
    const info: RequestInfo = { method: req.method ?? "GET", path: req.url ?? "/", headers: req.headers };
    const entry: LogEntry = { method: info.method, path: info.path, start: now(), end: -1, status: 0, bytesIn: 0, bytesOut: 0 };
    const range = req.headers.range ?? req.headers["x-ms-range"];
    if (typeof range === "string") entry.range = range;
    if (log.length < maxLog) log.push(entry);
    let ended = false;
    const done = () => {
      if (ended) return;
      ended = true;
      entry.end = now();
      stats.inFlight--;
    };
    res.on("finish", done);
    res.on("close", done);
    req.on("data", (c: Buffer) => {
      entry.bytesIn += c.length;
      stats.bytesIn += c.length;
      const tick = Math.floor(now() / TICK_MS);
      while (bytesInTicks.length <= tick) bytesInTicks.push(0);
      bytesInTicks[tick] += c.length;
    });
    const count = (kind: FaultKind) => {
      stats.faults[kind]++;
      entry.fault = kind;
    };
    const kill = () => {
      req.socket.destroy();
      res.destroy();
    };
    const answer = (status: number, body: string, headers: Record<string, string> = {}) => {
      // Drain the request body first so the client reads our answer, not a reset.
      const send = () => {
        if (res.destroyed) return;
        entry.status = status;
        res.writeHead(status, { "content-type": body.startsWith("<") ? "application/xml" : "application/json", "content-length": String(Buffer.byteLength(body)), ...headers });
        res.end(body);
      };
      if (req.complete) send();
      else {
        req.on("end", send);
        req.on("error", () => undefined);
        req.resume();
      }
    };

    const rule = cfg.rules.find((r) => r.match(info));
    if (rule) {
      stats.ruled++;
      entry.fault = "rule";
      if (rule.status === 0) kill();
      else answer(rule.status, rule.body ?? "", rule.headers);
      return;
    }
    let fault = pickFault(info);
    const withBody = hasRequestBody(req.headers);
    if (fault === "upload-cut" && !withBody) fault = "reset";
    if (fault === "upload-stall" && !withBody) fault = "stall";

    if (fault === "reset") {
      count(fault);
      return kill();
    }
    const canned = fault && CANNED[fault];
    if (fault && canned) {
      count(fault);
      const headers: Record<string, string> = fault === "http429-ra" ? { "retry-after": String(cfg.retryAfterSeconds) } : {};
      return answer(canned[0], canned[1], headers);
    }
    if (fault === "upload-stall") {
      count(fault);
      // Take the first chunk, then read nothing more and answer nothing.
      req.once("data", () => req.pause());
      return later(cfg.stallMs, kill);
    }
    const go = () => forward(req, res, entry, fault, count, kill);
    const delay = typeof cfg.latencyMs === "function" ? cfg.latencyMs(info) : cfg.latencyMs;
    if (delay > 0) {
      req.pause();
      later(delay, go);
    } else go();
  };

  const forward = (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    entry: LogEntry,
    fault: FaultKind | undefined,
    count: (k: FaultKind) => void,
    kill: () => void,
  ) => {
    if (res.destroyed || req.socket.destroyed) return;
    const headers: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) headers[k] = v;
    if (req.headers["transfer-encoding"]) headers["transfer-encoding"] = req.headers["transfer-encoding"];
    const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent });
    const abandon = () => {
      up.destroy();
      kill();
    };
    up.on("error", () => abandon());
    req.on("error", () => up.destroy());
    res.on("close", () => {
      if (!res.writableFinished) up.destroy();
    });

    if (fault === "upload-cut") {
      count(fault);
      const limit = Math.max(1, Math.floor(Number(req.headers["content-length"] ?? 2) / 2));
      let sent = 0;
      req.on("data", (c: Buffer) => {
        if (sent >= limit) return;
        const part = c.subarray(0, limit - sent);
        sent += part.length;
        up.write(part);
        if (sent >= limit) abandon();
      });
      req.on("end", abandon);
      req.resume();
      return;
    }
    req.pipe(up);
    req.resume();

    up.on("response", (ures) => {
      const status = ures.statusCode ?? 502;
      const length = Number(ures.headers["content-length"] ?? -1);
      const chunked = ures.headers["content-length"] === undefined && req.method !== "HEAD" && status !== 204 && status !== 304;
      const hasBody = req.method !== "HEAD" && (length > 0 || chunked);
      let kind = fault;
      if (kind === "truncate" && !hasBody) kind = "reset-after";
      if (kind === "reset-after" && !hasBody) {
        count(kind);
        ures.resume();
        ures.on("end", abandon);
        return;
      }
      if (kind === "stall" && !hasBody) {
        count(kind);
        ures.resume();
        later(cfg.stallMs, abandon);
        return;
      }
      const out: http.OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(ures.headers)) {
        if (HOP_BY_HOP.has(k) || v === undefined) continue;
        out[k] = k === "location" && typeof v === "string" ? v.split(target.host).join(new URL(proxyUrl).host) : v;
      }
      entry.status = status;
      res.writeHead(status, ures.statusMessage, out);
      if (kind === "reset-after") {
        count(kind);
        res.flushHeaders();
        ures.resume();
        later(5, abandon);
        return;
      }
      // Where a truncate or stall cuts in: somewhere inside the body, never at its end.
      const cutAt = kind === "truncate" || kind === "stall" ? (length > 1 ? 1 + Math.floor(random() * (length - 1)) : 1) : Infinity;
      if (kind) count(kind);
      let sent = 0;
      ures.on("data", (c: Buffer) => {
        if (sent >= cutAt) return;
        const part = sent + c.length > cutAt ? c.subarray(0, cutAt - sent) : c;
        sent += part.length;
        entry.bytesOut += part.length;
        stats.bytesOut += part.length;
        const ok = res.write(part);
        if (sent >= cutAt) {
          ures.pause();
          if (kind === "truncate") later(5, abandon);
          else later(cfg.stallMs, abandon);
          return;
        }
        if (!ok) {
          ures.pause();
          res.once("drain", () => ures.resume());
        }
      });
      ures.on("end", () => {
        if (sent < cutAt) res.end();
      });
      ures.on("error", abandon);
    });
  };

  const server = http.createServer({ keepAlive: true }, handle);
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.on("clientError", (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  proxyUrl = `http://127.0.0.1:${port}`;

  return {
    url: proxyUrl,
    port,
    stats,
    log,
    bytesInTicks,
    now,
    configure(o) {
      if (o.rate !== undefined) cfg.rate = o.rate;
      if (o.weights !== undefined) cfg.weights = o.weights;
      if (o.stallMs !== undefined) cfg.stallMs = o.stallMs;
      if (o.retryAfterSeconds !== undefined) cfg.retryAfterSeconds = o.retryAfterSeconds;
      if (o.latencyMs !== undefined) cfg.latencyMs = o.latencyMs;
      if (o.rules !== undefined) cfg.rules = o.rules;
      if ("eligible" in o) cfg.eligible = o.eligible;
    },
    reset() {
      stats.requests = 0;
      stats.faults = zeroFaults();
      stats.ruled = 0;
      stats.peakInFlight = stats.inFlight;
      stats.bytesIn = 0;
      stats.bytesOut = 0;
      log.length = 0;
      bytesInTicks.fill(0);
    },
    totalFaults: () => Object.values(stats.faults).reduce((a, b) => a + b, 0),
    describe: () =>
      FAULT_KINDS.filter((k) => stats.faults[k])
        .map((k) => `${k}=${stats.faults[k]}`)
        .join(" ") || "none",
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const s of sockets) s.destroy();
      agent.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/**
 * The emulator env with every mention of the emulator's host:port pointed at the proxy instead
 * (AWS_ENDPOINT_URL, STORAGE_EMULATOR_HOST, the connection string's BlobEndpoint).
 */
export function envThroughProxy(env: Record<string, string>, emulatorHost: string, proxy: FaultProxy): Record<string, string> {
  const to = new URL(proxy.url).host;
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v.split(emulatorHost).join(to)]));
}

/** The emulator's "host:port", found in its env (the one loopback address every env names). */
export function emulatorHostOf(env: Record<string, string>): string {
  for (const v of Object.values(env)) {
    const m = /127\.0\.0\.1:\d+/.exec(v);
    if (m) return m[0];
  }
  throw new Error(`no 127.0.0.1:PORT in the emulator env: ${Object.keys(env).join(", ")}`);
}

