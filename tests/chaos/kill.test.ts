/**
 * Crashes and interrupts, fs → S3 (MinIO) through the proxy (no faults: it only records every
 * request, so "sent again" is observed on the wire, not just in the tool's own events).
 *
 * - SIGKILL at 20 seeded-random moments across one migration of 3,000 small objects and a few
 *   multipart ones, each followed by a resume, then one run to completion: the bucket ends
 *   byte-identical, and no object the checkpoint had recorded as done before a kill is ever
 *   uploaded again. Replay a failure with CHAOS_SEED=<seed from the test name>.
 * - SIGINT / SIGTERM: exit 130 with a consistent checkpoint, then resume completes.
 * - Two SIGINTs: the second stops at once (exit 130), and the job still resumes.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startMinio } from "../emulators/minio.js";
import { emulatorHostOf, envThroughProxy, prng, startFaultProxy, type FaultProxy, type LogEntry } from "./proxy.js";
import {
  checkpointStates,
  countObjectEvents,
  digestDiff,
  doneKeys,
  explain,
  committedParts,
  hasJob,
  objectEvents,
  parseEvents,
  runCli,
  seededBytes,
  spawnCli,
  tempDir,
  treeDigest,
  type Run,
} from "./harness.js";
import { s3Digest } from "./cloud.js";

const SEED = Number(process.env.CHAOS_SEED) || 424242;
const MiB = 1024 * 1024;
const FLAGS = ["--json", "--no-progress", "--concurrency", "8", "--retries", "10", "--timeout", "10", "--multipart-threshold", "6M", "--part-size", "5M"];

const minio = await startMinio();
afterAll(async () => {
  await minio?.stop();
});

/** 1 KiB files in 20 folders, and `big` multipart-sized files placed among them in key order. */
function makeFixture(root: string, small: number, big: number): number {
  for (let d = 0; d < 20; d++) fs.mkdirSync(path.join(root, `d${String(d).padStart(2, "0")}`), { recursive: true });
  for (let i = 0; i < small; i++) {
    fs.writeFileSync(path.join(root, `d${String(i % 20).padStart(2, "0")}`, `f${String(i).padStart(5, "0")}.txt`), seededBytes(1024, i + 1));
  }
  for (let i = 0; i < big; i++) {
    const dir = `d${String(3 + i * 5).padStart(2, "0")}`;
    fs.writeFileSync(path.join(root, dir, `zz-big-${i}.bin`), seededBytes(11 * MiB + i * 1000, 900 + i));
  }
  return small + big;
}

/** The object key an S3 path-style data request is about, or undefined (bucket-level requests). */
function s3Key(e: LogEntry, bucket: string): string | undefined {
  const p = e.path.split("?")[0];
  const prefix = `/${bucket}/`;
  if (!p.startsWith(prefix) || p.length === prefix.length) return undefined;
  return decodeURIComponent(p.slice(prefix.length));
}

/** "uploadId#partNumber" of an S3 UploadPart request, else undefined. */
function partOf(e: LogEntry): string | undefined {
  const q = new URLSearchParams(e.path.split("?")[1] ?? "");
  const id = q.get("uploadId");
  const n = q.get("partNumber");
  return e.method === "PUT" && id && n ? `${id}#${n}` : undefined;
}

/** Keys that had bytes uploaded (PUT object or PUT part) in log entries from `since`. */
function uploadedKeys(proxy: FaultProxy, bucket: string, since: number): string[] {
  return proxy.log.filter((e) => e.start >= since && e.method === "PUT").map((e) => s3Key(e, bucket)).filter((k): k is string => k !== undefined);
}

interface Ctx {
  proxy: FaultProxy;
  base: string;
  env: Record<string, string>;
  direct: Record<string, string>;
  src: string;
  state: string;
  bucket: string;
  bucketName: string;
}

/** `putLatencyMs`: how long the proxy holds every upload (PUT) before forwarding it. */
async function setup(tag: string, small: number, big: number, putLatencyMs = 0): Promise<Ctx & { total: number }> {
  const host = emulatorHostOf(minio!.env);
  const proxy = await startFaultProxy({ target: `http://${host}`, latencyMs: (r) => (r.method === "PUT" ? putLatencyMs : 0) });
  const base = tempDir(tag);
  const src = path.join(base, "src");
  const state = path.join(base, "state");
  const total = makeFixture(src, small, big);
  const bucket = await minio!.createBucket();
  const st = { MIGRATE_STATE_DIR: state };
  return {
    proxy,
    base,
    env: { ...envThroughProxy(minio!.env, host, proxy), ...st },
    direct: { ...minio!.env, ...st },
    src,
    state,
    bucket,
    bucketName: bucket.replace("s3://", ""),
    total,
  };
}

describe.skipIf(!minio)("crashes and interrupts, fs → S3", () => {
  it(`SIGKILL at 20 random moments across 3,000+ objects, resuming each time (seed ${SEED})`, { timeout: 200_000 }, async () => {
    // Parts are held 250 ms at the proxy and go two at a time, so a kill can land between parts.
    const c = await setup("kill", 3000, 4, 0);
    c.proxy.configure({ latencyMs: (r) => (r.method === "PUT" && r.path.includes("partNumber=") ? 250 : 0) });
    const flags = [...FLAGS, "--part-concurrency", "2"];
    const random = prng(SEED);
    const recordedDone = new Set<string>(); // done in the checkpoint as of the last kill
    const recordedParts = new Set<string>(); // "uploadId#part" committed as of the last kill
    const sentAgain: string[] = [];
    const reportedTwice: string[] = [];
    const notDurable: string[] = [];
    const kills: string[] = [];
    let midMultipart = 0;

    /** Violations in what a run (from proxy time `since`) sent and reported. */
    const audit = (label: string, run: Run, since: number) => {
      for (const e of c.proxy.log) {
        if (e.start < since || e.method !== "PUT") continue;
        const key = s3Key(e, c.bucketName);
        if (key !== undefined && recordedDone.has(key)) sentAgain.push(`${label}: ${key}`);
        const part = partOf(e);
        if (part && recordedParts.has(part)) sentAgain.push(`${label}: part ${part} of ${key}`);
      }
      for (const e of objectEvents(run, "done")) if (recordedDone.has(String(e.key))) reportedTwice.push(`${label}: ${String(e.key)}`);
    };

    try {
      for (let i = 0; i < 20; i++) {
        const remaining = c.total - recordedDone.size;
        // Mostly after a random number of object events (spread so 20 kills fit the job); some
        // after a random delay (can land in start-up or planning); some right after a part of a
        // large object was committed.
        const r = random();
        const mode = r < 0.15 ? "time" : r < 0.3 ? "part" : "events";
        const afterEvents = 1 + Math.floor(random() * Math.max(1, (2 * remaining) / (21 - i)));
        const afterMs = 50 + Math.floor(random() * 600);
        const runStart = c.proxy.now();
        // A part the checkpoint records that no kill has seen yet: the object it belongs to is
        // mid-upload (its later parts are held at the proxy), so a kill now lands between parts.
        const partRecorded = () => {
          if (!hasJob(c.state)) return false;
          try {
            return [...committedParts(c.state)].some((p) => !recordedParts.has(p));
          } catch {
            return false; // the job's file is being created
          }
        };
        let timer: NodeJS.Timeout | undefined;
        let poll: NodeJS.Timeout | undefined;
        const run = await new Promise<Run>((resolve, reject) => {
          const started = Date.now();
          const child = spawnCli([c.src, c.bucket, ...flags], { env: c.env });
          let stdout = "";
          let stderr = "";
          const kill = () => {
            if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
          };
          if (mode === "time") timer = setTimeout(kill, afterMs);
          if (mode === "part") poll = setInterval(() => partRecorded() && kill(), 5);
          child.stdout!.on("data", (d: Buffer) => {
            stdout += d.toString();
            // In "part" mode this is the fallback when no large object is left in this run.
            if (mode !== "time" && countObjectEvents(stdout) >= afterEvents * (mode === "part" ? 2 : 1)) kill();
          });
          child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
          const guard = setTimeout(kill, 60_000);
          child.on("error", reject);
          child.on("close", (code, signal) => {
            clearTimeout(guard);
            clearTimeout(timer);
            clearInterval(poll);
            // Only whole lines: the last one may have been cut by the kill.
            resolve({ code, signal, stdout, stderr, events: parseEvents(stdout.slice(0, stdout.lastIndexOf("\n") + 1)), ms: Date.now() - started });
          });
        });
        kills.push(mode === "time" ? `${afterMs}ms` : mode === "part" ? "part" : `${afterEvents}ev`);
        if (run.signal !== "SIGKILL") {
          // It finished before the kill landed: fine only if it really finished.
          expect(run.code, explain(run)).toBe(0);
          break;
        }
        audit(`kill ${i}`, run, runStart);
        if (hasJob(c.state)) {
          const done = doneKeys(c.state);
          // Every completion reported before the kill was durable; done stays done.
          for (const e of objectEvents(run, "done")) if (!done.has(String(e.key))) notDurable.push(`kill ${i}: ${String(e.key)}`);
          for (const k of recordedDone) if (!done.has(k)) notDurable.push(`kill ${i}: ${k} no longer done`);
          for (const k of done) recordedDone.add(k);
          const parts = committedParts(c.state);
          if (parts.size) midMultipart++;
          for (const p of parts) recordedParts.add(p);
        }
      }
      const finalStart = c.proxy.now();
      const last = await runCli([c.src, c.bucket, ...flags], { env: c.env, timeoutMs: 120_000 });
      expect(last.code, explain(last)).toBe(0);
      audit("final", last, finalStart);

      const partPuts = c.proxy.log.filter((e) => e.method === "PUT" && partOf(e)).length;
      process.stderr.write(
        `[chaos] kills survived: ${kills.length} (${kills.join(" ")}); ${midMultipart} with parts of a large object committed, ` +
          `${partPuts} part uploads for 4×3 parts; ${recordedDone.size} objects done before the last kill\n`,
      );
      expect(kills.length).toBe(20);
      expect(midMultipart, "kills that left a large object with parts committed").toBeGreaterThan(0);
      expect(sentAgain, "objects or parts recorded done, then uploaded again").toEqual([]);
      expect(reportedTwice, "objects recorded done, then transferred again").toEqual([]);
      expect(notDurable, "completions reported but not in the checkpoint").toEqual([]);
      expect([...checkpointStates(c.state).values()].every((s) => s === "done")).toBe(true);
      expect(digestDiff(treeDigest(c.src), await s3Digest(minio!.env, c.bucket))).toEqual([]);
    } finally {
      await c.proxy.close();
      fs.rmSync(c.base, { recursive: true, force: true });
    }
  });

  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    it(`${sig} → exit 130, the checkpoint consistent, resume completes`, { timeout: 90_000 }, async () => {
      const c = await setup(sig.toLowerCase(), 240, 1, 60);
      try {
        let sent = false;
        const first = await runCli([c.src, c.bucket, ...FLAGS], {
          env: c.env,
          onStdout: (out, child) => {
            if (!sent && countObjectEvents(out) >= 40) {
              sent = true;
              child.kill(sig);
            }
          },
        });
        expect(sent, "the run ended before the signal").toBe(true);
        expect(first.code, explain(first)).toBe(130);
        expect(first.stderr).toMatch(new RegExp(`${sig}: finishing`));
        const states = checkpointStates(c.state);
        const done = [...states].filter(([, s]) => s === "done").map(([k]) => k);
        expect([...states.values()].filter((s) => s === "failed")).toEqual([]);
        expect(done.length).toBeLessThan(c.total);
        // Everything reported done is recorded done, and its bytes are at the destination.
        for (const e of objectEvents(first, "done")) expect(states.get(String(e.key))).toBe("done");
        const there = await s3Digest(minio!.env, c.bucket);
        const want = treeDigest(c.src);
        for (const k of done) expect(there.get(k), k).toBe(want.get(k));
        const st = await runCli(["status", "--json"], { env: c.direct });
        expect((st.events.find((e) => e.event === "status") as { job: { status: string } }).job.status).toBe("interrupted");

        const resumeStart = c.proxy.now();
        const again = await runCli(["resume", ...FLAGS], { env: c.env });
        expect(again.code, explain(again)).toBe(0);
        const doneSet = new Set(done);
        expect(uploadedKeys(c.proxy, c.bucketName, resumeStart).filter((k) => doneSet.has(k))).toEqual([]);
        expect(objectEvents(again, "done")).toHaveLength(c.total - done.length);
        expect(digestDiff(want, await s3Digest(minio!.env, c.bucket))).toEqual([]);
      } finally {
        await c.proxy.close();
        fs.rmSync(c.base, { recursive: true, force: true });
      }
    });
  }

  it("a second SIGINT stops at once (exit 130); the job still resumes", { timeout: 90_000 }, async () => {
    // Every upload takes 4 s: after the first SIGINT the run would wait for the ones in flight.
    const c = await setup("sigint2", 100, 0, 4000);
    try {
      const child = spawnCli([c.src, c.bucket, ...FLAGS], { env: c.env });
      let stderr = "";
      child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
      const closed = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
      const deadline = Date.now() + 30_000;
      while (c.proxy.stats.inFlight < 4 || !c.proxy.log.some((e) => e.method === "PUT")) {
        if (Date.now() > deadline) throw new Error(`no uploads in flight; stderr: ${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      child.kill("SIGINT");
      await new Promise((r) => setTimeout(r, 700));
      expect(child.exitCode, "the first SIGINT should wait for uploads in flight").toBe(null);
      const t = Date.now();
      child.kill("SIGINT");
      const code = await closed;
      expect(code, stderr).toBe(130);
      expect(Date.now() - t).toBeLessThan(1500);
      expect(stderr).toMatch(/again: stopping now/);

      c.proxy.configure({ latencyMs: 0 });
      const again = await runCli(["resume", ...FLAGS], { env: c.env });
      expect(again.code, explain(again)).toBe(0);
      expect(digestDiff(treeDigest(c.src), await s3Digest(minio!.env, c.bucket))).toEqual([]);
    } finally {
      await c.proxy.close();
      fs.rmSync(c.base, { recursive: true, force: true });
    }
  });
});
