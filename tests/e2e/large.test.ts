/**
 * Large objects through the CLI: a 200 MiB object in parts into every adapter, byte-identical;
 * and SIGKILL in the middle of a multipart upload, resumed from its committed parts.
 */
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAdapter, parseLocation } from "../../adapters/index.js";
import { runCli, startCli, summaryOf, tempDir } from "../helpers/cli.js";
import { seededBytes } from "../helpers/streams.js";
import { startServices, type Services } from "../emulators/all.js";

const MiB = 1024 * 1024;
const SIZE = 200 * MiB;
const FLAGS = ["--multipart-threshold", "16M", "--part-size", "8M", "--part-concurrency", "4", "--json"];

let services: Services;
let base: string;
let srcDir: string;
let srcMd5: string;

/** MD5 of an object as the destination serves it, streamed (never held whole). */
async function md5At(url: string, key: string): Promise<string> {
  const a = await createAdapter(parseLocation(url), { env: { ...process.env, ...services.env } });
  const h = crypto.createHash("md5");
  for await (const chunk of await a.read(key)) h.update(chunk as Buffer);
  await a.close?.();
  return h.digest("hex");
}

beforeAll(async () => {
  services = await startServices();
  base = tempDir("large");
  srcDir = path.join(base, "src");
  fs.mkdirSync(srcDir);
  // Written in slices so the test process never holds 200 MiB at once.
  const fd = fs.openSync(path.join(srcDir, "big.bin"), "w");
  const h = crypto.createHash("md5");
  for (let i = 0; i < SIZE / (8 * MiB); i++) {
    const slice = seededBytes(8 * MiB, 1000 + i);
    h.update(slice);
    fs.writeSync(fd, slice);
  }
  fs.closeSync(fd);
  srcMd5 = h.digest("hex");
}, 120_000);

afterAll(async () => {
  await services?.stop();
  if (base) fs.rmSync(base, { recursive: true, force: true });
});

describe("a 200 MiB object in 8 MiB parts", () => {
  for (const kind of ["fs", "s3", "gs", "az"] as const) {
    it(`into ${kind}, byte-identical and verified`, async (ctx) => {
      if (kind !== "fs" && !services[kind]) ctx.skip(`${kind} emulator not installed`);
      const dst = kind === "fs" ? path.join(base, "dst-fs") : `${await services[kind]!.createBucket()}/large`;
      const env = { ...services.env, MIGRATE_STATE_DIR: path.join(base, `state-${kind}`) };
      const r = await runCli([srcDir, dst, ...FLAGS], { env, timeoutMs: 300_000 });
      expect(r.stderr).not.toMatch(/error/i);
      expect(r.code).toBe(0);
      expect(summaryOf(r).copiedBytes).toBe(SIZE);
      expect(await md5At(dst, "big.bin")).toBe(srcMd5);
      // Where the service cannot give a multipart object's MD5, it is stored as metadata.
      if (kind !== "fs") {
        const a = await createAdapter(parseLocation(dst), { env: { ...process.env, ...services.env } });
        expect((await a.stat("big.bin")).md5).toBe(srcMd5);
        await a.close?.();
      }
      const diff = await runCli(["diff", srcDir, dst, "--checksum"], { env });
      expect(diff.code).toBe(0);
    }, 300_000);
  }
});

describe("out of GCS or Azure into S3 in parts, read straight into part memory", () => {
  for (const kind of ["gs", "az"] as const) {
    const how = kind === "gs" ? "checked by the parts' CRC32Cs combined (GCS states the object's CRC32C)" : "checked by the whole MD5";
    it(`from ${kind}: ${how}; byte-identical, MD5 kept, diff --checksum agrees`, async (ctx) => {
      const { [kind]: from, s3 } = services;
      if (!from || !s3) return ctx.skip(`${kind} or S3 emulator not installed`);
      const src = `${await from.createBucket()}/from`;
      const dst = `${await s3.createBucket()}/to`;
      const env = { ...services.env, MIGRATE_STATE_DIR: path.join(base, `state-${kind}-s3`) };
      expect((await runCli([srcDir, src, "--json"], { env, timeoutMs: 300_000 })).code).toBe(0);
      const source = await createAdapter(parseLocation(src), { env: { ...process.env, ...services.env } });
      const stated = await source.stat("big.bin");
      await source.close?.();
      expect(stated.md5).toBe(srcMd5);
      if (kind === "gs") expect(stated.crc32c).toMatch(/^[A-Za-z0-9+/]{6}==$/);

      const r = await runCli([src, dst, ...FLAGS], { env, timeoutMs: 300_000 });
      expect(r.stderr).not.toMatch(/error/i);
      expect(r.code).toBe(0);
      expect(summaryOf(r).copiedBytes).toBe(SIZE);
      expect(await md5At(dst, "big.bin")).toBe(srcMd5);
      const to = await createAdapter(parseLocation(dst), { env: { ...process.env, ...services.env } });
      expect((await to.stat("big.bin")).md5).toBe(srcMd5);
      await to.close?.();
      expect((await runCli(["diff", src, dst, "--checksum"], { env })).code).toBe(0);
    }, 300_000);
  }
});

describe("SIGKILL during a multipart upload", () => {
  it("resumes the same upload from its committed parts, sending less than half again", async (ctx) => {
    if (!services.s3) ctx.skip("s3 emulator not installed");
    const dst = `${await services.s3!.createBucket()}/resume`;
    const state = path.join(base, "state-kill");
    const env = { ...services.env, MIGRATE_STATE_DIR: state };
    // Slowed down so the kill lands mid-object: 200 MiB at 50 MiB/s is about 4 s.
    const child = startCli([srcDir, dst, ...FLAGS, "--part-size", "5M", "--bwlimit", "50M"], { env });
    const jobsDir = path.join(state, "jobs");
    const partsTotal = Math.ceil(SIZE / (5 * MiB));
    let committed = 0;
    let uploadId = "";
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline && child.exitCode === null) {
      await new Promise((r) => setTimeout(r, 100));
      const file = fs.existsSync(jobsDir) ? fs.readdirSync(jobsDir).find((f) => f.endsWith(".sqlite")) : undefined;
      if (!file) continue;
      try {
        const db = new Database(path.join(jobsDir, file), { readonly: true, fileMustExist: true });
        committed = (db.prepare("SELECT count(*) AS n FROM parts").get() as { n: number }).n;
        uploadId = (db.prepare("SELECT upload_id FROM uploads").get() as { upload_id: string } | undefined)?.upload_id ?? uploadId;
        db.close();
      } catch {
        continue; // tables not created yet
      }
      if (committed >= partsTotal * 0.6) break;
    }
    expect(child.exitCode, "the upload finished before it could be killed").toBeNull();
    child.kill("SIGKILL");
    await new Promise((r) => child.once("close", r));
    expect(committed).toBeGreaterThanOrEqual(Math.floor(partsTotal * 0.6));
    expect(committed).toBeLessThan(partsTotal);

    // The checkpoint still names the same upload; the next run continues it.
    const db = new Database(path.join(jobsDir, fs.readdirSync(jobsDir).find((f) => f.endsWith(".sqlite"))!), { readonly: true });
    expect((db.prepare("SELECT upload_id FROM uploads").get() as { upload_id: string }).upload_id).toBe(uploadId);
    db.close();
    const status = await runCli(["status"], { env });
    expect(status.stdout).toMatch(/~ big\.bin: \d+\/40 parts/);

    const again = await runCli([srcDir, dst, ...FLAGS, "--part-size", "5M"], { env, timeoutMs: 300_000 });
    expect(again.code).toBe(0);
    const s = summaryOf(again);
    expect(s.copied).toBe(1);
    expect(Number(s.bytesSent)).toBeLessThan(SIZE / 2);
    expect(Number(s.bytesSent)).toBeGreaterThan(0);
    expect(await md5At(dst, "big.bin")).toBe(srcMd5);
  }, 300_000);
});
