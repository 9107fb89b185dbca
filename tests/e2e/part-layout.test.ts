/**
 * S3 multipart objects read along the source's part layout instead of hashed whole:
 * - into Azure, the block MD5s Azure checks on arrival also prove, against the S3 multipart
 *   ETag, that the bytes read are the source's;
 * - into S3 and GCS, each source part read is checked against the CRC32C S3 kept for it.
 * A layout that does not check out (unequal parts) is set aside and the object copied again,
 * hashed whole.
 */
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { CompleteMultipartUploadCommand, CreateMultipartUploadCommand, HeadObjectCommand, PutObjectCommand, type S3Client, UploadPartCommand } from "@aws-sdk/client-s3";
import { BlobServiceClient } from "@azure/storage-blob";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAdapter, parseLocation } from "../../adapters/index.js";
import { multipartEtag } from "../../adapters/s3/meta.js";
import { md5OfPartMd5s } from "../../src/hashing.js";
import Database from "better-sqlite3";
import { objectEvents, parseEvents, runCli, startCli, summaryOf, tempDir } from "../helpers/cli.js";
import { seededBytes } from "../helpers/streams.js";
import { caught } from "../helpers/errors.js";
import { startServices, type Services } from "../emulators/all.js";
import { s3ClientFor } from "../emulators/minio.js";

const MiB = 1024 * 1024;
let services: Services;
let base: string;

beforeAll(async () => {
  services = await startServices(["s3", "az", "gs"]);
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

/** The MD5 the location reports for `key` (its stat). */
async function storedMd5(url: string, key: string): Promise<string | undefined> {
  const a = await createAdapter(parseLocation(url), { env: { ...process.env, ...services.env } });
  try {
    return (await a.stat(key)).md5;
  } finally {
    await a.close?.();
  }
}

/**
 * `migrate SRC DST` as a user runs it, large objects in parts from 8 MiB and no --part-size (so
 * the source's layout may be followed); it must exit 0. The run, and its retry events.
 */
async function copyInParts(src: string, dst: string, env: Record<string, string>) {
  const r = await runCli([src, dst, "--multipart-threshold", "8M", "--json"], { env });
  expect(r.code).toBe(0);
  return { r, retries: parseEvents(r.stdout).filter((e) => e.event === "retry") };
}

/** Sizes of the committed blocks of an Azure blob at az://account/container/prefix + key. */
async function blockSizes(url: string, key: string): Promise<number[]> {
  const [, container, ...prefix] = url.replace(/^az:\/\//, "").split("/");
  const svc = BlobServiceClient.fromConnectionString(services.env.AZURE_STORAGE_CONNECTION_STRING);
  const list = await svc.getContainerClient(container).getBlockBlobClient([...prefix, key].join("/")).getBlockList("committed");
  return (list.committedBlocks ?? []).map((b) => b.size);
}

/**
 * A new bucket holding "odd.bin" uploaded straight through the SDK in `parts` as given (S3
 * allows unequal parts); `crc32c`: with each part's CRC32C and the whole MD5 as metadata "md5".
 */
async function unequalPartsObject(parts: Buffer[], crc32c: boolean): Promise<string> {
  const bucket = await services.s3!.createBucket();
  const Bucket = bucket.slice("s3://".length);
  const Key = "odd.bin";
  const ChecksumAlgorithm = crc32c ? "CRC32C" : undefined;
  const client = s3Client();
  try {
    const Metadata = crc32c ? { md5: md5(Buffer.concat(parts)) } : undefined;
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key, ChecksumAlgorithm, Metadata }));
    const done = [];
    for (let i = 0; i < parts.length; i++) {
      const out = await client.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: i + 1, Body: parts[i], ChecksumAlgorithm }));
      done.push({ ETag: out.ETag, PartNumber: i + 1, ChecksumCRC32C: out.ChecksumCRC32C });
    }
    await client.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: done } }));
  } finally {
    client.destroy();
  }
  return bucket;
}

const s3Client = (): S3Client => s3ClientFor(services.env);

/** The job's recorded upload and its count of committed parts, from the checkpoint file in `stateDir`. */
function uploadState(stateDir: string): { parts: number; upload?: { id: string; partSize: number } } | undefined {
  const jobsDir = path.join(stateDir, "jobs");
  const file = fs.existsSync(jobsDir) ? fs.readdirSync(jobsDir).find((f) => f.endsWith(".sqlite")) : undefined;
  if (!file) return undefined;
  const db = new Database(path.join(jobsDir, file), { readonly: true, fileMustExist: true });
  try {
    const upload = db.prepare("SELECT upload_id AS id, part_size AS partSize FROM uploads").get() as { id: string; partSize: number } | undefined;
    return { parts: (db.prepare("SELECT count(*) AS n FROM parts").get() as { n: number }).n, upload };
  } finally {
    db.close();
  }
}

/**
 * Start `migrate SRC DST` one part at a time at 10 MB/s and SIGKILL it once `atLeast` parts are
 * committed; what the checkpoint then holds.
 */
async function killAfterParts(src: string, dst: string, env: Record<string, string>, atLeast: number) {
  const child = startCli([src, dst, "--multipart-threshold", "8M", "--part-concurrency", "1", "--bwlimit", "10M", "--json"], { env });
  let seen: ReturnType<typeof uploadState>;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && child.exitCode === null) {
    await new Promise((r) => setTimeout(r, 50));
    try {
      seen = uploadState(env.MIGRATE_STATE_DIR);
    } catch {
      continue; // tables not created yet
    }
    if (seen && seen.parts >= atLeast) break;
  }
  expect(child.exitCode, "the copy finished before it could be killed").toBeNull();
  child.kill("SIGKILL");
  await new Promise((r) => child.once("close", r));
  const killed = uploadState(env.MIGRATE_STATE_DIR)!;
  expect(killed.parts).toBeGreaterThanOrEqual(atLeast);
  return killed;
}

/**
 * SIGKILL the copy once 2 of its `parts` parts of `partSize` are committed, then run it again:
 * it continues the same upload, with no retry, sending no more than the parts left.
 */
async function killAndResume(src: string, dst: string, env: Record<string, string>, partSize: number, parts: number, total: number): Promise<void> {
  const killed = await killAfterParts(src, dst, env, 2);
  expect(killed.upload?.partSize).toBe(partSize);
  expect(killed.parts).toBeLessThan(parts);
  const { r, retries } = await copyInParts(src, dst, env);
  expect(retries).toEqual([]);
  const sent = Number(summaryOf(r).bytesSent);
  expect(sent).toBeGreaterThan(0);
  expect(sent).toBeLessThanOrEqual(total - killed.parts * partSize);
}

/** Size of part 1 of a multipart object at s3://bucket/prefix + key, as S3 reports it. */
async function s3PartOneSize(url: string, key: string): Promise<number | undefined> {
  const [bucket, ...prefix] = url.replace(/^s3:\/\//, "").split("/");
  const client = s3Client();
  try {
    const h = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: [...prefix, key].join("/"), PartNumber: 1 }));
    return h.ContentLength;
  } finally {
    client.destroy();
  }
}

/** An object (23 MiB unless said) uploaded by cloudmigrate in 5 MiB parts (each with its CRC32C, and the whole MD5 as metadata). */
async function seededSource(tag: string, size = 23 * MiB): Promise<{ bucket: string; body: Buffer; env: Record<string, string> }> {
  const srcDir = path.join(base, `src-${tag}`);
  fs.mkdirSync(srcDir);
  const body = seededBytes(size, 11);
  fs.writeFileSync(path.join(srcDir, "big.bin"), body);
  const bucket = await services.s3!.createBucket();
  const env = { ...services.env, MIGRATE_STATE_DIR: path.join(base, `state-${tag}`) };
  const seed = await runCli([srcDir, bucket, "--multipart-threshold", "5M", "--part-size", "5M", "--json"], { env });
  expect(seed.code).toBe(0);
  return { bucket, body, env };
}

describe("an S3 multipart object into Azure", () => {
  it("is read along the source's 5 MiB parts, verified against its ETag, and keeps its MD5", async (ctx) => {
    if (!services.s3 || !services.az) ctx.skip("s3 or azure emulator not installed");
    const { bucket, body, env } = await seededSource("az");

    // The source really is a 5-part multipart object whose ETag is the MD5 of its part MD5s.
    const src = await createAdapter(parseLocation(bucket), { env: { ...process.env, ...services.env } });
    const info = await src.stat("big.bin");
    const partMd5s = [0, 1, 2, 3, 4].map((i) => md5(body.subarray(i * 5 * MiB, (i + 1) * 5 * MiB)));
    expect(multipartEtag(info.etag)).toEqual({ md5OfPartMd5s: md5OfPartMd5s(partMd5s), parts: 5 });
    await src.close?.();

    const dst = `${await services.az!.createBucket()}/copy`;
    // No --part-size: the destination's default (16 MiB) gives way to the source's layout.
    const { r, retries } = await copyInParts(bucket, dst, env);
    expect(summaryOf(r).copiedBytes).toBe(body.length);
    expect(retries).toEqual([]);
    expect(await blockSizes(dst, "big.bin")).toEqual([5 * MiB, 5 * MiB, 5 * MiB, 5 * MiB, 3 * MiB]);
    expect(md5(await bytesAt(dst, "big.bin"))).toBe(md5(body));
    expect(await storedMd5(dst, "big.bin")).toBe(md5(body));
  }, 120_000);

  it("without a whole MD5 (as aws s3 cp uploads): checked by its ETag alone, no MD5 chained or stored", async (ctx) => {
    if (!services.s3 || !services.az) ctx.skip("s3 or azure emulator not installed");
    const parts = [seededBytes(5 * MiB, 31), seededBytes(5 * MiB, 32), seededBytes(5 * MiB, 33), seededBytes(2 * MiB, 34)];
    const whole = Buffer.concat(parts);
    const bucket = await unequalPartsObject(parts, false);
    expect(await storedMd5(bucket, "odd.bin")).toBeUndefined();

    const dst = `${await services.az!.createBucket()}/plain`;
    const { r, retries } = await copyInParts(bucket, dst, { ...services.env, MIGRATE_STATE_DIR: path.join(base, "state-plain") });
    expect(retries).toEqual([]);
    expect(summaryOf(r).copiedBytes).toBe(whole.length);
    // Each block went with its MD5 (Azurite refuses a wrong one), and their MD5 matched the ETag.
    expect(await blockSizes(dst, "odd.bin")).toEqual([5 * MiB, 5 * MiB, 5 * MiB, 2 * MiB]);
    expect(md5(await bytesAt(dst, "odd.bin"))).toBe(md5(whole));
    // Nothing to compare a whole MD5 with, so none was worked out: the blob has none, like rclone's.
    expect(await storedMd5(dst, "odd.bin")).toBeUndefined();
  }, 120_000);

  it("without a whole MD5, SIGKILL mid-copy: the resumed copy continues the same upload, sending only the parts left", async (ctx) => {
    if (!services.s3 || !services.az) ctx.skip("s3 or azure emulator not installed");
    const parts = Array.from({ length: 8 }, (_, i) => seededBytes(5 * MiB, 40 + i));
    const whole = Buffer.concat(parts);
    const bucket = await unequalPartsObject(parts, false);
    const dst = `${await services.az!.createBucket()}/resume`;
    const env = { ...services.env, MIGRATE_STATE_DIR: path.join(base, "state-plain-kill") };
    await killAndResume(bucket, dst, env, 5 * MiB, 8, whole.length);
    expect(await blockSizes(dst, "odd.bin")).toEqual(parts.map(() => 5 * MiB));
    expect(md5(await bytesAt(dst, "odd.bin"))).toBe(md5(whole));
  }, 120_000);

  it("with unequal parts is copied again hashed whole, byte-identical, after one layout retry", async (ctx) => {
    if (!services.s3 || !services.az) ctx.skip("s3 or azure emulator not installed");
    // Parts of 6, 5 and 6 MiB: part 1's size and the part count fit a 6 MiB layout, which then
    // reads 6, 6 and 5 MiB, whose MD5s are not the ETag's.
    const parts = [seededBytes(6 * MiB, 21), seededBytes(5 * MiB, 22), seededBytes(6 * MiB, 23)];
    const whole = Buffer.concat(parts);
    const bucket = await unequalPartsObject(parts, false);

    const dst = `${await services.az!.createBucket()}/odd`;
    const env = { ...services.env, MIGRATE_STATE_DIR: path.join(base, "state-2") };
    const { r, retries } = await copyInParts(bucket, dst, env);
    expect(retries).toHaveLength(1);
    expect(String(retries[0].error)).toMatch(/do not match the source's/);
    expect(objectEvents(r, "done").map((e) => e.key)).toEqual(["odd.bin"]);
    expect(md5(await bytesAt(dst, "odd.bin"))).toBe(md5(whole));
    // Copied the usual way: the destination's own 16 MiB blocks, and the MD5 found on the way.
    expect(await blockSizes(dst, "odd.bin")).toEqual([16 * MiB, 1 * MiB]);
    expect(await storedMd5(dst, "odd.bin")).toBe(md5(whole));
  }, 120_000);
});

describe("an S3 multipart object with part CRC32Cs into S3 or GCS", () => {
  it("into S3: parts of three whole source parts, each checked by its CRC32C; MD5 kept", async (ctx) => {
    if (!services.s3) ctx.skip("s3 emulator not installed");
    const { bucket, body, env } = await seededSource("crc-s3");
    const src = await createAdapter(parseLocation(bucket), { env: { ...process.env, ...services.env } });
    expect(await src.partLayout!("big.bin", await src.stat("big.bin"))).toMatchObject({ partSize: 5 * MiB, parts: 5, partCrc32c: true });
    await src.close?.();

    const dst = `${await services.s3!.createBucket()}/copy`;
    const { retries } = await copyInParts(bucket, dst, env);
    expect(retries).toEqual([]);
    // 15 MiB: three whole 5 MiB source parts, where S3's default would be 16 MiB.
    expect(await s3PartOneSize(dst, "big.bin")).toBe(15 * MiB);
    expect(md5(await bytesAt(dst, "big.bin"))).toBe(md5(body));
    expect(await storedMd5(dst, "big.bin")).toBe(md5(body));
  }, 120_000);

  it("into GCS: byte-identical, MD5 kept, diff --checksum agrees", async (ctx) => {
    if (!services.s3 || !services.gs) ctx.skip("s3 or gcs emulator not installed");
    const { bucket, body, env } = await seededSource("crc-gs");
    const dst = `${await services.gs!.createBucket()}/copy`;
    const { retries } = await copyInParts(bucket, dst, env);
    expect(retries).toEqual([]);
    expect(md5(await bytesAt(dst, "big.bin"))).toBe(md5(body));
    expect(await storedMd5(dst, "big.bin")).toBe(md5(body));
    const diff = await runCli(["diff", bucket, dst, "--checksum"], { env });
    expect(diff.code).toBe(0);
  }, 120_000);

  it("with unequal parts: the layout is set aside after one retry and the copy is byte-identical", async (ctx) => {
    if (!services.s3) ctx.skip("s3 emulator not installed");
    // Parts of 6, 5 and 6 MiB with their CRC32Cs, and the whole MD5 as metadata: part 1's size
    // and the part count fit a 6 MiB layout, whose second part is then 5 MiB, not 6.
    const parts = [seededBytes(6 * MiB, 31), seededBytes(5 * MiB, 32), seededBytes(6 * MiB, 33)];
    const whole = Buffer.concat(parts);
    const bucket = await unequalPartsObject(parts, true);

    const dst = `${await services.s3!.createBucket()}/odd`;
    const env = { ...services.env, MIGRATE_STATE_DIR: path.join(base, "state-crc-odd") };
    const { retries } = await copyInParts(bucket, dst, env);
    expect(retries).toHaveLength(1);
    expect(String(retries[0].error)).toMatch(/source part 2 is 5242880 bytes, not 6291456/);
    expect(md5(await bytesAt(dst, "odd.bin"))).toBe(md5(whole));
    expect(await s3PartOneSize(dst, "odd.bin")).toBe(16 * MiB);
  }, 120_000);

  it("SIGKILL mid-copy: the resumed copy continues the same upload along the layout, sending less than half again", async (ctx) => {
    if (!services.s3) ctx.skip("s3 emulator not installed");
    const { bucket, body } = await seededSource("crc-kill", 60 * MiB);
    const dst = `${await services.s3!.createBucket()}/resume`;
    // A state folder of its own: the seeding run's job must not be the one read.
    const env = { ...services.env, MIGRATE_STATE_DIR: path.join(base, "state-crc-kill-copy") };
    // Four 15 MiB parts, slowed so the kill lands after two.
    await killAndResume(bucket, dst, env, 15 * MiB, 4, body.length);
    expect(await s3PartOneSize(dst, "big.bin")).toBe(15 * MiB);
    expect(md5(await bytesAt(dst, "big.bin"))).toBe(md5(body));
  }, 120_000);

  it("a part's checksum is refused for an object that changed since it was listed", async (ctx) => {
    if (!services.s3) ctx.skip("s3 emulator not installed");
    const { bucket } = await seededSource("crc-changed");
    const src = await createAdapter(parseLocation(bucket), { env: { ...process.env, ...services.env } });
    const before = await src.stat("big.bin");
    expect(await src.partChecksum!("big.bin", 2, before)).toMatchObject({ size: 5 * MiB });
    const client = s3Client();
    try {
      await client.send(new PutObjectCommand({ Bucket: bucket.slice("s3://".length), Key: "big.bin", Body: Buffer.from("new") }));
    } finally {
      client.destroy();
    }
    expect(await caught(src.partChecksum!("big.bin", 2, before))).toMatchObject({ kind: "ConditionNotMatch" });
    await src.close?.();
  }, 120_000);
});
