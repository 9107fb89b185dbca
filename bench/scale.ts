/**
 * Child-process entry for the planning-at-scale benchmarks (a process of its own, so its peak
 * RSS is measurable). Prints one JSON line.
 *
 *   node dist/bench/scale.js plan COUNT PRESENT_PERCENT
 *     Plans COUNT synthetic objects against a synthetic destination holding PRESENT_PERCENT % of
 *     them (same size and mtime: "skip"), through the engine's plan() into a new SqliteCheckpoint
 *     in a temp dir, which is removed afterwards. Prints {planMs, rows, copy, skip}.
 *
 *   node dist/bench/scale.js resume-job COUNT STATE_DIR SRC_DIR DST_DIR
 *     Builds a real job for `migrate resume`: the job the CLI would create for SRC_DIR → DST_DIR,
 *     planned (plan() over a synthetic source of COUNT objects, empty destination), with 99 % of
 *     its rows then marked done (every row but each 100th) and its status "interrupted". The
 *     pending 1 % are written as real files under SRC_DIR so the resume can copy them.
 *     Prints {id, pending, buildMs}.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { plan } from "../src/planner.js";
import { SqliteCheckpoint } from "../checkpoints/sqlite.js";
import { JobDirectory, jobIdFor } from "../checkpoints/jobs.js";
import type { JobOptions } from "../checkpoints/types.js";
import { locationId, parseLocation } from "../adapters/index.js";
import { SyntheticAdapter } from "./synthetic.js";

const OBJECT_SIZE = 1024;
const options: JobOptions = { include: [], exclude: [], compare: "default", delete: false };

async function planBench(count: number, presentPercent: number): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bench-plan-"));
  try {
    const store = SqliteCheckpoint.create(path.join(tmp, "plan.sqlite"), { id: "bench", source: "synthetic://src", destination: "synthetic://dst", options });
    const source = new SyntheticAdapter({ count, size: OBJECT_SIZE });
    const every = presentPercent > 0 ? Math.round(100 / (100 - presentPercent)) : 0;
    const destination = new SyntheticAdapter({
      count,
      size: OBJECT_SIZE,
      present: presentPercent >= 100 ? () => true : presentPercent <= 0 ? () => false : (i) => i % every !== 0,
    });
    const t0 = performance.now();
    await plan({ source, destination, store, options });
    const planMs = performance.now() - t0;
    const c = store.counts();
    store.close();
    const out = { planMs, rows: c.byState.pending.objects + c.byState.done.objects + c.byState.failed.objects, copy: c.byAction.copy.objects, skip: c.byAction.skip.objects };
    process.stdout.write(JSON.stringify(out) + "\n");
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

async function resumeJob(count: number, stateDir: string, srcDir: string, dstDir: string): Promise<void> {
  const t0 = performance.now();
  const src = parseLocation(srcDir);
  const dst = parseLocation(dstDir);
  const id = jobIdFor(locationId(src), locationId(dst));
  const jobs = new JobDirectory(stateDir);
  const store = jobs.create({ id, source: locationId(src), destination: locationId(dst), options });
  await plan({ source: new SyntheticAdapter({ count, size: OBJECT_SIZE }), destination: new SyntheticAdapter({ count: 0, size: 0 }), store, options });
  store.setStatus("interrupted");
  store.close();

  const db = new Database(jobs.fileOf(id));
  db.prepare("UPDATE objects SET state = 'done', attempts = 1, bytes_done = size WHERE (id - 1) % 100 != 99").run();
  const pendingKeys = (db.prepare("SELECT key FROM objects WHERE state = 'pending' ORDER BY id").all() as { key: string }[]).map((r) => r.key);
  db.pragma("wal_checkpoint(TRUNCATE)");
  db.close();

  const body = Buffer.alloc(OBJECT_SIZE, 0x61);
  for (const key of pendingKeys) {
    const file = path.join(srcDir, ...key.split("/"));
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, body);
  }
  process.stdout.write(JSON.stringify({ id, pending: pendingKeys.length, size: OBJECT_SIZE, buildMs: performance.now() - t0 }) + "\n");
}

async function main(): Promise<void> {
  const [mode, ...args] = process.argv.slice(2);
  if (mode === "plan") return planBench(Number(args[0]), Number(args[1] ?? 0));
  if (mode === "resume-job") return resumeJob(Number(args[0]), args[1], args[2], args[3]);
  throw new Error(`unknown mode ${mode}; expected plan or resume-job`);
}

main().catch((err: unknown) => {
  process.stderr.write(`scale: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
