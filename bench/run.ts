/**
 * `npm run bench`: cloudmigrate against rclone on the same machine and the same emulators.
 *
 * For each workload × route, each tool copies the workload into a fresh destination, `runs`
 * times, the tools taking turns (the order rotates each round, so neither always runs on a
 * warmer machine). Every run is checked (exit 0, every object and byte at the destination)
 * before it counts. Baselines run the same way: a bare SDK loop for one large object on cloud
 * routes (sdk-baseline.ts), and a bare node:fs loop on fs→fs (bare-fs.ts). Then the planning
 * benchmarks: a 1,000,000-object plan, and resuming a 1,000,000-object job that is 99 % done.
 * Prints a table; writes bench/results/<time>.json and bench/results/latest.json. See
 * options.ts for the flags.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { SHORT_ROUND_MS, parseOptions, type BenchOptions, type RouteName, type Workload } from "./options.js";
import { hasGnuTime, killCurrent, measure } from "./measure.js";
import { Lab, calmDisk, emulatorStorage, repoRoot, syncDisks, type Destination, type Endpoint, type EngineSnapshot } from "./lab.js";
import { rcloneBin, rcloneCopyArgs, rcloneEnv, rcloneVersion } from "./rclone.js";
import { keyOf, treeTotals } from "./sources.js";
import {
  checkTargets,
  ratios,
  renderTable,
  sizeLabel,
  summarize,
  writeJson,
  type BenchReport,
  type CaseResult,
  type RunRecord,
  type ScaleResult,
  type Tool,
} from "./report.js";

const SDK_PART_SIZE = 16 * 1024 * 1024; // cloudmigrate's default --part-size
const SDK_PART_CONCURRENCY = 4; // cloudmigrate's default --part-concurrency

const log = (line: string) => process.stderr.write(line + "\n");

interface Invocation {
  cmd: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Objects and bytes this invocation must leave at the destination. */
  expect: { count: number; bytes: number };
}

interface ToolSpec {
  tool: Tool;
  command: string;
  invoke(src: Endpoint, dst: Destination, stateDir: string): Invocation;
}

function toolsFor(w: Workload, route: RouteName, o: BenchOptions, rcloneOk: boolean, engine: EngineSnapshot): { specs: ToolSpec[]; na: Partial<Record<Tool, string>> } {
  const c = String(o.concurrency);
  const all = { count: w.count, bytes: w.count * w.size };
  const specs: ToolSpec[] = [
    {
      tool: "cloudmigrate",
      command: `node bin/migrate SRC DST --no-progress --concurrency ${c}`,
      invoke: (src, dst, stateDir) => ({
        cmd: process.execPath,
        args: [engine.migrateBin, src.cm, dst.cm, "--no-progress", "--concurrency", c],
        env: { ...process.env, ...src.env, ...dst.env, MIGRATE_STATE_DIR: stateDir },
        expect: all,
      }),
    },
  ];
  const na: Partial<Record<Tool, string>> = {};
  if (!o.rclone) na.rclone = "skipped (--no-rclone)";
  else if (!rcloneOk) na.rclone = "rclone not installed (apt-get install rclone)";
  else {
    specs.push({
      tool: "rclone",
      command: `rclone copy SRC DST --transfers ${c} --checkers ${c}`,
      invoke: (src, dst) => ({
        cmd: rcloneBin,
        args: rcloneCopyArgs(src.rclone, dst.rclone, o.concurrency),
        env: rcloneEnv(src.rclone, dst.rclone),
        expect: all,
      }),
    });
  }
  if (route === "fs-fs") {
    // The local-to-local floor: the same files written the same way, with no engine around it.
    if (!o.sdk) na.sdk = "skipped (--no-sdk)";
    else {
      const threads = Math.max(2, os.availableParallelism());
      specs.push({
        tool: "sdk",
        command: `bare loop: node:fs on ${threads} threads, a temporary file, mtime and rename per file; no checkpoint, plan or report (bare-fs.js)`,
        invoke: (src, dst) => ({
          cmd: process.execPath,
          args: [path.join(engine.benchDir, "bare-fs.js"), src.localDir!, dst.cm, String(threads)],
          env: { ...process.env },
          expect: all,
        }),
      });
    }
  }
  if (w.name === "large" && route !== "fs-fs") {
    if (!o.sdk) na.sdk = "skipped (--no-sdk)";
    else {
      const key = keyOf(0, w.count);
      const what: Record<string, string> = {
        "fs-s3": "client-s3 multipart, 16 MiB parts, 4 in flight, positioned file reads",
        "s3-az": "S3 GetObject stream → BlockBlobClient.uploadStream(16 MiB, 4)",
        "s3-gcs": "S3 GetObject stream → storage File.createWriteStream({resumable:false})",
        "gcs-s3": "storage File.download({start,end}) per 16 MiB part → client-s3 multipart, 4 in flight",
        "az-s3": "BlockBlobClient.downloadToBuffer per 16 MiB part → client-s3 multipart, 4 in flight",
      };
      specs.push({
        tool: "sdk",
        command: what[route],
        invoke: (src, dst) => ({
          cmd: process.execPath,
          args: [path.join(engine.benchDir, "sdk-baseline.js"), `${src.sdk}/${key}`, `${dst.sdk}/${key}`, String(SDK_PART_SIZE), String(SDK_PART_CONCURRENCY)],
          env: { ...process.env, ...src.env, ...dst.env },
          expect: { count: 1, bytes: w.size },
        }),
      });
    }
  }
  return { specs, na };
}

async function runOnce(lab: Lab, route: RouteName, src: Endpoint, spec: ToolSpec, o: BenchOptions): Promise<RunRecord> {
  let dst: Destination | undefined;
  const stateDir = path.join(lab.root, `state-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`);
  try {
    dst = await lab.destination(route);
    const inv = spec.invoke(src, dst, stateDir);
    const calm = calmDisk([lab.engine.dir, src.localDir]);
    const load1 = os.loadavg()[0];
    const emuBefore = lab.emulatorCpuMs();
    const m = await measure(inv.cmd, inv.args, { env: inv.env, cwd: repoRoot, timeoutMs: o.timeoutMs });
    const emuAfter = lab.emulatorCpuMs();
    const rec: RunRecord = { wallMs: m.wallMs, peakRss: m.peakRss, cpuMs: m.cpuMs, sysCpuMs: m.sysCpuMs, boxCpuMs: m.boxCpuMs, ok: false, load1, cachesDropped: calm };
    if (emuBefore && emuAfter) {
      rec.emulatorCpuMs = Object.fromEntries(Object.entries(emuAfter).map(([name, ms]) => [name, ms - (emuBefore[name] ?? 0)]));
    }
    if (m.timedOut) rec.error = `timed out after ${o.timeoutMs / 1000} s`;
    else if (m.exitCode !== 0) rec.error = `exit ${m.exitCode ?? m.signal}: ${m.stderrTail.split("\n").slice(-3).join(" | ")}`;
    else {
      const got = await dst.totals();
      if (got.count !== inv.expect.count || got.bytes !== inv.expect.bytes) {
        rec.error = `destination holds ${got.count} objects / ${got.bytes} bytes, expected ${inv.expect.count} / ${inv.expect.bytes}`;
      } else rec.ok = true;
    }
    return rec;
  } catch (err) {
    return { wallMs: 0, peakRss: 0, ok: false, load1: os.loadavg()[0], error: (err as Error).message };
  } finally {
    fs.rmSync(stateDir, { recursive: true, force: true });
    await dst?.dispose().catch((err: unknown) => log(`  (cleanup: ${(err as Error).message})`));
  }
}

async function runCase(lab: Lab, w: Workload, route: RouteName, o: BenchOptions, rcloneOk: boolean): Promise<CaseResult> {
  const tag = `[${w.name} ${route}]`;
  const { specs, na } = toolsFor(w, route, o, rcloneOk, lab.engine);
  const runs = new Map<Tool, RunRecord[]>(specs.map((s) => [s.tool, []]));
  let src: Endpoint | undefined;
  try {
    log(`${tag} preparing source (${w.count} × ${sizeLabel(w.size)})`);
    src = await lab.source(route, w);
  } catch (err) {
    const why = `source: ${(err as Error).message}`;
    log(`${tag} ${why}`);
    return { workload: w, route, tools: specs.map((s) => ({ tool: s.tool, command: s.command, runs: [], ok: false, na: why })) };
  }
  // A case's first round ran slowest (1 GiB S3→Azure, two full runs: 5 of the 6 tools' round-1
  // runs were their slowest), and its very first run, always cloudmigrate's, most (medium and
  // large S3→Azure: 14-29 % over its next two). One run first, not counted, takes that slot.
  let warmup: CaseResult["warmup"];
  if (o.warmup) {
    const rec = await runOnce(lab, route, src, specs[0], o);
    warmup = { tool: specs[0].tool, wallMs: rec.wallMs, ok: rec.ok };
    log(`${tag} warm-up ${specs[0].tool.padEnd(12)} ${rec.ok ? `${(rec.wallMs / 1000).toFixed(2)} s` : `FAILED: ${rec.error}`} (not counted)`);
  }
  const caseStart = Date.now();
  let measuredMs = 0; // the tools' own wall time, all rounds so far
  for (let i = 0; ; i++) {
    const elapsed = Date.now() - caseStart;
    const wanted = i > 0 && measuredMs / i < SHORT_ROUND_MS ? o.shortCaseRuns : o.runs;
    if (i >= wanted) break;
    if (i >= 2 && elapsed + elapsed / i > o.caseBudgetMs) {
      log(`${tag} stopping after ${i} rounds: another would pass the case budget (${o.caseBudgetMs / 1000} s, --case-budget)`);
      break;
    }
    const order = specs.map((_, k) => specs[(k + i) % specs.length]);
    for (const spec of order) {
      const rec = await runOnce(lab, route, src, spec, o);
      runs.get(spec.tool)!.push(rec);
      measuredMs += rec.wallMs;
      log(`${tag} run ${i + 1}/${wanted} ${spec.tool.padEnd(12)} ${rec.ok ? `${(rec.wallMs / 1000).toFixed(2)} s, CPU ${((rec.cpuMs ?? 0) / 1000).toFixed(2)} s (${((rec.sysCpuMs ?? 0) / 1000).toFixed(2)} s of it system; box ${((rec.boxCpuMs ?? 0) / 1000).toFixed(2)} s), ${(rec.peakRss / 1e6).toFixed(0)} MB RSS` : `FAILED: ${rec.error}`} (load ${rec.load1.toFixed(2)})`);
    }
  }
  const tools = specs.map((s) => summarize(s.tool, s.command, runs.get(s.tool)!, w));
  for (const [tool, why] of Object.entries(na)) tools.push({ tool: tool as Tool, command: "", runs: [], ok: false, na: why });
  const c: CaseResult = { workload: w, route, tools, warmup };
  ratios(c);
  return c;
}

async function scaleBench(lab: Lab, o: BenchOptions): Promise<ScaleResult[]> {
  const out: ScaleResult[] = [];
  const n = o.scaleObjects;
  const scaleJs = path.join(lab.engine.benchDir, "scale.js");
  if (o.scale.includes("plan")) {
    for (const present of [0, 99]) {
      const name = present ? "plan-99%-present" : "plan-empty-dst";
      log(`[scale] ${name}: planning ${n} synthetic objects`);
      const m = await measure(process.execPath, [scaleJs, "plan", String(n), String(present)], { cwd: repoRoot, timeoutMs: o.timeoutMs });
      const r: ScaleResult = {
        name,
        description: present
          ? `plan() + SqliteCheckpoint, synthetic source vs synthetic destination holding ${present} % (skip rows)`
          : "plan() + SqliteCheckpoint, synthetic source vs empty destination (all copy rows)",
        objects: n,
        ok: false,
        processMs: m.wallMs,
        peakRss: m.peakRss,
      };
      try {
        if (m.exitCode !== 0) throw new Error(m.stderrTail.split("\n").slice(-3).join(" | "));
        const j = JSON.parse(m.stdoutHead.trim().split("\n").pop()!) as { planMs: number; rows: number; copy: number; skip: number };
        if (j.rows !== n) throw new Error(`planned ${j.rows} rows, expected ${n}`);
        r.ms = j.planMs;
        r.details = j;
        r.ok = true;
      } catch (err) {
        r.error = (err as Error).message;
      }
      log(`[scale] ${name}: ${r.ok ? `${(r.ms! / 1000).toFixed(1)} s, ${(r.peakRss! / 1e6).toFixed(0)} MB RSS` : `FAILED: ${r.error}`}`);
      out.push(r);
    }
  }
  if (o.scale.includes("resume")) {
    const root = path.join(lab.root, "resume");
    const stateDir = path.join(root, "state");
    const srcDir = path.join(root, "src");
    const dstDir = path.join(root, "dst");
    fs.mkdirSync(srcDir, { recursive: true });
    fs.mkdirSync(dstDir, { recursive: true });
    const r: ScaleResult = {
      name: "resume-99%-done",
      description: "real `node bin/migrate resume ID --json` on a fs→fs job: time from spawn to the first object event",
      objects: n,
      ok: false,
    };
    try {
      log(`[scale] resume: building a ${n}-object job, 99 % done`);
      const built = await measure(process.execPath, [scaleJs, "resume-job", String(n), stateDir, srcDir, dstDir], { cwd: repoRoot, timeoutMs: o.timeoutMs });
      if (built.exitCode !== 0) throw new Error(`building the job: ${built.stderrTail.split("\n").slice(-3).join(" | ")}`);
      const job = JSON.parse(built.stdoutHead.trim().split("\n").pop()!) as { id: string; pending: number; size: number; buildMs: number };
      syncDisks();
      const m = await measure(
        process.execPath,
        [lab.engine.migrateBin, "resume", job.id, "--json", "--no-progress", "--concurrency", String(o.concurrency)],
        { cwd: repoRoot, env: { ...process.env, MIGRATE_STATE_DIR: stateDir }, timeoutMs: o.timeoutMs, firstLine: /"event":"object"/ },
      );
      r.processMs = m.wallMs;
      r.peakRss = m.peakRss;
      r.details = { jobBuildMs: job.buildMs, pending: job.pending, resumeTotalMs: m.wallMs };
      if (m.exitCode !== 0) throw new Error(`resume exit ${m.exitCode}: ${m.stderrTail.split("\n").slice(-3).join(" | ")}`);
      const got = treeTotals(dstDir);
      if (got.count !== job.pending || got.bytes !== job.pending * job.size) throw new Error(`resume left ${got.count} files, expected ${job.pending}`);
      if (m.firstMatchMs === undefined) throw new Error("no object event seen");
      r.ms = m.firstMatchMs;
      r.ok = true;
    } catch (err) {
      r.error = (err as Error).message;
    }
    log(`[scale] resume: ${r.ok ? `first object after ${(r.ms! / 1000).toFixed(2)} s; whole resume ${(r.processMs! / 1000).toFixed(1)} s` : `FAILED: ${r.error}`}`);
    fs.rmSync(root, { recursive: true, force: true });
    out.push(r);
  }
  return out;
}

function gitState(): { commit?: string; dirty?: boolean } {
  try {
    const commit = execFileSync("git", ["rev-parse", "HEAD"], { cwd: repoRoot, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--", "src", "adapters", "checkpoints"], { cwd: repoRoot, encoding: "utf8" }).trim() !== "";
    return { commit, dirty };
  } catch {
    return {};
  }
}

/**
 * NODE_EXTRA_CA_CERTS (set machine-wide where this bench was written, to the system's 220 KB
 * bundle) makes every Node process parse it before running a line: `node -e 0` took 60-90 ms
 * with it and 20-30 ms without, a tax on the Node tools (cloudmigrate, the SDK and bare loops)
 * that rclone does not pay and a user's machine rarely levies. Every run talks plain HTTP to
 * loopback emulators, so it is removed for all the bench starts, unless
 * BENCH_KEEP_NODE_EXTRA_CA_CERTS=1. What was done goes into the JSON and under the table.
 */
function dropNodeExtraCaCerts(): string {
  const value = process.env.NODE_EXTRA_CA_CERTS;
  if (value === undefined) return "not set";
  if (process.env.BENCH_KEEP_NODE_EXTRA_CA_CERTS === "1") return `kept (${value}): every Node process pays ~40-60 ms at start to read it`;
  delete process.env.NODE_EXTRA_CA_CERTS;
  return `removed for every process the bench starts (it was ${value}; ~40-60 ms of each Node start)`;
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  // As under `npm run`: the harnesses find azurite-blob on PATH (their own relative lookup
  // points into dist/ once compiled).
  process.env.PATH = [path.join(repoRoot, "node_modules", ".bin"), process.env.PATH].join(path.delimiter);
  const caCerts = dropNodeExtraCaCerts();
  if (!fs.existsSync(path.join(repoRoot, "dist", "src", "cli.js"))) throw new Error("dist/ is missing: run `npm run build` first");
  const rclone = o.rclone ? rcloneVersion() : undefined;
  if (o.rclone && !rclone) log("rclone not found: its columns will be n/a (apt-get install rclone)");
  if (!hasGnuTime) log("/usr/bin/time not found (apt-get install time): peak RSS is polled from /proc and may miss short peaks");
  const git = gitState();
  const lab = new Lab(fs.mkdtempSync(path.join(os.tmpdir(), "cloudmigrate-bench-")), o.s3Seed, log);
  let closing = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (closing) return;
    closing = true;
    log(`${sig}: stopping the emulators…`);
    killCurrent();
    const hard = setTimeout(() => process.exit(130), 10_000);
    void lab.close().finally(() => {
      clearTimeout(hard);
      process.exit(130);
    });
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const started = Date.now();
  const cases: CaseResult[] = [];
  let scale: ScaleResult[] = [];
  try {
    for (const w of o.workloads) {
      for (const route of o.routes) {
        cases.push(await runCase(lab, w, route, o, Boolean(rclone)));
        lab.endCase();
      }
      await lab.forget(w);
    }
    if (o.scale.length) scale = await scaleBench(lab, o);
  } finally {
    await lab.close();
  }
  const report: BenchReport = {
    meta: {
      date: new Date().toISOString(),
      ...git,
      engine: "a copy of dist/ taken when the bench started (every run uses the same build)",
      localSourcePages: lab.engine.dropsPageCache
        ? "dropped from the page cache once read, by cloudmigrate and the bare loops (native/fadvise.c), as rclone drops them"
        : "kept in the page cache by cloudmigrate and the bare loops (build/Release/fsnative.node missing); rclone drops them",
      node: process.version,
      nodeExtraCaCerts: caCerts,
      rclone: rclone ?? null,
      emulatorStorage: { minio: emulatorStorage().kind, azurite: "in memory", fakeGcs: `filesystem backend on ${emulatorStorage().kind}` },
      host: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memoryBytes: os.totalmem(), platform: `${os.type()} ${os.release()}` },
      peakRssSource: hasGnuTime ? "/usr/bin/time %M" : "/proc VmHWM polled every 50 ms",
      options: { ...o, workloads: o.workloads.map((w) => `${w.name}:${w.count}x${w.size}`) },
      cloudmigrateDefaults: "its own defaults besides --concurrency (see `migrate --help`)",
      s3Source:
        o.s3Seed === "aws-cli"
          ? "written as `aws s3 cp` does by default: PutObject under 8 MiB, else 8 MiB parts; no metadata"
          : "written by cloudmigrate (multipart objects carry their whole MD5 as metadata)",
      rcloneDefaults: "rclone's own defaults besides --transfers/--checkers",
      totalMs: Date.now() - started,
    },
    cases,
    scale,
    targets: checkTargets(cases, scale),
  };
  const file = writeJson(path.resolve(repoRoot, o.outDir), report);
  process.stdout.write(renderTable(report) + "\n");
  log(`\nResults: ${path.relative(process.cwd(), file)} (and latest.json); took ${((Date.now() - started) / 60000).toFixed(1)} min`);
}

main().catch((err: unknown) => {
  log(`bench: ${(err as Error)?.stack ?? String(err)}`);
  process.exitCode = 1;
});
