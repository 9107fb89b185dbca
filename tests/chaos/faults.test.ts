/**
 * Faults: a migration through the fault-injecting proxy (tests/chaos/proxy.ts) at a 10 % fault
 * rate — resets, 500/503, 429 with and without Retry-After, S3 SlowDown, stalls, cut bodies, cut
 * uploads — must finish with exit 0 and every object byte-identical, for S3, GCS and Azure, in
 * both directions. And an object that always fails ends `failed` with its last error after the
 * bounded number of attempts while everything else completes.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startMinio } from "../emulators/minio.js";
import { startFakeGcs } from "../emulators/fakegcs.js";
import { startAzurite } from "../emulators/azurite.js";
import type { Emulator } from "../emulators/types.js";
import { FAULT_KINDS, emulatorHostOf, envThroughProxy, startFaultProxy, type FaultProxy, type RequestInfo } from "./proxy.js";
import { digestDiff, explain, makeMixed, objectEvents, runCli, tempDir, treeDigest } from "./harness.js";

const SEED = Number(process.env.CHAOS_SEED) || 20240611;
const MiB = 1024 * 1024;

const [minio, fakeGcs, azurite] = await Promise.all([startMinio(), startFakeGcs(), startAzurite()]);
afterAll(async () => {
  await Promise.all([minio?.stop(), fakeGcs?.stop(), azurite?.stop()]);
});

/** Flags for every chaos run: small parts, short timeouts and backoff, generous retries. */
const RUN_FLAGS = ["--json", "--no-progress", "--concurrency", "8", "--retries", "10", "--timeout", "2", "--multipart-threshold", "6M", "--part-size", "5M"];

interface Setup {
  emu: Emulator;
  proxy: FaultProxy;
  /** Env that sends the CLI through the proxy. */
  viaProxy: Record<string, string>;
  /** Env that talks to the emulator directly. */
  direct: Record<string, string>;
  base: string;
}

/** Run `body` with a fault proxy in front of `emu` and a temp folder; both are removed after. */
async function withSetup(emu: Emulator, tag: string, seed: number, body: (t: Setup) => Promise<void>): Promise<void> {
  const host = emulatorHostOf(emu.env);
  const proxy = await startFaultProxy({ target: `http://${host}`, seed, stallMs: 3500, retryAfterSeconds: 1 });
  const base = tempDir(`faults-${tag}`);
  const state = { MIGRATE_STATE_DIR: path.join(base, "state"), MIGRATE_RETRY_BASE_MS: "10" };
  try {
    await body({ emu, proxy, base, viaProxy: { ...envThroughProxy(emu.env, host, proxy), ...state }, direct: { ...emu.env, ...state } });
  } finally {
    await proxy.close();
    fs.rmSync(base, { recursive: true, force: true });
  }
}

const targets: [string, Emulator | undefined][] = [
  ["s3 (minio)", minio],
  ["gcs (fake-gcs-server)", fakeGcs],
  ["azure (azurite)", azurite],
];

for (const [name, emu] of targets) {
  describe.skipIf(!emu)(`through a faulty proxy in front of ${name}`, () => {
    it(`fs → cloud → fs at a 10% fault rate (seed ${SEED}): exit 0, byte-identical, diff clean`, { timeout: 150_000 }, async () => {
      await withSetup(emu!, name.split(" ")[0], SEED, async (t) => {
      const src = path.join(t.base, "src");
      const back = path.join(t.base, "back");
      const files = makeMixed(src, { count: 200, big: 2, bigSize: 13 * MiB });
      const bucket = await emu!.createBucket();
      t.proxy.configure({ rate: 0.1 });

      const up = await runCli([src, bucket, ...RUN_FLAGS], { env: t.viaProxy, timeoutMs: 120_000 });
      expect(up.code, explain(up)).toBe(0);
      expect(objectEvents(up, "done")).toHaveLength(files);
      const upFaults = t.proxy.totalFaults();

      // Checked without the proxy: what the destination holds is what the source has.
      const diffUp = await runCli(["diff", src, bucket, "--checksum"], { env: t.direct });
      expect(diffUp.code, explain(diffUp)).toBe(0);

      const down = await runCli([bucket, back, ...RUN_FLAGS], { env: t.viaProxy, timeoutMs: 120_000 });
      expect(down.code, explain(down)).toBe(0);
      expect(digestDiff(treeDigest(src), treeDigest(back))).toEqual([]);
      const diffDown = await runCli(["diff", bucket, back], { env: t.direct });
      expect(diffDown.code, explain(diffDown)).toBe(0);

      const kinds = FAULT_KINDS.filter((k) => t.proxy.stats.faults[k] > 0);
      process.stderr.write(
        `[chaos] ${name}: ${t.proxy.stats.requests} requests, faults injected and survived: ${t.proxy.describe()} ` +
          `(upload ${upFaults}, download ${t.proxy.totalFaults() - upFaults})\n`,
      );
      // Retry-After was honoured: the same request came back no sooner than it asked.
      const early: string[] = [];
      t.proxy.log.forEach((e, i) => {
        if (e.fault !== "http429-ra") return;
        const next = t.proxy.log.slice(i + 1).find((n) => n.method === e.method && n.path === e.path && n.range === e.range);
        if (next && next.start - e.start < 900) early.push(`${e.method} ${e.path} after ${next.start - e.start} ms`);
      });
      expect(early, "retried before Retry-After (1 s) elapsed").toEqual([]);
      expect(upFaults).toBeGreaterThan(5);
      expect(t.proxy.totalFaults() - upFaults).toBeGreaterThan(5);
      expect(kinds.length, t.proxy.describe()).toBeGreaterThanOrEqual(5);
      });
    });

    it("an object the service always refuses ends failed with its last error; the rest completes (exit 1)", async () => {
      await withSetup(emu!, `perm-${name.split(" ")[0]}`, SEED + 1, async (t) => {
      const src = path.join(t.base, "src");
      const files = makeMixed(src, { count: 20 });
      const poison = "m0/always-fails.bin";
      fs.writeFileSync(path.join(src, poison), "this one never gets through\n");
      const bucket = await emu!.createBucket();
      // Every upload of that key (S3/Azure PUT …/m0/always-fails.bin, GCS POST …?name=m0%2Falways-fails.bin).
      const isPoison = (p: string) => p.includes("always-fails.bin");
      t.proxy.configure({
        rules: [{ match: (r) => (r.method === "PUT" || r.method === "POST") && isPoison(r.path), status: 500, body: '{"error":{"code":500,"message":"chaos: always fails"}}' }],
      });
      const retries = 4;
      const run = await runCli([src, bucket, ...RUN_FLAGS, "--retries", String(retries)], { env: t.viaProxy });
      expect(run.code, explain(run)).toBe(1);
      const failed = objectEvents(run, "failed");
      expect(failed.map((e) => e.key)).toEqual([poison]);
      expect(String(failed[0].error)).toMatch(/500|internal|always fails/i);
      expect(objectEvents(run, "done")).toHaveLength(files);
      // Bounded: exactly `retries` attempts reached the service, with retries-1 waits between.
      const attempts = t.proxy.log.filter((e) => e.fault === "rule").length;
      expect(attempts).toBe(retries);
      expect(run.events.filter((e) => e.event === "retry" && e.key === poison)).toHaveLength(retries - 1);
      expect(run.stderr).toMatch(/1 object failed/);

      const status = await runCli(["status"], { env: t.direct });
      expect(status.code).toBe(0);
      expect(status.stdout).toContain(`! ${poison}:`);

      // Once the service accepts it, resume sends only that object.
      t.proxy.configure({ rules: [] });
      const again = await runCli(["resume", "--json"], { env: t.viaProxy });
      expect(again.code, explain(again)).toBe(0);
      expect(objectEvents(again, "done").map((e) => e.key)).toEqual([poison]);
      const diff = await runCli(["diff", src, bucket], { env: t.direct });
      expect(diff.code, explain(diff)).toBe(0);
      });
    });
  });
}

/** A rule matcher that matches the first request `test` accepts, and no other. */
function once(test: (r: RequestInfo) => boolean): (r: RequestInfo) => boolean {
  let used = false;
  return (r) => !used && test(r) && (used = true);
}

/** One 13 MiB file (3 parts with RUN_FLAGS) in a fresh source folder; returns the folder. */
function bigSource(t: Setup): string {
  const src = path.join(t.base, "src");
  fs.mkdirSync(src, { recursive: true });
  fs.writeFileSync(path.join(src, "big.bin"), Buffer.alloc(13 * MiB, 7));
  return src;
}

// When completing an upload fails, the adapter checks whether the object is there already (a
// completion whose answer was lost). A throttled check must be retried after its Retry-After,
// not taken as "not there" (which would start the upload again and send every part twice).
describe.skipIf(!fakeGcs)("gcs: a failed compose, then a throttled check of the destination", () => {
  it("waits the check's Retry-After before composing again, and sends no part twice", async () => {
    await withSetup(fakeGcs!, "compose-check", SEED, async (t) => {
    const src = bigSource(t);
    const bucket = await fakeGcs!.createBucket();
    t.proxy.configure({
      rules: [
        { match: once((r) => r.method === "POST" && r.path.includes("/o/big.bin/compose")), status: 503, body: '{"error":{"code":503,"message":"chaos"}}' },
        {
          match: once((r) => r.method === "GET" && r.path.includes("/o/big.bin?")),
          status: 429,
          headers: { "retry-after": "1" },
          body: '{"error":{"code":429,"message":"chaos: slow down"}}',
        },
      ],
    });
    const run = await runCli([src, bucket, ...RUN_FLAGS], { env: t.viaProxy });
    expect(run.code, explain(run)).toBe(0);

    const log = t.proxy.log;
    const check = log.find((e) => e.fault === "rule" && e.method === "GET");
    const composes = log.filter((e) => e.method === "POST" && e.path.includes("/o/big.bin/compose"));
    expect(check, "the destination was checked after the failed compose").toBeDefined();
    expect(composes).toHaveLength(2);
    expect(composes[1].start - check!.start, "compose retried before Retry-After (1 s)").toBeGreaterThanOrEqual(900);
    expect(log.filter((e) => e.method === "POST" && e.path.includes("uploadType=multipart"))).toHaveLength(3);
    const diff = await runCli(["diff", src, bucket, "--checksum"], { env: t.direct });
    expect(diff.code, explain(diff)).toBe(0);
    });
  });
});

describe.skipIf(!minio)("s3: NoSuchUpload on completion, then a throttled HEAD of the destination", () => {
  it("retries the completion instead of starting the upload again", async () => {
    await withSetup(minio!, "complete-check", SEED, async (t) => {
    const src = bigSource(t);
    const bucket = await minio!.createBucket();
    const noSuchUpload =
      '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchUpload</Code><Message>chaos: no such upload</Message></Error>';
    const slowDown = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>chaos: slow down</Message></Error>';
    t.proxy.configure({
      rules: [
        // CompleteMultipartUpload is POST /bucket/big.bin?uploadId=…; the upload itself stays open.
        { match: once((r) => r.method === "POST" && /\/big\.bin\?uploadId=/.test(r.path)), status: 404, body: noSuchUpload },
        { match: once((r) => r.method === "HEAD" && r.path.includes("/big.bin")), status: 503, body: slowDown },
      ],
    });
    const run = await runCli([src, bucket, ...RUN_FLAGS], { env: t.viaProxy });
    expect(run.code, explain(run)).toBe(0);

    const log = t.proxy.log;
    expect(log.filter((e) => e.fault === "rule").map((e) => e.method)).toEqual(["POST", "HEAD"]);
    expect(log.filter((e) => e.method === "PUT" && /partNumber=/.test(e.path)), "parts sent").toHaveLength(3);
    const diff = await runCli(["diff", src, bucket, "--checksum"], { env: t.direct });
    expect(diff.code, explain(diff)).toBe(0);
    });
  });
});
