/**
 * Run one command and measure it: wall time (measured here, from spawn to exit) and peak RSS
 * (GNU time's %M, the child's maximum resident set size; without /usr/bin/time, the highest
 * VmHWM seen by polling /proc every 50 ms, which can miss a last-moment peak).
 *
 * The command runs in its own process group so a timeout or a Ctrl-C kills all of it.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const GNU_TIME = "/usr/bin/time";
export const hasGnuTime = fs.existsSync(GNU_TIME);

export interface Measured {
  wallMs: number;
  /** Peak resident set size in bytes (0 when unknown). */
  peakRss: number;
  /** User + system CPU time of the command, ms (GNU time only; a steadier figure than wall time on a shared machine). */
  cpuMs?: number;
  /** The system (kernel) share of cpuMs, ms. */
  sysCpuMs?: number;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** Last ~4 KB of stderr, for error messages. */
  stderrTail: string;
  /** First ~64 KB of stdout. */
  stdoutHead: string;
  /** ms from spawn to the first stdout line `firstLine` matched, if asked for. */
  firstMatchMs?: number;
  /**
   * CPU busy time of the whole machine while the command ran, ms (/proc/stat: every process,
   * the emulators included). Near cores × wall time: the machine, not the tool, was the limit.
   */
  boxCpuMs?: number;
}

let clockTicks: number | undefined;
/** Busy CPU time of the whole machine since boot, ms; undefined off Linux. */
export function machineBusyMs(): number | undefined {
  try {
    const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
    const busy = f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] ?? 0);
    clockTicks ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    return (busy * 1000) / clockTicks;
  } catch {
    return undefined;
  }
}

/** User + system CPU a live process has used so far, ms (undefined when it cannot be read). */
export function processCpuMs(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the ")" closing the command name: state is field 3, utime 14, stime 15.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    clockTicks ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    return ((Number(f[11]) + Number(f[12])) * 1000) / clockTicks;
  } catch {
    return undefined;
  }
}

export interface MeasureOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs: number;
  /** Note the time the first stdout line matching this arrives. */
  firstLine?: RegExp;
}

/** The measured child currently running, so a signal handler can kill its group. */
let current: ChildProcess | undefined;

export function killCurrent(): void {
  if (current?.pid) {
    try {
      process.kill(-current.pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
}

function readHwm(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export async function measure(cmd: string, args: string[], opts: MeasureOptions): Promise<Measured> {
  const timeFile = path.join(os.tmpdir(), `bench-time-${process.pid}-${Date.now()}.txt`);
  const [file, argv] = hasGnuTime ? [GNU_TIME, ["-o", timeFile, "-f", "%M %U %S", cmd, ...args]] : [cmd, args];
  const busyBefore = machineBusyMs();
  const started = process.hrtime.bigint();
  const child = spawn(file, argv, {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // own process group
  });
  current = child;
  let stderr = "";
  let firstMatchMs: number | undefined;
  let pending = "";
  let stdout = "";
  child.stdout!.on("data", (d: Buffer) => {
    if (stdout.length < 65536) stdout += d.toString();
    if (!opts.firstLine || firstMatchMs !== undefined) return;
    pending += d.toString();
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    if (lines.some((l) => opts.firstLine!.test(l))) firstMatchMs = Number(process.hrtime.bigint() - started) / 1e6;
  });
  child.stderr!.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  let polledPeak = 0;
  const poll = hasGnuTime
    ? undefined
    : setInterval(() => {
        if (child.pid) polledPeak = Math.max(polledPeak, readHwm(child.pid));
      }, 50);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killCurrent();
  }, opts.timeoutMs);
  const [exitCode, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, sig) => resolve([code, sig]));
  });
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  const busyAfter = machineBusyMs();
  const boxCpuMs = busyBefore !== undefined && busyAfter !== undefined ? busyAfter - busyBefore : undefined;
  clearTimeout(timer);
  if (poll) clearInterval(poll);
  current = undefined;
  let peakRss = polledPeak;
  let cpuMs: number | undefined;
  let sysCpuMs: number | undefined;
  if (hasGnuTime) {
    try {
      // GNU time may prefix "Command exited with non-zero status N"; the figures are the last line.
      const lines = fs.readFileSync(timeFile, "utf8").trim().split("\n");
      const [rssKb, user, sys] = lines[lines.length - 1].split(" ").map(Number);
      peakRss = rssKb * 1024 || 0;
      if (Number.isFinite(user) && Number.isFinite(sys)) [cpuMs, sysCpuMs] = [(user + sys) * 1000, sys * 1000];
    } catch {
      /* killed before time wrote it */
    }
    fs.rmSync(timeFile, { force: true });
  }
  return { wallMs, peakRss, cpuMs, sysCpuMs, boxCpuMs, exitCode, signal, timedOut, stderrTail: stderr.trim(), stdoutHead: stdout, firstMatchMs };
}

/** Median of a non-empty list. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
