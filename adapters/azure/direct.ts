/**
 * Get Blob requests whose body lands straight in the caller's memory (http-into.ts), for the
 * multipart copier's part reads and for objects read whole: the SDK's download stream costs
 * more CPU than the rest of the copy (its http client's Buffer per socket read, then a copy into
 * the part; for a small blob, its pipeline's work per request).
 *
 * Signed as the SDK signs (shared-key.ts), or not at all when a SAS in the blob URL authorizes
 * the request.
 * Non-2xx answers become errors shaped like the SDK's RestError, for mapAzureError.
 */
import { DirectGet, type IntoResponse } from "../http-into.js";
import type { AzureProps } from "./metadata.js";
import { type SharedKey, sharedKeyAuthorization } from "./shared-key.js";

/**
 * The REST version these requests ask for: old enough for every service and emulator version
 * we meet (Azurite 3.x knows it), new enough for x-ms-range on Get Blob.
 */
export const API_VERSION = "2021-08-06";

/** A failed request, shaped like the SDK's RestError where mapAzureError reads it. */
export interface DirectRestError extends Error {
  statusCode: number;
  code?: string;
  response: { headers: { get(name: string): string | undefined } };
}

export class AzureDirectReads {
  private readonly direct: DirectGet;

  constructor(
    /** Unset: the SAS in the blob URL authorizes. */
    private readonly key: SharedKey | undefined,
    idleTimeoutMs: number,
  ) {
    this.direct = new DirectGet(idleTimeoutMs);
  }

  /**
   * The blob at `blobUrl` (as the SDK builds it, SAS included) into `target`: from `start`, as
   * many bytes as fit; or, without `start`, the whole blob, which must fit (BodyTooLong).
   */
  async getInto(blobUrl: string, target: Buffer, start?: number, onBody?: (got: number) => void): Promise<IntoResponse> {
    const url = new URL(blobUrl);
    const headers: Record<string, string> = { "x-ms-date": new Date().toUTCString() };
    if (start !== undefined) headers["x-ms-range"] = `bytes=${start}-${start + target.length - 1}`;
    headers["x-ms-version"] = API_VERSION;
    if (this.key) headers.authorization = sharedKeyAuthorization(this.key, url, headers);
    const res = await this.direct.getUrl(url, headers, target, onBody);
    if (res.status < 200 || res.status >= 300) throw restError(res);
    return res;
  }

  close(): void {
    this.direct.close();
  }
}

/** A Get Blob response's properties and metadata, as the SDK's download result gives them. */
export function propsFromHeaders(h: Record<string, string>): { props: AzureProps; metadata: Record<string, string> } {
  const props: AzureProps = {
    contentLength: Number(h["content-length"]),
    lastModified: h["last-modified"] ? new Date(h["last-modified"]) : undefined,
    etag: h.etag,
    contentMD5: h["content-md5"] ? new Uint8Array(Buffer.from(h["content-md5"], "base64")) : undefined,
    contentType: h["content-type"],
    cacheControl: h["cache-control"],
    contentEncoding: h["content-encoding"],
    contentDisposition: h["content-disposition"],
    contentLanguage: h["content-language"],
  };
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (k.startsWith("x-ms-meta-")) metadata[k.slice("x-ms-meta-".length)] = v;
  return { props, metadata };
}

/** The service's error code (header, else the XML body's) and message, as a RestError-like error. */
export function restError(res: Pick<IntoResponse, "status" | "headers" | "errorBody">): DirectRestError {
  const body = res.errorBody ?? "";
  const code = res.headers["x-ms-error-code"] ?? /<Code>([^<]*)<\/Code>/.exec(body)?.[1];
  const message = /<Message>([^<]*)<\/Message>/.exec(body)?.[1]?.split("\n")[0] ?? `HTTP ${res.status}`;
  return Object.assign(new Error(message), {
    statusCode: res.status,
    code,
    response: { headers: { get: (name: string) => res.headers[name.toLowerCase()] } },
  });
}
