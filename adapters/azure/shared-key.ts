/**
 * Shared Key authorization, for the requests we make without the SDK (direct.ts, list.ts,
 * blob-requests.ts): an HMAC-SHA256, under the account key, of the request's canonical form,
 * built as storage-blob 12.32's StorageSharedKeyCredentialPolicy builds it (the tests compare
 * the two signatures).
 */
import crypto from "node:crypto";

/** An account name and key (base64, as Azure gives it). */
export class SharedKey {
  private readonly key: Buffer;

  constructor(
    readonly accountName: string,
    /** As given, for the SDK's credential when the SDK is loaded. */
    readonly accountKey: string,
  ) {
    this.key = Buffer.from(accountKey, "base64");
  }

  sign(stringToSign: string): string {
    return crypto.createHmac("sha256", this.key).update(stringToSign, "utf8").digest("base64");
  }
}

/**
 * The standard headers signed, one line each after the verb, in the SDK's order (which has
 * Content-Language before Content-Encoding, where the REST documentation lists them the other
 * way round: we send neither).
 */
const SIGNED_STANDARD_HEADERS = [
  "content-language",
  "content-encoding",
  "content-length",
  "content-md5",
  "content-type",
  "date",
  "if-modified-since",
  "if-match",
  "if-none-match",
  "if-unmodified-since",
  "range",
];

/**
 * The service's order of x-ms-* header names (the SDK's SharedKeyComparator, a port of its
 * collation), for the characters our names have: '-' is ignored but breaks ties, '_' sorts
 * before digits and digits before letters; a name that ends first sorts first. Names with
 * anything else cannot be signed here (ours never have: metadata.ts makes names [a-z0-9_]).
 */
function primaryWeight(c: string): number {
  if (c === "-") return 0;
  if (c === "_") return 2;
  if (c >= "0" && c <= "9") return 3 + c.charCodeAt(0) - 48;
  if (c >= "a" && c <= "z") return 13 + c.charCodeAt(0) - 97;
  throw new Error(`cannot sign a header name with ${JSON.stringify(c)}`);
}

/** The comparator's algorithm (isLessThan), over its three levels, for our characters. */
export function headerNameLess(lhs: string, rhs: string): boolean {
  // Levels 0 and 4 of the SDK's tables: at level 2 every character of ours weighs 0 (ignored).
  const levels = [primaryWeight, () => 0, (c: string) => (c === "-" ? 2 : 0)];
  let level = 0;
  let i = 0;
  let j = 0;
  while (level < levels.length) {
    if (level === levels.length - 1 && i !== j) return i > j;
    const w1 = i < lhs.length ? levels[level](lhs[i]) : 1;
    const w2 = j < rhs.length ? levels[level](rhs[j]) : 1;
    if (w1 === 1 && w2 === 1) {
      i = 0;
      j = 0;
      level++;
    } else if (w1 === w2) {
      i++;
      j++;
    } else if (w1 === 0) {
      i++;
    } else if (w2 === 0) {
      j++;
    } else {
      return w1 < w2;
    }
  }
  return false;
}

/**
 * Shared Key authorization of a request to `url` with `headers` (names lower-case): the verb,
 * the standard headers' values (a Content-Length of 0 as empty), the x-ms-* headers in the
 * service's order, then /account/path and the query's parameters (names lower-cased, sorted,
 * values decoded).
 */
export function sharedKeyAuthorization(key: SharedKey, url: URL, headers: Record<string, string>, verb: "GET" | "PUT" = "GET"): string {
  const standard = SIGNED_STANDARD_HEADERS.map((h) => (h === "content-length" && headers[h] === "0" ? "" : (headers[h] ?? "")));
  const msHeaders = Object.keys(headers)
    .filter((h) => h.startsWith("x-ms-"))
    .sort((a, b) => (headerNameLess(a, b) ? -1 : 1))
    .map((h) => `${h}:${headers[h].trimStart()}\n`)
    .join("");
  let resource = `/${key.accountName}${url.pathname}`;
  const params = [...url.searchParams].map(([k, v]) => [k.toLowerCase(), v] as const).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [k, v] of params) resource += `\n${k}:${v}`;
  const stringToSign = [verb, ...standard].join("\n") + "\n" + msHeaders + resource;
  return `SharedKey ${key.accountName}:${key.sign(stringToSign)}`;
}
