/**
 * Shared by the chaos tests and the soak (which runs compiled from dist/, so nothing here may
 * assume it lives in tests/): running the built CLI, fixtures, digests of a tree or a bucket,
 * reading a job's checkpoint, and killing a run after a number of its object events.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { seededBytes } from "../helpers/streams.js";
import { tempDir, treeDigest } from "../helpers/cli.js";

/** The repository root: the nearest folder above this file with cloudmigrate's package.json. */
export const repoRoot = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, "package.json");
    if (fs.existsSync(pkg) && (JSON.parse(fs.readFileSync(pkg, "utf8")) as { name?: string }).name === "cloudmigrate") return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error("cannot find the cloudmigrate repository root");
    dir = up;
  }
})();
export const bin = path.join(repoRoot, "bin", "migrate");

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  events: Record<string, unknown>[];
  ms: number;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
  uid?: number;
  gid?: number;
}

export function spawnCli(args: string[], o: RunOptions = {}): ChildProcess {
  return spawn(process.execPath, [bin, ...args], {
    cwd: repoRoot,
    env: { ...process.env, MIGRATE_RETRY_BASE_MS: "10", ...o.env },
    stdio: ["ignore", "pipe", "pipe"],
    ...(o.uid !== undefined ? { uid: o.uid, gid: o.gid ?? o.uid } : {}),
  });
}

export function parseEvents(stdout: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const l of stdout.split("\n")) {
    if (!l.startsWith("{")) continue;
    try {
      out.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      /* a line cut by a kill */
    }
  }
  return out;
}

/**
 * Run the CLI to the end (killed after `timeoutMs`). `onStdout` sees the output so far and may
 * act on the child (e.g. kill it after N events); it is called for each chunk.
 */
export function runCli(args: string[], o: RunOptions & { onStdout?(soFar: string, child: ChildProcess): void } = {}): Promise<Run> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawnCli(args, o);
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => {
      stdout += d.toString();
      o.onStdout?.(stdout, child);
    });
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), o.timeoutMs ?? 120_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, events: parseEvents(stdout), ms: Date.now() - started });
    });
  });
}

export function objectEvents(r: Run, state?: string): Record<string, unknown>[] {
  return r.events.filter((e) => e.event === "object" && (!state || e.state === state));
}

export function countObjectEvents(stdout: string): number {
  return (stdout.match(/"event":"object"/g) ?? []).length;
}

/** One line per problem, for assertion messages. */
export function explain(r: Run): string {
  const failed = r.stdout
    .split("\n")
    .filter((l) => l.includes('"state":"failed"'))
    .slice(0, 5)
    .join("\n");
  return `exit ${r.code}${r.signal ? ` (${r.signal})` : ""} after ${r.ms} ms\nstderr:\n${r.stderr.slice(-3000)}${failed ? `\nfailed objects:\n${failed}` : ""}`;
}


export { seededBytes, tempDir, treeDigest };

const MiB = 1024 * 1024;

/**
 * `count` files of mixed sizes (empty, small, tens of KiB, a few hundred KiB) plus `big` files of
 * `bigSize` bytes (above the tests' 6 MiB multipart threshold), spread across folders.
 * Returns the number of files written.
 */
export function makeMixed(root: string, o: { count: number; big?: number; bigSize?: number; seed?: number }): number {
  const seed = o.seed ?? 11;
  const sizes = [0, 1, 700, 4096, 33_000, 65_537, 310_000];
  let n = 0;
  const write = (rel: string, data: Buffer) => {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, data);
    n++;
  };
  for (let i = 0; i < o.count; i++) {
    const size = i % 10 === 9 ? sizes[6] : sizes[i % 6] + (i % 13);
    write(`m${i % 9}/f-${String(i).padStart(4, "0")}.bin`, seededBytes(size, seed * 1000 + i));
  }
  for (let i = 0; i < (o.big ?? 0); i++) {
    write(`big/large-${i}.bin`, seededBytes((o.bigSize ?? 13 * MiB) + i * 4099, seed * 7 + i));
  }
  return n;
}


/** Keys whose digests differ or that exist on one side only (for readable failures). */
export function digestDiff(want: Map<string, string>, got: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [k, v] of want) if (got.get(k) !== v) out.push(got.has(k) ? `differs: ${k}` : `missing: ${k}`);
  for (const k of got.keys()) if (!want.has(k)) out.push(`extra: ${k}`);
  return out;
}

/** The one job file in a state dir. */
export function jobFile(stateDir: string): string {
  const dir = path.join(stateDir, "jobs");
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".sqlite")) : [];
  if (files.length !== 1) throw new Error(`expected one job in ${dir}, found ${files.join(", ") || "none"}`);
  return path.join(dir, files[0]);
}

/** Object rows by state, read without taking the job over (the file may be mid-crash: WAL). */
export function checkpointStates(stateDir: string): Map<string, string> {
  const db = new Database(jobFile(stateDir), { readonly: true, fileMustExist: true });
  try {
    return new Map((db.prepare("SELECT key, state FROM objects").all() as { key: string; state: string }[]).map((r) => [r.key, r.state]));
  } finally {
    db.close();
  }
}

export function doneKeys(stateDir: string): Set<string> {
  const out = new Set<string>();
  for (const [k, s] of checkpointStates(stateDir)) if (s === "done") out.add(k);
  return out;
}

/** Whether the CLI has created the job file yet (a kill may land before it does). */
export function hasJob(stateDir: string): boolean {
  const dir = path.join(stateDir, "jobs");
  return fs.existsSync(dir) && fs.readdirSync(dir).some((f) => f.endsWith(".sqlite"));
}

/** Parts the checkpoint records as committed, as "uploadId#partNumber". */
export function committedParts(stateDir: string): Set<string> {
  const db = new Database(jobFile(stateDir), { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare("SELECT u.upload_id AS id, p.part_number AS n FROM parts p JOIN uploads u ON u.key = p.key").all() as { id: string; n: number }[];
    return new Set(rows.map((r) => `${r.id}#${r.n}`));
  } finally {
    db.close();
  }
}
