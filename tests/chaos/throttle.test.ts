/**
 * Throttling and rate limits, fs → S3 (MinIO) through the proxy, measured on the wire:
 *
 * - under sustained 429s the tool keeps fewer requests in flight than --concurrency (adaptive
 *   concurrency), and still finishes;
 * - --tps-limit N: the proxy sees no more than N requests per second (token bucket: N per
 *   second plus at most one second's burst, with a small margin);
 * - --bwlimit B: the proxy receives no more than B bytes per second (same shape), for small
 *   objects and, on average, for multipart uploads.
 * Each cap is checked against an unlimited baseline run of the same data, so the assertions can
 * fail. They bound counts on the wire, not timings.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startMinio } from "../emulators/minio.js";
import { emulatorHostOf, envThroughProxy, startFaultProxy, type FaultProxy } from "./proxy.js";
import { meanInFlight, peakBytesPerWindow, peakInFlight, peakRequestsPerWindow } from "./measure.js";
import { digestDiff, explain, runCli, seededBytes, tempDir, treeDigest } from "./harness.js";
import { s3Digest } from "./cloud.js";

const minio = await startMinio();
afterAll(async () => {
  await minio?.stop();
});

const KiB = 1024;
const MiB = 1024 * KiB;
const BASE_FLAGS = ["--json", "--no-progress", "--retries", "10", "--timeout", "10", "--multipart-threshold", "6M", "--part-size", "5M"];

function makeFiles(root: string, count: number, size: number, seed = 1): void {
  fs.mkdirSync(root, { recursive: true });
  for (let i = 0; i < count; i++) fs.writeFileSync(path.join(root, `f${String(i).padStart(4, "0")}.bin`), seededBytes(size, seed + i));
}

interface Ctx {
  proxy: FaultProxy;
  env: Record<string, string>;
  base: string;
}

async function withProxy(tag: string, fn: (c: Ctx) => Promise<void>): Promise<void> {
  const host = emulatorHostOf(minio!.env);
  const proxy = await startFaultProxy({ target: `http://${host}`, seed: 7 });
  const base = tempDir(tag);
  try {
    await fn({ proxy, base, env: { ...envThroughProxy(minio!.env, host, proxy), MIGRATE_STATE_DIR: path.join(base, "state") } });
  } finally {
    await proxy.close();
    fs.rmSync(base, { recursive: true, force: true });
  }
}

/** Copy `src` to a new bucket through the proxy; returns the bucket, checked byte-identical. */
async function copy(c: Ctx, src: string, flags: string[], during?: (proxy: FaultProxy) => void): Promise<string> {
  const bucket = await minio!.createBucket();
  const r = await runCli([src, bucket, ...BASE_FLAGS, ...flags], { env: c.env, timeoutMs: 90_000, onStdout: () => during?.(c.proxy) });
  expect(r.code, explain(r)).toBe(0);
  expect(digestDiff(treeDigest(src), await s3Digest(minio!.env, bucket))).toEqual([]);
  return bucket;
}

const puts = (p: FaultProxy) => p.log.filter((e) => e.method === "PUT");

describe.skipIf(!minio)("throttling and limits, fs → S3", () => {
  it("sustained 429s: fewer requests in flight than --concurrency, and the run still completes", { timeout: 90_000 }, async () => {
    await withProxy("adaptive", async (c) => {
      // Every upload is held 60 ms, so in-flight ≈ what the tool allows.
      c.proxy.configure({ latencyMs: (r) => (r.method === "PUT" ? 60 : 0) });
      const flags = ["--concurrency", "16", "--part-concurrency", "1"];
      const baseline = path.join(c.base, "baseline");
      makeFiles(baseline, 150, 2 * KiB);
      await copy(c, baseline, flags);
      const unthrottledPeak = peakInFlight(puts(c.proxy));
      expect(unthrottledPeak, "without throttling the tool should fill --concurrency").toBeGreaterThanOrEqual(12);

      // Now 30% of uploads get 429 for 4 s from the first upload on, then none.
      c.proxy.reset();
      const src = path.join(c.base, "src");
      makeFiles(src, 300, 2 * KiB, 1000);
      c.proxy.configure({ rate: 0.3, weights: { http429: 1 }, eligible: (r) => r.method === "PUT" });
      let firstPut = -1;
      const watcher = setInterval(() => {
        if (firstPut < 0 && c.proxy.log.some((e) => e.method === "PUT")) {
          firstPut = c.proxy.now();
          setTimeout(() => c.proxy.configure({ rate: 0 }), 4000);
        }
      }, 10);
      try {
        await copy(c, src, flags);
      } finally {
        clearInterval(watcher);
      }
      expect(firstPut).toBeGreaterThanOrEqual(0);
      const throttled = c.proxy.stats.faults.http429;
      // After the first second of throttling the tool must have backed off.
      const late = peakInFlight(puts(c.proxy), firstPut + 1500, firstPut + 4000);
      const mean = meanInFlight(puts(c.proxy), firstPut + 1500, firstPut + 4000);
      process.stderr.write(
        `[chaos] adaptive: ${throttled} × 429; peak in flight unthrottled ${unthrottledPeak}, ` +
          `under sustained 429s peak ${late}, mean ${mean.toFixed(1)}\n`,
      );
      expect(throttled).toBeGreaterThan(20);
      expect(late).toBeLessThan(16);
      // And on average well below it (unthrottled, the same setup keeps ~16 in flight).
      expect(mean).toBeLessThanOrEqual(16 * 0.6);
    });
  });

  it("--tps-limit 20: at most 20 requests per second reach the service (plus one second's burst)", { timeout: 90_000 }, async () => {
    await withProxy("tps", async (c) => {
      const src = path.join(c.base, "src");
      makeFiles(src, 150, 1 * KiB);
      await copy(c, src, ["--concurrency", "16"]);
      const unlimited = peakRequestsPerWindow(c.proxy.log, 3000);

      c.proxy.reset();
      await copy(c, src, ["--concurrency", "16", "--tps-limit", "20"]);
      const limited = peakRequestsPerWindow(c.proxy.log, 3000);
      const perSecond = peakRequestsPerWindow(c.proxy.log, 1000);
      process.stderr.write(`[chaos] tps: peak requests per 3 s window unlimited ${unlimited}, --tps-limit 20 ${limited} (per 1 s ${perSecond})\n`);
      // Token bucket of 20/s holding one second: ≤ 20·3 + 20 in any 3 s; a few requests of margin
      // (bucket/listing requests, clock granularity).
      const cap = 20 * 3 + 20 + 5;
      expect(unlimited, "the unlimited run should exceed the cap, or this test proves nothing").toBeGreaterThan(cap);
      expect(limited).toBeLessThanOrEqual(cap);
      expect(perSecond).toBeLessThanOrEqual(20 * 2 + 5);
    });
  });

  it("--bwlimit 1M: at most 1 MiB per second reaches the service (plus one second's burst)", { timeout: 90_000 }, async () => {
    await withProxy("bw", async (c) => {
      const src = path.join(c.base, "src");
      makeFiles(src, 40, 128 * KiB);
      await copy(c, src, ["--concurrency", "8"]);
      const unlimited = peakBytesPerWindow(c.proxy.bytesInTicks, 2000);

      c.proxy.reset();
      await copy(c, src, ["--concurrency", "8", "--bwlimit", "1M"]);
      const limited = peakBytesPerWindow(c.proxy.bytesInTicks, 2000);
      process.stderr.write(`[chaos] bwlimit: peak bytes per 2 s window unlimited ${unlimited}, --bwlimit 1M ${limited}\n`);
      // ≤ 1 MiB·2 + 1 MiB burst, plus one object of margin for chunks in flight.
      const cap = 3 * MiB + 128 * KiB;
      expect(unlimited, "the unlimited run should exceed the cap, or this test proves nothing").toBeGreaterThan(cap);
      expect(limited).toBeLessThanOrEqual(cap);
    });
  });

  it("--bwlimit holds on average for multipart uploads too", { timeout: 90_000 }, async () => {
    await withProxy("bw-multipart", async (c) => {
      const src = path.join(c.base, "src");
      fs.mkdirSync(src, { recursive: true });
      fs.writeFileSync(path.join(src, "big.bin"), seededBytes(16 * MiB, 5));
      await copy(c, src, ["--bwlimit", "4M", "--part-concurrency", "4"]);
      const parts = c.proxy.log.filter((e) => e.method === "PUT" && e.path.includes("partNumber="));
      expect(parts.length).toBe(4);
      const first = Math.min(...parts.map((e) => e.start));
      const last = Math.max(...parts.map((e) => e.end));
      // 16 MiB at 4 MiB/s with one second's burst: the parts cannot all arrive within 2 s.
      const seconds = (last - first) / 1000;
      process.stderr.write(`[chaos] bwlimit multipart: 16 MiB in parts over ${seconds.toFixed(2)} s at --bwlimit 4M\n`);
      expect(seconds).toBeGreaterThanOrEqual(2);
    });
  });
});
