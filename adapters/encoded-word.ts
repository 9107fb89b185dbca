/**
 * Header values HTTP cannot carry as they are (non-ASCII such as a UTF-8 filename, control
 * characters, blanks a header would trim), stored as one RFC 2047 encoded word,
 * `=?UTF-8?B?<base64>?=`: the form S3 itself returns such values in. S3 and Azure store user
 * metadata and Content-Type & co this way. A value that decoding would change is encoded too,
 * so every value round-trips.
 */

const encode = (v: string): string => `=?UTF-8?B?${Buffer.from(v, "utf8").toString("base64")}?=`;

/** A user metadata value: verbatim when printable ASCII with no blank at either end (or empty). */
export function encodeMetaValue(v: string): string {
  return /^(?:[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)?$/.test(v) && decodeMetaValue(v) === v ? v : encode(v);
}

/** Content-Type & co: verbatim when printable ASCII (tabs allowed); none for none or "". */
export function encodeHeaderValue(v: string | undefined): string | undefined {
  if (!v) return undefined;
  return /^[\x20-\x7e\t]*$/.test(v) && decodeMetaValue(v) === v ? v : encode(v);
}

/** The value an encoded word (B or Q) stands for; anything else as it is. */
export function decodeMetaValue(v: string): string {
  const b = /^=\?UTF-8\?B\?([A-Za-z0-9+/=]*)\?=$/i.exec(v);
  if (b) return Buffer.from(b[1], "base64").toString("utf8");
  const q = /^=\?UTF-8\?Q\?([^?]*)\?=$/i.exec(v);
  if (q) {
    const bytes = q[1].replace(/_/g, " ").replace(/=([0-9A-Fa-f]{2})/g, (_, h: string) => `%${h}`);
    try {
      return decodeURIComponent(bytes);
    } catch {
      return v;
    }
  }
  return v;
}
