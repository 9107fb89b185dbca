/** Run the built CLI as a user would: `node bin/migrate …`, capturing output and exit code. */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import path from "node:path";
import fs from "node:fs";
import crypto from "node:crypto";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const bin = path.join(repoRoot, "bin", "migrate");

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** NDJSON events from stdout (with --json). */
  events: Record<string, unknown>[];
}

export interface CliOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  uid?: number;
  gid?: number;
  timeoutMs?: number;
}

export function startCli(args: string[], opts: CliOptions = {}): ChildProcess {
  const so: SpawnOptions = {
    cwd: opts.cwd ?? repoRoot,
    env: { ...process.env, MIGRATE_RETRY_BASE_MS: "10", ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  };
  if (opts.uid !== undefined) so.uid = opts.uid;
  if (opts.gid !== undefined) so.gid = opts.gid;
  return spawn(process.execPath, [bin, ...args], so);
}

export function parseEvents(stdout: string): Record<string, unknown>[] {
  return stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = startCli(args, opts);
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, events: parseEvents(stdout) });
    });
  });
}

export { tempDir } from "./temp.js";

/** Every file under `dir` as key → sha256, for byte-identity checks. */
export function treeDigest(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string, prefix: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, e.name);
      if (e.isDirectory()) walk(full, prefix + e.name + "/");
      else out.set(prefix + e.name, crypto.createHash("sha256").update(fs.readFileSync(full)).digest("hex"));
    }
  };
  if (fs.existsSync(dir)) walk(dir, "");
  return out;
}

/** Object events of a run, by state. */
export function objectEvents(r: CliResult, state?: string): Record<string, unknown>[] {
  return r.events.filter((e) => e.event === "object" && (!state || e.state === state));
}

export function summaryOf(r: CliResult): Record<string, number | string> {
  const s = r.events.find((e) => e.event === "summary");
  if (!s) throw new Error(`no summary event; stderr: ${r.stderr}`);
  return s as Record<string, number | string>;
}
