/**
 * Listing with ListObjectsV2, one page (1000 keys) in memory at a time.
 *
 * S3 returns keys in ascending UTF-8 byte order, which is the order the contract asks for.
 * Keys are requested URL-encoded (EncodingType=url) so that characters XML 1.0 cannot carry
 * (control characters, a bare "\r" that XML would turn into "\n") come back exactly.
 */
import type { S3Client, _Object } from "@aws-sdk/client-s3";
import { sdk } from "./sdk.js";
import type { ObjectInfo } from "../types.js";
import { mapS3Error } from "./errors.js";
import { cleanEtag, md5FromEtag } from "./meta.js";

const PAGE_SIZE = 1000;

/** Undo EncodingType=url: "+" is a space (a literal "+" arrives as %2B). */
export function decodeListedKey(k: string): string {
  return decodeURIComponent(k.replace(/\+/g, " "));
}

export interface ListTarget {
  client: S3Client;
  bucket: string;
  /** Full S3 prefix to list, ending in "/" (or "" for the whole bucket). */
  listPrefix: string;
  /** What to cut off listed keys to make them relative to the location (a prefix of listPrefix). */
  stripPrefix: string;
}

/** One ListObjectsV2 entry as ObjectInfo, or undefined for directory markers. */
function toInfo(o: _Object, raw: string, strip: string): ObjectInfo | undefined {
  const key = raw.slice(strip.length);
  const size = o.Size ?? 0;
  if (!key || (key.endsWith("/") && size === 0)) return undefined;
  const etag = cleanEtag(o.ETag);
  const info: ObjectInfo = { key, size, etag };
  if (o.LastModified) info.mtime = o.LastModified.getTime();
  const md5 = md5FromEtag(etag);
  if (md5) info.md5 = md5;
  return info;
}

/** The objects under `t.listPrefix`, a service page at a time. */
export async function* listObjectPages(t: ListTarget): AsyncGenerator<ObjectInfo[]> {
  let token: string | undefined;
  do {
    let page;
    try {
      page = await t.client.send(
        new sdk.ListObjectsV2Command({
          Bucket: t.bucket,
          Prefix: t.listPrefix || undefined,
          MaxKeys: PAGE_SIZE,
          ContinuationToken: token,
          EncodingType: "url",
        }),
      );
    } catch (err) {
      throw mapS3Error(err, { op: "ListObjectsV2", bucket: t.bucket, key: t.listPrefix || undefined });
    }
    // MinIO and AWS echo EncodingType when they applied it; decode only then.
    const encoded = page.EncodingType === "url";
    const infos: ObjectInfo[] = [];
    for (const o of page.Contents ?? []) {
      if (o.Key === undefined) continue;
      const raw = encoded ? decodeListedKey(o.Key) : o.Key;
      if (!raw.startsWith(t.stripPrefix)) continue;
      const info = toInfo(o, raw, t.stripPrefix);
      if (info) infos.push(info);
    }
    yield infos;
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
}
