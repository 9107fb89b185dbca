/**
 * The one place Azure Blob errors become MigrateErrors.
 *
 *  - 403 (AuthenticationFailed, AuthorizationFailure, AuthorizationPermissionMismatch, …) →
 *    PermissionDenied, run-scoped: Blob storage has no per-object permissions, so a 403 means
 *    the key/SAS is wrong or lacks a permission, and every object would fail the same way.
 *  - ContainerNotFound (and a container being deleted/disabled) → ConfigInvalid, run-scoped.
 *  - BlobNotFound / other 404 → NotFound.
 *  - ConditionNotMet / 412, other 409s, 416 → ConditionNotMatch.
 *  - Md5Mismatch (Azurite says InvalidOperation "…MD5…") → Integrity, temporary (bytes were
 *    damaged on the way; sending them again may work).
 *  - ServerBusy, 429, 503 → RateLimited, temporary; 500/502/504 and OperationTimedOut →
 *    Unexpected, temporary; both with retryAfterMs from Retry-After when present.
 *  - Network failures (ECONNRESET, timeouts, truncated bodies) → Unexpected, temporary.
 *  - Anything else → Unexpected, permanent.
 * Messages are one line, start with what failed, and never contain a key or signature.
 */
import { MigrateError, toMigrateError, type ErrorKind } from "../../src/errors.js";

interface RestErrorLike {
  name?: string;
  message?: string;
  code?: string;
  statusCode?: number;
  details?: { errorCode?: string; [header: string]: unknown };
  response?: { headers?: { get(name: string): string | undefined } };
}

const RUN_CONTAINER_CODES = new Set(["ContainerNotFound", "ContainerBeingDeleted", "ContainerDisabled", "AccountIsDisabled"]);
const THROTTLE_CODES = new Set(["ServerBusy", "TooManyRequests"]);
const TEMP_CODES = new Set(["InternalError", "OperationTimedOut", "REQUEST_SEND_ERROR", "PARSE_ERROR"]);

/** Remove anything that looks like a credential from a message. */
export function scrub(message: string): string {
  return message
    .replace(/([?&;]?)(sig|AccountKey|SharedAccessSignature)=[^&;\s]*/gi, "$1$2=REDACTED")
    .replace(/SharedKey [^\s:]+:[^\s]+/g, "SharedKey REDACTED");
}

/** Retry-After as seconds or an HTTP date → ms. */
function retryAfterMs(e: RestErrorLike): number | undefined {
  const raw = e.response?.headers?.get("retry-after") ?? (e.details?.["retry-after"] as string | undefined);
  if (!raw) return undefined;
  const secs = Number(raw);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const at = Date.parse(raw);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function firstLine(s: string | undefined): string {
  return scrub((s ?? "").split("\n")[0].trim());
}

/**
 * Map anything thrown by the SDK (or our streams) while working on `what` (e.g. "key a/b.txt"
 * or the location's display) to a MigrateError.
 */
export function mapAzureError(err: unknown, what: string): MigrateError {
  if (err instanceof MigrateError) return err;
  const e = (err ?? {}) as RestErrorLike;
  const status = typeof e.statusCode === "number" ? e.statusCode : undefined;
  const code = e.details?.errorCode ?? e.code;
  const detail = firstLine(e.message) || (code ?? (status ? `HTTP ${status}` : String(err)));
  const msg = `${what}: ${code && !detail.includes(code) ? `${code}: ` : ""}${detail}`;
  const make = (kind: ErrorKind, opts: { temporary?: boolean; scope?: "run" } = {}): MigrateError =>
    new MigrateError(kind, msg, { ...opts, retryAfterMs: retryAfterMs(e), cause: err });

  if (status === undefined) {
    if (code && TEMP_CODES.has(code)) return make("Unexpected", { temporary: true });
    if (/Data corruption failure/.test(e.message ?? "")) return make("Unexpected", { temporary: true });
    const m = toMigrateError(err);
    return new MigrateError(m.kind, `${what}: ${firstLine(m.message)}`, { temporary: m.temporary, cause: err });
  }
  if (code && RUN_CONTAINER_CODES.has(code)) return make("ConfigInvalid", { scope: "run" });
  if (status === 403 || status === 401) return make("PermissionDenied", { scope: "run" });
  if (status === 404) return make("NotFound");
  if (status === 412 || status === 416 || status === 409) return make("ConditionNotMatch");
  if (code === "Md5Mismatch" || (code === "InvalidOperation" && /md5/i.test(e.message ?? ""))) {
    return make("Integrity", { temporary: true });
  }
  if (code === "InvalidMetadata" || code === "MetadataTooLarge" || status === 413) return make("Unsupported");
  if (status === 429 || status === 503 || (code && THROTTLE_CODES.has(code))) return make("RateLimited", { temporary: true });
  if (status >= 500 || status === 408 || (code && TEMP_CODES.has(code))) return make("Unexpected", { temporary: true });
  return make("Unexpected");
}
