/**
 * Reading a bucket straight from an emulator, bypassing the tool under test, to check what
 * arrived: key → sha256 of every object.
 */
import crypto from "node:crypto";
import { GetObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { s3ClientFor } from "../emulators/minio.js";

/** key → sha256 of every object in `bucketUrl` (s3://bucket), read with the emulator's env. */
export async function s3Digest(env: Record<string, string>, bucketUrl: string, concurrency = 16): Promise<Map<string, string>> {
  const bucket = bucketUrl.replace(/^s3:\/\//, "").replace(/\/.*$/, "");
  const client = s3ClientFor(env);
  try {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
      for (const o of page.Contents ?? []) if (o.Key !== undefined) keys.push(o.Key);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    const out = new Map<string, string>();
    let next = 0;
    const worker = async () => {
      while (next < keys.length) {
        const key = keys[next++];
        const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        const h = crypto.createHash("sha256");
        for await (const c of res.Body as AsyncIterable<Uint8Array>) h.update(c);
        out.set(key, h.digest("hex"));
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return out;
  } finally {
    client.destroy();
  }
}
