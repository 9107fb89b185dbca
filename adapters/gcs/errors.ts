/**
 * The one place where Google Cloud Storage failures become MigrateErrors.
 *
 * Inputs are either a `GcsHttpError` (the service answered with a non-2xx status), a
 * `GcsAuthError` (Application Default Credentials could not produce a token), or anything else
 * thrown on the way (network resets, timeouts), which `toMigrateError` classifies.
 *
 * Mapping (JSON API status → kind):
 * - 400 checksum mismatch → Integrity (temporary: the bytes can be sent again); other 400 → Unexpected
 * - 401 → PermissionDenied, run-scoped (credentials rejected)
 * - 403 → PermissionDenied (rate-limit reasons under 403 → RateLimited)
 * - 404 on a bucket-level call, or "bucket does not exist" → ConfigInvalid, run-scoped; else NotFound
 * - 408, 409, 500, 502, 504, other 5xx → Unexpected, temporary
 * - 412 → ConditionNotMatch
 * - 429, 503 → RateLimited (temporary), Retry-After honoured
 *
 * Messages are one line, name the bucket/key, and never carry tokens or credentials.
 */
import { MigrateError, toMigrateError } from "../../src/errors.js";

/** The service answered with an error status. `message`/`reason` come from its JSON error body. */
export class GcsHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly reason: string | undefined,
    readonly retryAfter: string | undefined,
  ) {
    super(message);
    this.name = "GcsHttpError";
  }
}

/** Application Default Credentials failed to give us an access token. */
export class GcsAuthError extends Error {
  constructor(
    message: string,
    /** The token endpoint could not be reached (worth retrying), as opposed to a refusal. */
    readonly transient: boolean,
    cause: unknown,
  ) {
    super(message, { cause });
    this.name = "GcsAuthError";
  }
}

/** What was being done, for the message and for telling a missing bucket from a missing key. */
export interface ErrorContext {
  bucket: string;
  /** Full object name inside the bucket, if the call was about one object. */
  object?: string;
  /** The call addresses the bucket itself (list, upload, compose): a 404 means no bucket. */
  bucketLevel?: boolean;
  /** Make every resulting error run-scoped (used by check()). */
  runScoped?: boolean;
}

/** Parse Retry-After (delta-seconds or an HTTP date) into milliseconds. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Keep a service message to one short line. */
function oneLine(s: string): string {
  const line = s.replace(/\s+/g, " ").trim();
  return line.length > 200 ? line.slice(0, 197) + "..." : line;
}

const RATE_REASONS = new Set(["rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"]);

function what(ctx: ErrorContext): string {
  return ctx.object !== undefined ? `gs://${ctx.bucket}/${ctx.object}` : `gs://${ctx.bucket}`;
}

function fromHttp(e: GcsHttpError, ctx: ErrorContext): MigrateError {
  const where = what(ctx);
  const detail = e.message ? `: ${oneLine(e.message)}` : "";
  const retryAfterMs = parseRetryAfter(e.retryAfter);
  const s = e.status;
  if (s === 400) {
    if (/(md5|crc32c|hash|checksum)/i.test(e.message) && /(match|mismatch|differ|invalid)/i.test(e.message)) {
      return new MigrateError("Integrity", `${where}: checksum rejected by GCS${detail}`, { temporary: true, cause: e });
    }
    return new MigrateError("Unexpected", `${where}: bad request (400)${detail}`, { cause: e });
  }
  if (s === 401) {
    return new MigrateError("PermissionDenied", `gs://${ctx.bucket}: credentials rejected (401)${detail}`, {
      scope: "run",
      cause: e,
    });
  }
  if (s === 403) {
    if (e.reason && RATE_REASONS.has(e.reason)) {
      return new MigrateError("RateLimited", `${where}: rate limited (403 ${e.reason})`, { retryAfterMs, cause: e });
    }
    return new MigrateError("PermissionDenied", `${where}: access denied (403)${detail}`, { cause: e });
  }
  if (s === 404) {
    if (ctx.bucketLevel || /bucket does not exist|no such bucket/i.test(e.message)) {
      return new MigrateError("ConfigInvalid", `bucket gs://${ctx.bucket} does not exist`, { scope: "run", cause: e });
    }
    return new MigrateError("NotFound", `${where}: no such object`, { cause: e });
  }
  if (s === 412) {
    return new MigrateError("ConditionNotMatch", `${where}: precondition failed (412)${detail}`, { cause: e });
  }
  if (s === 416) {
    return new MigrateError("Unexpected", `${where}: requested range not satisfiable (416)`, { cause: e });
  }
  if (s === 429 || s === 503) {
    return new MigrateError("RateLimited", `${where}: GCS asked us to slow down (${s})${detail}`, {
      retryAfterMs,
      cause: e,
    });
  }
  if (s === 408 || s === 409 || s >= 500) {
    return new MigrateError("Unexpected", `${where}: GCS error ${s}${detail}`, { temporary: true, retryAfterMs, cause: e });
  }
  return new MigrateError("Unexpected", `${where}: GCS answered ${s}${detail}`, { cause: e });
}

function fromAuth(e: GcsAuthError): MigrateError {
  if (e.transient) {
    return new MigrateError("Unexpected", `could not reach the Google token service: ${oneLine(e.message)}`, {
      temporary: true,
      cause: e,
    });
  }
  return new MigrateError("PermissionDenied", `Google credentials: ${oneLine(e.message)}`, { scope: "run", cause: e });
}

function withRunScope(err: MigrateError): MigrateError {
  if (err.scope === "run") return err;
  return new MigrateError(err.kind, err.message, {
    temporary: err.temporary,
    retryAfterMs: err.retryAfterMs,
    scope: "run",
    cause: err.cause ?? err,
  });
}

/** Turn anything thrown while talking to GCS into a MigrateError. */
export function mapGcsError(err: unknown, ctx: ErrorContext): MigrateError {
  let out: MigrateError;
  if (err instanceof MigrateError) out = err;
  else if (err instanceof GcsHttpError) out = fromHttp(err, ctx);
  else if (err instanceof GcsAuthError) out = fromAuth(err);
  else {
    const m = toMigrateError(err);
    // Name the object in network failures too, so a log line says what was being moved.
    out = m.message.includes(`gs://${ctx.bucket}`)
      ? m
      : new MigrateError(m.kind, `${what(ctx)}: ${oneLine(m.message)}`, {
          temporary: m.temporary,
          retryAfterMs: m.retryAfterMs,
          scope: m.scope,
          cause: err,
        });
  }
  return ctx.runScoped ? withRunScope(out) : out;
}
