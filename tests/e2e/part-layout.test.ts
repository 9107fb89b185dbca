/**
 * S3 multipart objects into Azure, read along the source's part layout: the block MD5s Azure
 * checks on arrival also prove, against the S3 multipart ETag, that the bytes read are the
 * source's. A layout that does not check out (unequal parts) is set aside and the object copied
 * again, hashed whole.
 */
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { CompleteMultipartUploadCommand, CreateMultipartUploadCommand, S3Client, UploadPartCommand } from "@aws-sdk/client-s3";
import { BlobServiceClient } from "@azure/storage-blob";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAdapter, parseLocation } from "../../adapters/index.js";
import { multipartEtag } from "../../adapters/s3/meta.js";
import { md5OfPartMd5s } from "../../src/multipart.js";
import { objectEvents, parseEvents, runCli, summaryOf, tempDir } from "../helpers/cli.js";
import { seededBytes } from "../helpers/streams.js";
import { startServices, type Services } from "../emulators/all.js";

const MiB = 1024 * 1024;
let services: Services;
let base: string;

beforeAll(async () => {
  services = await startServices(["s3", "az"]);
  base = tempDir("layout");
}, 120_000);

afterAll(async () => {
  await services?.stop();
  if (base) fs.rmSync(base, { recursive: true, force: true });
});

const md5 = (b: Buffer) => crypto.createHash("md5").update(b).digest("hex");

async function bytesAt(url: string, key: string): Promise<Buffer> {
  const a = await createAdapter(parseLocation(url), { env: { ...process.env, ...services.env } });
  const chunks: Buffer[] = [];
  for await (const c of await a.read(key)) chunks.push(c as Buffer);
  await a.close?.();
  return Buffer.concat(chunks);
}

/** Sizes of the committed blocks of an Azure blob at az://account/container/prefix + key. */
async function blockSizes(url: string, key: string): Promise<number[]> {
  const [, container, ...prefix] = url.replace(/^az:\/\//, "").split("/");
  const svc = BlobServiceClient.fromConnectionString(services.env.AZURE_STORAGE_CONNECTION_STRING);
  const list = await svc.getContainerClient(container).getBlockBlobClient([...prefix, key].join("/")).getBlockList("committed");
  return (list.committedBlocks ?? []).map((b) => b.size);
}

function s3Client(): S3Client {
  const env = services.env;
  return new S3Client({
    endpoint: env.AWS_ENDPOINT_URL,
    region: env.AWS_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
  });
}

describe("an S3 multipart object into Azure", () => {
  it("is read along the source's 5 MiB parts, verified against its ETag, and keeps its MD5", async (ctx) => {
    if (!services.s3 || !services.az) ctx.skip("s3 or azure emulator not installed");
    const srcDir = path.join(base, "src");
    fs.mkdirSync(srcDir);
    const body = seededBytes(23 * MiB, 7);
    fs.writeFileSync(path.join(srcDir, "big.bin"), body);
    const bucket = await services.s3!.createBucket();
    const env = { ...services.env, MIGRATE_STATE_DIR: path.join(base, "state-1") };
    const seed = await runCli([srcDir, bucket, "--multipart-threshold", "5M", "--part-size", "5M", "--json"], { env });
    expect(seed.code).toBe(0);

    // The source really is a 5-part multipart object whose ETag is the MD5 of its part MD5s.
    const src = await createAdapter(parseLocation(bucket), { env: { ...process.env, ...services.env } });
    const info = await src.stat("big.bin");
    const partMd5s = [0, 1, 2, 3, 4].map((i) => md5(body.subarray(i * 5 * MiB, (i + 1) * 5 * MiB)));
    expect(multipartEtag(info.etag)).toEqual({ md5OfPartMd5s: md5OfPartMd5s(partMd5s), parts: 5 });
    await src.close?.();

    const dst = `${await services.az!.createBucket()}/copy`;
    // No --part-size: the destination's default (16 MiB) gives way to the source's layout.
    const r = await runCli([bucket, dst, "--multipart-threshold", "8M", "--json"], { env });
    expect(r.code).toBe(0);
    expect(summaryOf(r).copiedBytes).toBe(body.length);
    expect(parseEvents(r.stdout).filter((e) => e.event === "retry")).toEqual([]);
    expect(await blockSizes(dst, "big.bin")).toEqual([5 * MiB, 5 * MiB, 5 * MiB, 5 * MiB, 3 * MiB]);
    expect(md5(await bytesAt(dst, "big.bin"))).toBe(md5(body));
    const a = await createAdapter(parseLocation(dst), { env: { ...process.env, ...services.env } });
    expect((await a.stat("big.bin")).md5).toBe(md5(body));
    await a.close?.();
  }, 120_000);

  it("with unequal parts is copied again hashed whole, byte-identical, after one layout retry", async (ctx) => {
    if (!services.s3 || !services.az) ctx.skip("s3 or azure emulator not installed");
    // Parts of 6, 5 and 6 MiB: part 1's size and the part count fit a 6 MiB layout, which then
    // reads 6, 6 and 5 MiB, whose MD5s are not the ETag's.
    const parts = [seededBytes(6 * MiB, 21), seededBytes(5 * MiB, 22), seededBytes(6 * MiB, 23)];
    const whole = Buffer.concat(parts);
    const bucket = await services.s3!.createBucket();
    const Bucket = bucket.slice("s3://".length);
    const client = s3Client();
    try {
      const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key: "odd.bin" }));
      const done = [];
      for (let i = 0; i < parts.length; i++) {
        const { ETag } = await client.send(new UploadPartCommand({ Bucket, Key: "odd.bin", UploadId, PartNumber: i + 1, Body: parts[i] }));
        done.push({ ETag, PartNumber: i + 1 });
      }
      await client.send(new CompleteMultipartUploadCommand({ Bucket, Key: "odd.bin", UploadId, MultipartUpload: { Parts: done } }));
    } finally {
      client.destroy();
    }

    const dst = `${await services.az!.createBucket()}/odd`;
    const env = { ...services.env, MIGRATE_STATE_DIR: path.join(base, "state-2") };
    const r = await runCli([bucket, dst, "--multipart-threshold", "8M", "--json"], { env });
    expect(r.code).toBe(0);
    const retries = parseEvents(r.stdout).filter((e) => e.event === "retry");
    expect(retries).toHaveLength(1);
    expect(String(retries[0].error)).toMatch(/do not match the source's/);
    expect(objectEvents(r, "done").map((e) => e.key)).toEqual(["odd.bin"]);
    expect(md5(await bytesAt(dst, "odd.bin"))).toBe(md5(whole));
    // Copied the usual way: the destination's own 16 MiB blocks, and the MD5 found on the way.
    expect(await blockSizes(dst, "odd.bin")).toEqual([16 * MiB, 1 * MiB]);
    const a = await createAdapter(parseLocation(dst), { env: { ...process.env, ...services.env } });
    expect((await a.stat("odd.bin")).md5).toBe(md5(whole));
    await a.close?.();
  }, 120_000);
});
