/**
 * Error kinds, retry status and exit codes.
 *
 * Every error that crosses an adapter boundary is a MigrateError: a `kind` saying what went
 * wrong, and separately whether it is `temporary` (worth retrying). `scope: "run"` marks an error
 * that would fail every object the same way (bad credentials, missing bucket): the engine stops
 * the run once instead of failing each object.
 */
export type ErrorKind =
  | "NotFound"
  | "PermissionDenied"
  | "RateLimited"
  | "ConditionNotMatch"
  | "ConfigInvalid"
  | "Unsupported"
  | "Integrity"
  | "Unexpected";

export interface MigrateErrorOptions {
  temporary?: boolean;
  /** The service asked us to wait this long before retrying (Retry-After). */
  retryAfterMs?: number;
  /** "run": stop the whole run (exit 2); "object" (default): fail this object only. */
  scope?: "run" | "object";
  cause?: unknown;
}

export class MigrateError extends Error {
  readonly kind: ErrorKind;
  readonly temporary: boolean;
  readonly retryAfterMs?: number;
  readonly scope: "run" | "object";

  constructor(kind: ErrorKind, message: string, opts: MigrateErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "MigrateError";
    this.kind = kind;
    this.temporary = opts.temporary ?? kind === "RateLimited";
    this.retryAfterMs = opts.retryAfterMs;
    this.scope = opts.scope ?? "object";
  }
}

/** Thrown by an optional adapter capability that cannot serve this request; callers fall back. */
export class CantDoThatHere extends MigrateError {
  constructor(what: string) {
    super("Unsupported", what);
  }
}

/** The run is stopping: the object is neither done nor failed, and stays pending. */
export class Interrupted extends MigrateError {
  constructor(key: string) {
    super("Unexpected", `${key}: interrupted`);
  }
}

/**
 * What to throw when a follow-up check, made because `original` failed, failed too: a temporary
 * `check` failure (a throttled HEAD), so the retry repeats the check and its Retry-After is
 * honoured, unless `original` is temporary and asks for a longer wait; otherwise `original`.
 */
export function afterFailedCheck(original: MigrateError, check: MigrateError): MigrateError {
  if (!check.temporary) return original;
  if (original.temporary && (original.retryAfterMs ?? 0) > (check.retryAfterMs ?? 0)) return original;
  return check;
}

/** Usage errors: bad flags, bad URLs. Always exit 2. */
export function usageError(message: string): MigrateError {
  return new MigrateError("ConfigInvalid", message, { scope: "run" });
}

export const ExitCode = {
  Ok: 0,
  /** Run finished, some objects failed; or for diff/dry-run: differences found. */
  Failures: 1,
  Usage: 2,
  Interrupted: 130,
} as const;

/** Node/undici network error codes that mean "the connection failed, try again". */
const TRANSIENT_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "ESOCKETTIMEDOUT",
  "EAI_AGAIN",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "ERR_STREAM_PREMATURE_CLOSE",
]);

/** Local filesystem error codes and their kinds. */
const FS_CODES: Record<string, { kind: ErrorKind; temporary: boolean }> = {
  ENOENT: { kind: "NotFound", temporary: false },
  EACCES: { kind: "PermissionDenied", temporary: false },
  EPERM: { kind: "PermissionDenied", temporary: false },
  EROFS: { kind: "PermissionDenied", temporary: false },
  ENOSPC: { kind: "Unexpected", temporary: false },
  EDQUOT: { kind: "Unexpected", temporary: false },
  EISDIR: { kind: "ConditionNotMatch", temporary: false },
  ENOTDIR: { kind: "ConditionNotMatch", temporary: false },
  EEXIST: { kind: "ConditionNotMatch", temporary: false },
  ENAMETOOLONG: { kind: "Unsupported", temporary: false },
  EINVAL: { kind: "Unsupported", temporary: false },
  EMFILE: { kind: "Unexpected", temporary: true },
  ENFILE: { kind: "Unexpected", temporary: true },
  EBUSY: { kind: "Unexpected", temporary: true },
};

/**
 * Normalise anything thrown into a MigrateError. Adapters map their service's responses first;
 * this catches what is left: network failures (temporary) and local filesystem errors.
 */
export function toMigrateError(err: unknown): MigrateError {
  if (err instanceof MigrateError) return err;
  const e = err as { code?: unknown; message?: unknown; name?: unknown } | null;
  const code = typeof e?.code === "string" ? e.code : undefined;
  const message = typeof e?.message === "string" && e.message ? e.message : String(err);
  if (code && TRANSIENT_CODES.has(code)) {
    return new MigrateError("Unexpected", `${code}: ${message}`, { temporary: true, cause: err });
  }
  if (code?.startsWith("SQLITE_")) {
    // The checkpoint itself failed: nothing more can be recorded, so the run must stop.
    const damaged = code.startsWith("SQLITE_CORRUPT") || code === "SQLITE_NOTADB";
    return new MigrateError(
      damaged ? "ConfigInvalid" : "Unexpected",
      damaged ? `the checkpoint is damaged (${message}); run with --fresh to start the job over` : `checkpoint: ${message}`,
      { scope: "run", cause: err },
    );
  }
  if (code && FS_CODES[code]) {
    const { kind, temporary } = FS_CODES[code];
    return new MigrateError(kind, message, { temporary, cause: err });
  }
  if (e?.name === "AbortError" || e?.name === "TimeoutError") {
    return new MigrateError("Unexpected", `request timed out: ${message}`, { temporary: true, cause: err });
  }
  return new MigrateError("Unexpected", message, { temporary: false, cause: err });
}

/** One line for a human: the kind (when it adds something) and the message, no stack. */
export function describeError(err: unknown): string {
  const e = toMigrateError(err);
  const msg = e.message.split("\n")[0];
  return e.kind === "Unexpected" || e.kind === "ConfigInvalid" ? msg : `${e.kind}: ${msg}`;
}
