/**
 * Profile one cloudmigrate run of one benchmark case with `node --cpu-prof`, then print where
 * the time went (self time by area and by function). The .cpuprofile is kept for a flame graph
 * (Chrome DevTools → Performance → Load profile, or speedscope.app).
 *
 *   node dist/bench/profile.js --workload small --route fs-s3 [--quick] [--count N] [--size BYTES]
 *                              [--concurrency C] [--inclusive fnA,fnB] [--callers fnA,fnB] [--out DIR]
 *                              [-- extra migrate args, e.g. --part-size 64M]
 *   node dist/bench/profile.js --file X.cpuprofile [--inclusive …] [--callers …]   (summarize a saved profile)
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Lab, repoRoot } from "./lab.js";
import { killCurrent, measure } from "./measure.js";
import { parseOptions, type RouteName, type Workload } from "./options.js";
import { callersOf, renderProfile, summarizeProfile } from "./cpuprofile.js";

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    options: {
      workload: { type: "string", default: "small" },
      route: { type: "string", default: "fs-fs" },
      quick: { type: "boolean", default: false },
      count: { type: "string" },
      size: { type: "string" },
      concurrency: { type: "string", default: "16" },
      inclusive: { type: "string", default: "" },
      callers: { type: "string", default: "" },
      file: { type: "string" },
      out: { type: "string", default: "bench/results/profiles" },
    },
    allowPositionals: true,
  });
  const inclusive = values.inclusive ? values.inclusive.split(",") : [];
  const summarize = (file: string) => summarizeProfile(file, 30, inclusive);
  const show = (file: string, summary = summarize(file)) => {
    process.stdout.write(renderProfile(summary) + "\n");
    for (const fn of values.callers ? values.callers.split(",") : []) {
      process.stdout.write(`callers of ${fn}:\n`);
      for (const c of callersOf(file, fn)) process.stdout.write(`  ${c.ms.toFixed(0).padStart(7)} ms ${c.pct.toFixed(1).padStart(5)} %  ${c.name}\n`);
    }
  };
  if (values.file) return show(values.file);
  const base = parseOptions([...(values.quick ? ["--quick"] : []), "--workloads", values.workload!, "--routes", values.route!]);
  const w: Workload = { ...base.workloads[0] };
  if (values.count) w.count = Number(values.count);
  if (values.size) w.size = Number(values.size);
  const route = base.routes[0] as RouteName;
  process.env.PATH = [path.join(repoRoot, "node_modules", ".bin"), process.env.PATH].join(path.delimiter);

  const lab = new Lab(fs.mkdtempSync(path.join(os.tmpdir(), "cloudmigrate-profile-")), base.s3Seed);
  const stop = () => {
    killCurrent();
    void lab.close().finally(() => process.exit(130));
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  try {
    const src = await lab.source(route, w);
    const dst = await lab.destination(route);
    const profDir = path.join(lab.root, "prof");
    const m = await measure(
      process.execPath,
      ["--cpu-prof", "--cpu-prof-dir", profDir, lab.engine.migrateBin, src.cm, dst.cm, "--no-progress", "--concurrency", values.concurrency!, ...positionals],
      { env: { ...process.env, ...src.env, ...dst.env, MIGRATE_STATE_DIR: path.join(lab.root, "state") }, cwd: repoRoot, timeoutMs: 30 * 60_000 },
    );
    const got = await dst.totals();
    await dst.dispose();
    if (m.exitCode !== 0) throw new Error(`migrate exited ${m.exitCode}: ${m.stderrTail}`);
    // One profile per thread (each worker's written when it ends, the main thread's at exit),
    // busiest first: thread1, thread2… are in that order, not by role.
    const files = fs
      .readdirSync(profDir)
      .filter((f) => f.endsWith(".cpuprofile"))
      .map((f) => ({ f, summary: summarize(path.join(profDir, f)) }))
      .sort((a, b) => b.summary.busyMs - a.summary.busyMs);
    if (files.length === 0) throw new Error("no .cpuprofile written");
    const outDir = path.resolve(repoRoot, values.out!);
    fs.mkdirSync(outDir, { recursive: true });
    const mbps = (w.count * w.size) / 1e6 / (m.wallMs / 1000);
    process.stdout.write(
      `${w.name} ${route}: ${w.count} × ${w.size} B in ${(m.wallMs / 1000).toFixed(2)} s ` +
        `(${((w.count * 1000) / m.wallMs).toFixed(0)} objects/s, ${mbps.toFixed(1)} MB/s, peak RSS ${(m.peakRss / 1e6).toFixed(0)} MB; ` +
        `destination holds ${got.count} objects)\n` +
        `threads on CPU: ${files.map((x) => `${x.summary.busyMs.toFixed(0)} ms`).join(", ")}\n`,
    );
    files.forEach(({ f, summary }, i) => {
      const kept = path.join(outDir, `${w.name}-${route}-${w.count}x${w.size}${i === 0 ? "" : `-thread${i}`}.cpuprofile`);
      fs.copyFileSync(path.join(profDir, f), kept);
      process.stdout.write(`profile: ${path.relative(process.cwd(), kept)}\n`);
      show(kept, summary);
    });
  } finally {
    await lab.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`profile: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exitCode = 1;
});
