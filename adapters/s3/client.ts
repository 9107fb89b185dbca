/**
 * Building the S3Client: endpoint, region, path style, credentials and the HTTP handler.
 *
 * Everything is read from `opts` first, then from `opts.env ?? process.env`, then the SDK's own
 * default chain (profiles, SSO, instance roles). The client never retries (maxAttempts 1): retries
 * belong to the engine. Checksums the SDK would compute in an extra pass are off; the adapter
 * sends Content-MD5 itself where it knows the digest.
 */
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import tls from "node:tls";
import type { S3Client, S3ClientConfig } from "@aws-sdk/client-s3";
import { sdk } from "./sdk.js";
import type { AdapterOptions } from "../types.js";
import { MigrateError } from "../../src/errors.js";
import { LeanS3 } from "./lean.js";

/** Connections kept per origin: large runs keep hundreds of requests in flight. */
const MAX_SOCKETS = 256;
const CONNECTION_TIMEOUT_MS = 10_000;
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

/**
 * The SDK's documented opt-out for its "NodeVersionSupportWarning" (emitted once, on the first
 * client built, when Node < 22). Setting it silences exactly that warning and nothing else; it is
 * read from process.env by every copy of @aws-sdk/core, so it is set process-wide and kept.
 */
export function suppressNodeVersionWarning(): void {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
}

export interface ResolvedS3Config {
  /** Custom endpoint (MinIO, Ceph, R2...), or undefined for AWS. */
  endpoint?: string;
  /** Explicit region, or undefined: discover the bucket's region (AWS) / us-east-1 (custom). */
  region?: string;
  forcePathStyle: boolean;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  profile?: string;
  /** Inactivity timeout of one request. */
  idleTimeoutMs: number;
  /** Extra CA certificates (AWS_CA_BUNDLE), PEM. */
  caBundlePath?: string;
}

/**
 * Options for the SDK's NodeHttpHandler (the SDK builds the handler from them). Passing agent
 * instances makes every client built from the same options share their sockets.
 */
type HandlerOptions = {
  httpAgent: http.Agent;
  httpsAgent: https.Agent;
  connectionTimeout: number;
  socketTimeout: number;
  logger: typeof quietLogger;
};

const quietLogger = { debug() {}, info() {}, warn() {}, error() {} };

function nonEmpty(v: string | undefined): string | undefined {
  return v && v.trim() ? v.trim() : undefined;
}

/** Resolve settings from options, then `opts.env ?? process.env`. No I/O. */
export function resolveS3Config(opts: AdapterOptions): ResolvedS3Config {
  const env = opts.env ?? process.env;
  const endpoint = nonEmpty(opts.s3Endpoint) ?? nonEmpty(env.AWS_ENDPOINT_URL_S3) ?? nonEmpty(env.AWS_ENDPOINT_URL);
  if (endpoint) {
    let u: URL;
    try {
      u = new URL(endpoint);
    } catch {
      throw new MigrateError("ConfigInvalid", `S3 endpoint ${JSON.stringify(endpoint)} is not a URL`, { scope: "run" });
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") {
      throw new MigrateError("ConfigInvalid", `S3 endpoint ${u.protocol}//${u.host}: expected http:// or https://`, { scope: "run" });
    }
  }
  const region = nonEmpty(opts.s3Region) ?? nonEmpty(env.AWS_REGION) ?? nonEmpty(env.AWS_DEFAULT_REGION);
  const accessKeyId = nonEmpty(env.AWS_ACCESS_KEY_ID);
  const secretAccessKey = nonEmpty(env.AWS_SECRET_ACCESS_KEY);
  const sessionToken = nonEmpty(env.AWS_SESSION_TOKEN);
  return {
    endpoint,
    region,
    forcePathStyle: opts.s3ForcePathStyle ?? endpoint !== undefined,
    credentials: accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey, sessionToken } : undefined,
    profile: nonEmpty(env.AWS_PROFILE),
    idleTimeoutMs: opts.requestTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    caBundlePath: nonEmpty(env.AWS_CA_BUNDLE),
  };
}

/**
 * Keep-alive agents. AWS_CA_BUNDLE certificates are added to (not substituted for) Node's root
 * store, and only the https agent sees them: an http:// endpoint is unaffected, and an unreadable
 * bundle only matters when https is actually used.
 */
function makeHandler(cfg: ResolvedS3Config): HandlerOptions {
  const httpsOpts: https.AgentOptions = { keepAlive: true, maxSockets: MAX_SOCKETS };
  const usesHttps = !cfg.endpoint || cfg.endpoint.startsWith("https:");
  if (cfg.caBundlePath && usesHttps) {
    let pem: string;
    try {
      pem = readFileSync(cfg.caBundlePath, "utf8");
    } catch (err) {
      throw new MigrateError("ConfigInvalid", `AWS_CA_BUNDLE ${cfg.caBundlePath}: cannot read (${(err as Error).message})`, {
        scope: "run",
      });
    }
    // One context for all connections: passing `ca` instead would re-parse the bundle per socket.
    httpsOpts.secureContext = tls.createSecureContext({ ca: [...tls.rootCertificates, pem] });
  }
  return {
    httpAgent: new http.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS }),
    httpsAgent: new https.Agent(httpsOpts),
    connectionTimeout: CONNECTION_TIMEOUT_MS,
    // "60 s of silence": the idle (socket) timeout. requestTimeout in this SDK is a total deadline
    // that would cut a multi-GiB upload short, so it is left unset.
    socketTimeout: cfg.idleTimeoutMs,
    // The handler otherwise warns on console when sockets run out; the engine bounds concurrency.
    logger: quietLogger,
  };
}

function baseConfig(cfg: ResolvedS3Config, handler: HandlerOptions): S3ClientConfig {
  return {
    endpoint: cfg.endpoint,
    forcePathStyle: cfg.forcePathStyle,
    credentials: cfg.credentials,
    profile: cfg.credentials ? undefined : cfg.profile,
    requestHandler: handler,
    maxAttempts: 1,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    // A 100-continue handshake costs a round trip per PUT; we stream regardless.
    expectContinueHeader: false,
    // Not the SDK's NoOpLogger: with that, some middleware falls back to console.warn.
    logger: quietLogger,
  };
}

/**
 * The bucket's region, learnt from one HeadBucket against us-east-1 (S3 answers with the
 * x-amz-bucket-region header even on 301/403). Falls back to us-east-1 on any failure: check()
 * reports real problems with a proper message.
 */
async function discoverRegion(bucket: string, cfg: ResolvedS3Config, handler: HandlerOptions): Promise<string> {
  const probe = new sdk.S3Client({ ...baseConfig(cfg, handler), region: "us-east-1", followRegionRedirects: false });
  try {
    const out = await probe.send(new sdk.HeadBucketCommand({ Bucket: bucket }));
    return out.BucketRegion ?? "us-east-1";
  } catch (err) {
    const headers = (err as { $response?: { headers?: Record<string, string> } }).$response?.headers;
    return headers?.["x-amz-bucket-region"] ?? "us-east-1";
  }
  // The probe shares the handler's agents: do not destroy it.
}

/** Calls whose resolved URL is the object's, query aside. */
const OBJECT_CALLS = new Set(["PutObjectCommand", "GetObjectCommand", "HeadObjectCommand"]);

/**
 * Build the client for `bucket`, and the lean PUT/GET path that shares its agents, region and
 * credentials. The handler's agents are released by `client.destroy()`.
 */
export function createS3Client(bucket: string, opts: AdapterOptions): { client: S3Client; lean: LeanS3 } {
  suppressNodeVersionWarning();
  const cfg = resolveS3Config(opts);
  const handler = makeHandler(cfg);
  let region: S3ClientConfig["region"];
  if (cfg.region) region = cfg.region;
  else if (cfg.endpoint) region = "us-east-1";
  else {
    let found: Promise<string> | undefined;
    region = () => (found ??= discoverRegion(bucket, cfg, handler));
  }
  const client = new sdk.S3Client({
    ...baseConfig(cfg, handler),
    region,
    // Only on AWS: a redirect costs a second request, a last resort if discovery was wrong.
    followRegionRedirects: !cfg.endpoint,
  });
  const lean = new LeanS3(client, { http: handler.httpAgent, https: handler.httpsAgent }, cfg.idleTimeoutMs);
  client.middlewareStack.add(
    (next, context) => async (args) => {
      unsignedPayloadWhenChecksummed(args.request);
      // The URL the SDK resolved for a call on one object tells the lean path where objects go.
      // HeadObject counts: a large object's copy starts with one, so its parts all go direct.
      const key = (args.input as { Key?: unknown }).Key;
      const objectCall = OBJECT_CALLS.has(context.commandName ?? "");
      if (!lean.ready && objectCall && typeof key === "string") {
        lean.learn(key, args.request as { protocol?: string; hostname?: string; port?: number; path?: string });
      }
      return next(args);
    },
    { step: "build", name: "cloudmigrateUnsignedPayloadAndLeanUrl" },
  );
  return { client, lean };
}

/**
 * The signer hashes in-memory bodies (a whole 5-64 MiB part) with SHA-256 on the event loop.
 * A request that carries Content-MD5 or a CRC32C is already integrity-checked by S3 (and that
 * header is signed), so it is sent as UNSIGNED-PAYLOAD instead; streams are unsigned anyway.
 */
function unsignedPayloadWhenChecksummed(request: unknown): void {
  const req = request as { headers?: Record<string, string>; body?: unknown } | undefined;
  const headers = req?.headers;
  if (!headers || typeof req.body !== "object" || req.body === null) return;
  if (Object.keys(headers).some((h) => CHECKSUM_HEADERS.has(h.toLowerCase()))) headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD";
}
const CHECKSUM_HEADERS = new Set(["content-md5", "x-amz-checksum-crc32c"]);
