/**
 * Results: their shape (the JSON file compared between commits), summaries per tool, the
 * issue's targets checked, and the stdout table.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { median } from "./measure.js";
import type { RouteName, Workload } from "./options.js";

export type Tool = "cloudmigrate" | "rclone" | "sdk";

export interface RunRecord {
  wallMs: number;
  peakRss: number;
  /** User + system CPU of the process, ms. */
  cpuMs?: number;
  /** The system (kernel) share of cpuMs, ms. */
  sysCpuMs?: number;
  /** CPU the whole machine was busy during the run (tool, emulators, anything else), ms. */
  boxCpuMs?: number;
  /** CPU each emulator's process used during the run, ms, by emulator name. */
  emulatorCpuMs?: Record<string, number>;
  ok: boolean;
  error?: string;
  /** 1-minute load average when the run started (the machine is shared). */
  load1: number;
  /** The page, dentry and inode caches were dropped before the run (see calmDisk). */
  cachesDropped?: boolean;
}

export interface ToolSummary {
  tool: Tool;
  /** What exactly ran (command line without secrets, or the baseline's description). */
  command: string;
  runs: RunRecord[];
  ok: boolean;
  medianWallMs?: number;
  objectsPerSec?: number;
  /** 10^6 bytes per second. */
  mbPerSec?: number;
  /** Highest peak RSS over the runs, bytes. */
  peakRss?: number;
  /** Median CPU time (user + system) of the tool's own process, ms. */
  medianCpuMs?: number;
  /** Median system (kernel) share of that CPU time, ms. */
  medianSysCpuMs?: number;
  /** Median busy CPU time of the whole machine during the runs, ms. */
  medianBoxCpuMs?: number;
  /** Median CPU of each emulator during the runs, ms, by emulator name (cloud routes). */
  medianEmulatorCpuMs?: Record<string, number>;
  /** Why there is no figure. */
  na?: string;
}

export interface CaseResult {
  workload: Workload;
  route: RouteName;
  tools: ToolSummary[];
  /** cloudmigrate throughput / rclone throughput (rclone wall / cloudmigrate wall): > 1 is faster. */
  vsRclone?: number;
  /** cloudmigrate throughput / bare SDK throughput (fs→fs: the bare node:fs loop's). */
  vsSdk?: number;
  /** The bare loop's throughput / rclone's: how far any tool could go here by that route. */
  bareVsRclone?: number;
  /** The run made before the measured rounds and not counted (see --no-warmup). */
  warmup?: { tool: Tool; wallMs: number; ok: boolean };
}

export interface ScaleResult {
  name: string;
  description: string;
  objects: number;
  ok: boolean;
  error?: string;
  /** The measured figure: planning time, or time to the first copied object. */
  ms?: number;
  /** Wall time of the whole process. */
  processMs?: number;
  peakRss?: number;
  details?: Record<string, unknown>;
}

export interface TargetCheck {
  target: string;
  met: boolean | "n/a";
  detail: string;
}

export interface BenchReport {
  meta: Record<string, unknown>;
  cases: CaseResult[];
  scale: ScaleResult[];
  targets: TargetCheck[];
}

export function summarize(tool: Tool, command: string, runs: RunRecord[], w: Workload): ToolSummary {
  const good = runs.filter((r) => r.ok);
  if (!good.length) return { tool, command, runs, ok: false, na: runs.find((r) => r.error)?.error ?? "no successful run" };
  const wall = median(good.map((r) => r.wallMs));
  return {
    tool,
    command,
    runs,
    ok: good.length === runs.length,
    medianWallMs: wall,
    objectsPerSec: (w.count * 1000) / wall,
    mbPerSec: (w.count * w.size) / 1e6 / (wall / 1000),
    peakRss: Math.max(...good.map((r) => r.peakRss)),
    medianCpuMs: good.every((r) => r.cpuMs !== undefined) ? median(good.map((r) => r.cpuMs!)) : undefined,
    medianSysCpuMs: good.every((r) => r.sysCpuMs !== undefined) ? median(good.map((r) => r.sysCpuMs!)) : undefined,
    medianBoxCpuMs: good.every((r) => r.boxCpuMs !== undefined) ? median(good.map((r) => r.boxCpuMs!)) : undefined,
    medianEmulatorCpuMs: medianByName(good.map((r) => r.emulatorCpuMs)),
  };
}

export function ratios(c: CaseResult): void {
  const get = (t: Tool) => c.tools.find((s) => s.tool === t);
  const cm = get("cloudmigrate")?.medianWallMs;
  const rc = get("rclone")?.medianWallMs;
  const sdk = get("sdk")?.medianWallMs;
  if (cm && rc) c.vsRclone = rc / cm;
  if (cm && sdk) c.vsSdk = sdk / cm;
  if (sdk && rc) c.bareVsRclone = rc / sdk;
}

export function checkTargets(cases: CaseResult[], scale: ScaleResult[]): TargetCheck[] {
  const out: TargetCheck[] = [];
  const fmt = (x: number | undefined) => (x === undefined ? "n/a" : `${x.toFixed(2)}×`);
  for (const c of cases) {
    const where = `${c.workload.name} ${c.route}`;
    if (c.workload.name === "small") {
      // Where a bare loop ran too, say how far it got: a target above it is out of any tool's reach here.
      const bare = c.bareVsRclone === undefined ? "" : ` (the bare loop: ${fmt(c.bareVsRclone)} rclone${c.bareVsRclone < 1.5 ? ", itself short of 1.5×" : ""})`;
      out.push({ target: `${where}: objects/s ≥ 1.5× rclone`, met: c.vsRclone === undefined ? "n/a" : c.vsRclone >= 1.5, detail: fmt(c.vsRclone) + bare });
    } else {
      out.push({ target: `${where}: MB/s ≥ rclone`, met: c.vsRclone === undefined ? "n/a" : c.vsRclone >= 1, detail: fmt(c.vsRclone) });
    }
    if (c.workload.name === "large") {
      // On fs→fs the baseline is the bare node:fs loop, held to the same 80 %.
      const baseline = c.route === "fs-fs" ? "bare loop" : "bare SDK";
      out.push({ target: `${where}: MB/s ≥ 0.8× ${baseline}`, met: c.vsSdk === undefined ? "n/a" : c.vsSdk >= 0.8, detail: fmt(c.vsSdk) });
    }
  }
  for (const s of scale) {
    if (s.name.startsWith("plan")) {
      const t = s.ms !== undefined && s.ms < 60_000;
      const m = s.peakRss !== undefined && s.peakRss < 300e6;
      out.push({
        target: `${s.name}: ${s.objects.toLocaleString("en")} objects planned in < 60 s, peak RSS < 300 MB`,
        met: s.ok ? t && m : "n/a",
        detail: s.ok ? `${(s.ms! / 1000).toFixed(1)} s, ${mb(s.peakRss!)} MB` : (s.error ?? "failed"),
      });
    } else {
      out.push({
        target: `${s.name}: ${s.objects.toLocaleString("en")}-object job, 99 % done, starts copying in < 10 s`,
        met: s.ok ? s.ms! < 10_000 : "n/a",
        detail: s.ok ? `${(s.ms! / 1000).toFixed(2)} s to the first object` : (s.error ?? "failed"),
      });
    }
  }
  return out;
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(0);

/** Columns listed in `left` are left-aligned, the rest right-aligned. */
function table(rows: string[][], left: number[]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((cell, i) => (left.includes(i) ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  ").trimEnd()).join("\n");
}

/** Per-name medians of per-run figures; undefined unless every run has them. */
function medianByName(runs: (Record<string, number> | undefined)[]): Record<string, number> | undefined {
  if (!runs.length || runs.some((r) => r === undefined)) return undefined;
  const names = Object.keys(runs[0]!);
  return Object.fromEntries(names.map((n) => [n, median(runs.map((r) => r![n] ?? 0))]));
}

export function renderTable(r: BenchReport): string {
  const lines: string[] = [];
  if (r.cases.length) {
    const notes: string[] = [];
    const rows: string[][] = [["workload", "route", "tool", "median s", "objects/s", "MB/s", "peak RSS MB", "CPU s", "emulator CPU s", "box CPU s", "runs ok", "vs rclone", "vs SDK"]];
    for (const c of r.cases) {
      const label = `${c.workload.name} (${c.workload.count}×${sizeLabel(c.workload.size)})`;
      for (const t of c.tools) {
        const first = t.tool === "cloudmigrate";
        rows.push([
          first ? label : "",
          first ? c.route : "",
          t.tool === "sdk" && c.route === "fs-fs" ? "bare loop" : t.tool,
          t.medianWallMs !== undefined ? (t.medianWallMs / 1000).toFixed(2) : "n/a",
          t.objectsPerSec !== undefined ? t.objectsPerSec.toFixed(t.objectsPerSec < 10 ? 2 : 0) : "",
          t.mbPerSec !== undefined ? t.mbPerSec.toFixed(1) : "",
          t.peakRss !== undefined ? mb(t.peakRss) : "",
          t.medianCpuMs !== undefined
            ? (t.medianCpuMs / 1000).toFixed(2) + (t.medianSysCpuMs !== undefined ? ` (${(t.medianSysCpuMs / 1000).toFixed(2)} sys)` : "")
            : "",
          Object.entries(t.medianEmulatorCpuMs ?? {})
            .filter(([, ms]) => ms >= 10) // an emulator kept for other cases, idle in this one
            .map(([name, ms]) => `${name} ${(ms / 1000).toFixed(2)}`)
            .join(", "),
          t.medianBoxCpuMs !== undefined ? (t.medianBoxCpuMs / 1000).toFixed(2) : "",
          `${t.runs.filter((x) => x.ok).length}/${t.runs.length}`,
          first && c.vsRclone !== undefined ? `${c.vsRclone.toFixed(2)}×` : "",
          first && c.vsSdk !== undefined ? `${c.vsSdk.toFixed(2)}×` : "",
        ]);
        if (t.na) notes.push(`  ${c.workload.name} ${c.route} ${t.tool}: ${t.na.split("\n")[0].slice(0, 160)}`);
      }
    }
    lines.push(table(rows, [0, 1, 2]));
    if (notes.length) lines.push("n/a:", ...notes);
    lines.push(
      "vs rclone / vs SDK: cloudmigrate throughput ÷ theirs (> 1 = cloudmigrate faster); for fs-fs, vs SDK is vs the bare node:fs loop. MB = 10^6 bytes.",
      "CPU s: median user+system CPU of the tool's process (not the emulators'), with the median system (kernel) part in brackets; steadier than wall time on a loaded machine.",
      "emulator CPU s: median CPU of each emulator's process during the run. Azurite runs its JavaScript on one thread: near 1 × median s, it was the limit.",
      `box CPU s: CPU the whole machine was busy during the run (tool + emulator + anything else); near ${os.availableParallelism()} × median s, the machine itself was the limit.`,
    );
    const storage = r.meta.emulatorStorage as { minio?: string; azurite?: string; fakeGcs?: string } | undefined;
    if (storage?.minio) {
      lines.push(`Emulator storage: MinIO on ${storage.minio}; Azurite ${storage.azurite}; fake-gcs-server ${storage.fakeGcs}. Local folders on ${os.tmpdir()}.`);
    }
    if (typeof r.meta.s3Source === "string") lines.push(`S3 source bucket: ${r.meta.s3Source}.`);
    if (typeof r.meta.localSourcePages === "string") lines.push(`Local source pages: ${r.meta.localSourcePages}.`);
    if (typeof r.meta.nodeExtraCaCerts === "string") lines.push(`NODE_EXTRA_CA_CERTS: ${r.meta.nodeExtraCaCerts}.`);
    const runs = r.cases.flatMap((c) => c.tools.flatMap((t) => t.runs));
    const dropped = runs.filter((run) => run.cachesDropped).length;
    lines.push(
      dropped === runs.length
        ? "Disk state: before every run, caches dropped, then both tools' files and a local source read back in (each run starts alike, warm)."
        : `Disk state: caches dropped before ${dropped} of ${runs.length} runs (needs root); the others inherit earlier runs' deleted files.`,
    );
  }
  if (r.scale.length) {
    lines.push("");
    const rows: string[][] = [["scale", "objects", "measured s", "process s", "peak RSS MB", "what"]];
    for (const s of r.scale) {
      rows.push([
        s.name,
        s.objects.toLocaleString("en"),
        s.ms !== undefined ? (s.ms / 1000).toFixed(2) : "n/a",
        s.processMs !== undefined ? (s.processMs / 1000).toFixed(2) : "",
        s.peakRss !== undefined ? mb(s.peakRss) : "",
        s.ok ? s.description : `FAILED: ${s.error?.slice(0, 120)}`,
      ]);
    }
    lines.push(table(rows, [0, 5]));
  }
  if (r.targets.length) {
    lines.push("", "Targets:");
    for (const t of r.targets) lines.push(`  ${t.met === "n/a" ? "n/a " : t.met ? "MET " : "MISS"}  ${t.target}: ${t.detail}`);
  }
  return lines.join("\n");
}

export function sizeLabel(bytes: number): string {
  if (bytes >= 1024 ** 3 && bytes % 1024 ** 3 === 0) return `${bytes / 1024 ** 3}GiB`;
  if (bytes >= 1024 ** 2 && bytes % 1024 ** 2 === 0) return `${bytes / 1024 ** 2}MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024}KiB`;
  return `${bytes}B`;
}

/** Write <outDir>/<timestamp>.json and <outDir>/latest.json; returns the first path. */
export function writeJson(outDir: string, r: BenchReport): string {
  fs.mkdirSync(outDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const file = path.join(outDir, `${stamp}.json`);
  const text = JSON.stringify(r, null, 2) + "\n";
  fs.writeFileSync(file, text);
  fs.writeFileSync(path.join(outDir, "latest.json"), text);
  return file;
}
