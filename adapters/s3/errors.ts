/**
 * The one place where S3 (and S3 SDK / network) failures become MigrateErrors.
 *
 * Messages are one line, name the bucket/key and the S3 code, and never carry secrets: the SDK's
 * error object (which may hold a request signature or access key id) is attached as `cause` only
 * for errors that cannot involve credentials.
 */
import { MigrateError, toMigrateError, type ErrorKind } from "../../src/errors.js";

export interface S3ErrorContext {
  /** What we were doing, e.g. "PutObject". */
  op: string;
  bucket: string;
  /** Full object key (with the location prefix), when the call concerned one object. */
  key?: string;
  /** From check(): a denial there means the whole run cannot proceed. */
  check?: boolean;
}

interface SdkErrorShape {
  name?: string;
  code?: string;
  Code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $response?: { statusCode?: number; headers?: Record<string, string | undefined> };
}

const CREDENTIAL_CODES = new Set([
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "InvalidToken",
  "ExpiredToken",
  "TokenRefreshRequired",
  "InvalidSecurity",
  "AuthorizationHeaderMalformed",
  "CredentialsProviderError",
  "CredentialsNotLoaded",
  "InvalidSignatureException",
  "MissingSecurityHeader",
  "RequestTimeTooSkewed",
]);

const THROTTLE_CODES = new Set(["SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests", "TooManyRequestsException", "RequestThrottled", "ServiceUnavailable", "XMinioServerNotInitialized"]);

const TEMPORARY_CODES = new Set(["InternalError", "RequestTimeout", "OperationAborted", "XMinioStorageFull"]);

/** Retry-After as ms: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const secs = Number(value.trim());
  if (Number.isFinite(secs) && secs >= 0) return Math.round(secs * 1000);
  const at = Date.parse(value);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - Date.now());
}

function where(ctx: S3ErrorContext): string {
  return ctx.key !== undefined ? `s3://${ctx.bucket}/${ctx.key}` : `s3://${ctx.bucket}`;
}

/** First line of the service message, without trailing dot noise. */
function oneLine(msg: string | undefined): string {
  return (msg ?? "").split("\n")[0].trim();
}

/** Map anything thrown by an S3 call to a MigrateError. */
export function mapS3Error(err: unknown, ctx: S3ErrorContext): MigrateError {
  if (err instanceof MigrateError) return err;
  const e = (err ?? {}) as SdkErrorShape;
  const status = e.$metadata?.httpStatusCode ?? e.$response?.statusCode;
  const code = e.Code ?? e.name ?? e.code ?? "";
  const isSdkResponse = status !== undefined;
  const headers = e.$response?.headers ?? {};
  const retryAfterMs = parseRetryAfter(headers["retry-after"] ?? headers["Retry-After"]);
  const at = where(ctx);
  const detail = oneLine(e.message);
  const msg = (text: string) => `${ctx.op} ${at}: ${text}`;
  const make = (kind: ErrorKind, text: string, o: { temporary?: boolean; run?: boolean; keepCause?: boolean } = {}) =>
    new MigrateError(kind, msg(text), {
      temporary: o.temporary ?? false,
      retryAfterMs: o.temporary ? retryAfterMs : undefined,
      scope: o.run ? "run" : "object",
      cause: o.keepCause === false ? undefined : err,
    });

  // Credentials: wrong key, bad secret, expired token — every request would fail the same way.
  if (CREDENTIAL_CODES.has(code)) {
    return make("PermissionDenied", `credentials rejected (${code})${code === "RequestTimeTooSkewed" ? ": the local clock is off" : ""}`, {
      run: true,
      keepCause: false,
    });
  }
  if (code === "NoSuchBucket") {
    return make("ConfigInvalid", `bucket ${ctx.bucket} does not exist (NoSuchBucket)`, { run: true });
  }
  if (code === "PermanentRedirect" || code === "IllegalLocationConstraintException" || (status === 301 && isSdkResponse)) {
    const region = headers["x-amz-bucket-region"];
    return make("ConfigInvalid", `bucket ${ctx.bucket} is in another region${region ? ` (${region}); set AWS_REGION=${region}` : ""}`, {
      run: true,
    });
  }
  if (code === "AccessDenied" || code === "AllAccessDisabled" || code === "AccountProblem" || code === "Forbidden" || status === 403) {
    return make("PermissionDenied", `access denied (${code || status})`, { run: ctx.check, keepCause: false });
  }
  if (code === "NoSuchKey" || code === "NotFound" || code === "NoSuchVersion" || (status === 404 && code !== "NoSuchUpload")) {
    return make("NotFound", `not found`);
  }
  if (code === "NoSuchUpload") return make("NotFound", "multipart upload not found (NoSuchUpload)");
  if (code === "PreconditionFailed" || status === 412) return make("ConditionNotMatch", `precondition failed`);
  if (code === "InvalidRange" || status === 416) return make("ConditionNotMatch", `range not satisfiable (InvalidRange)`);
  // AWS answers BadDigest for a wrong Content-MD5 or x-amz-checksum-*; MinIO has its own code for the latter.
  if (code === "BadDigest" || code === "InvalidDigest" || code === "XAmzContentChecksumMismatch") {
    return make("Integrity", `the body did not match its checksum (${code})`, { temporary: true });
  }
  if (code === "IncompleteBody") return make("Integrity", `the body was shorter than announced (IncompleteBody)`, { temporary: true });
  if (code === "KeyTooLongError" || code === "XMinioInvalidObjectName" || code === "XMinioInvalidResourceName" || code === "InvalidObjectName") {
    return make("Unsupported", `key not accepted by the service (${code})`);
  }
  if (code === "MetadataTooLarge") return make("Unsupported", `user metadata exceeds the service's limit (MetadataTooLarge)`);
  if (code === "EntityTooLarge" || code === "EntityTooSmall" || code === "InvalidPart" || code === "InvalidPartOrder") {
    return make("Unexpected", `${code}: ${detail}`);
  }
  if (code === "InvalidBucketName") return make("ConfigInvalid", `invalid bucket name ${ctx.bucket}`, { run: true });
  if (code === "NotImplemented") return make("Unsupported", `not supported by this S3 service (${detail || code})`);
  if (status === 429 || THROTTLE_CODES.has(code) || status === 503) {
    return make("RateLimited", `throttled (${code || status})`, { temporary: true });
  }
  if (TEMPORARY_CODES.has(code) || (status !== undefined && status >= 500)) {
    return make("Unexpected", `service error ${status ?? ""} ${code}: ${detail}`.replace(/\s+/g, " ").trim(), { temporary: true });
  }
  // Node refused a header (a metadata name or value HTTP cannot carry).
  const nodeCode = typeof e.code === "string" ? e.code : "";
  if (nodeCode === "ERR_INVALID_HTTP_TOKEN" || nodeCode === "ERR_INVALID_CHAR") {
    return make("Unsupported", `a metadata name or value cannot be sent as an HTTP header (${nodeCode})`);
  }
  if (isSdkResponse) {
    return make("Unexpected", `${status} ${code}: ${detail}`.trim());
  }
  // Network failures, timeouts, aborts: toMigrateError knows them (temporary); add our context.
  const base = toMigrateError(err);
  return new MigrateError(base.kind, msg(oneLine(base.message)), {
    temporary: base.temporary,
    retryAfterMs: base.retryAfterMs,
    scope: base.scope,
    cause: err,
  });
}
