/**
 * The benchmark's world: local source trees, the emulators (started by the tests' harnesses),
 * and per-route sources and fresh destinations for both tools.
 *
 * - Local sources are generated once per workload under the lab's temp dir.
 * - MinIO is started once and serves both as an S3 source (a bucket seeded once per workload,
 *   as the AWS CLI writes (bench/seed-s3.ts) or with cloudmigrate, reused by every run) and as
 *   the fs→S3 destination (a new bucket per run, emptied and removed after it is verified).
 * - GCS and Azure sources (gcs-s3, az-s3) are an emulator of their own per workload, seeded
 *   once with cloudmigrate and stopped when the workload is done.
 * - Azurite and fake-gcs-server destinations are a freshly started emulator each, stopped (and
 *   its files removed) after the run: every run starts from the same empty state and memory
 *   does not pile up over runs.
 * Every emulator started is tracked and `close()` stops them all (also from a signal handler).
 */
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { DeleteBucketCommand, DeleteObjectsCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { startMinio } from "../tests/emulators/minio.js";
import { startFakeGcs } from "../tests/emulators/fakegcs.js";
import { containerSasUrl, startAzurite } from "../tests/emulators/azurite.js";
import type { Emulator } from "../tests/emulators/types.js";
import { FS_NATIVE_FILE } from "../src/native.js";
import { findGoBinary } from "../tests/emulators/process.js";
import { createAdapter, parseLocation } from "../adapters/index.js";
import type { RouteName, S3Seed, Workload } from "./options.js";
import { plainS3Client, seedLikeAwsCli } from "./seed-s3.js";
import { treeTotals, writeSource } from "./sources.js";
import { processCpuMs } from "./measure.js";
import { azureRemote, gcsRemote, localRemote, s3Remote, type RcloneRemote } from "./rclone.js";

export interface Totals {
  count: number;
  bytes: number;
}

/** One side of a transfer, addressed for each tool. */
export interface Endpoint {
  /** Location for cloudmigrate (URL or path). */
  cm: string;
  rclone: RcloneRemote;
  /** Location for the SDK baseline: fs:/dir, s3:bucket, az:container, gs:bucket (objects go under it). */
  sdk: string;
  /** Environment that points cloudmigrate (and the SDKs) at the emulator. */
  env: Record<string, string>;
  /** The local folder, for a source on the local disk (warmed before each run). */
  localDir?: string;
}

export interface Destination extends Endpoint {
  /** What arrived: objects and bytes. */
  totals(): Promise<Totals>;
  /** Remove it (and stop its emulator, if it has its own); a local folder only at Lab.endCase(). */
  dispose(): Promise<void>;
}

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * A private copy of the built engine (bin/, dist/, package.json, the native build/Release/*.node;
 * node_modules linked), taken when the lab opens: every run of a bench uses the same build even
 * if dist/ is rebuilt while it runs (`npm run build` elsewhere would otherwise mix engine
 * versions into one table).
 */
export interface EngineSnapshot {
  /** The copy's folder. */
  dir: string;
  /** bin/migrate of the copy. */
  migrateBin: string;
  /** dist/bench of the copy (sdk-baseline.js, scale.js). */
  benchDir: string;
  /** Whether the copy has the fsnative addon, so it and the bare loops drop a local source's pages once read. */
  dropsPageCache: boolean;
}

function snapshotEngine(root: string): EngineSnapshot {
  const dir = path.join(root, "engine");
  fs.mkdirSync(dir, { recursive: true });
  fs.cpSync(path.join(repoRoot, "dist"), path.join(dir, "dist"), { recursive: true, filter: (f) => !f.endsWith(".map") });
  fs.cpSync(path.join(repoRoot, "bin"), path.join(dir, "bin"), { recursive: true });
  fs.copyFileSync(path.join(repoRoot, "package.json"), path.join(dir, "package.json"));
  // src/native.ts loads build/Release/fsnative.node from the package root, which here is
  // the copy: without it the engine and the bare loops kept every local source page cached, and
  // the engine copied, listed and read small files on its file threads.
  const release = path.join(repoRoot, "build", "Release");
  const dropsPageCache = fs.existsSync(path.join(release, FS_NATIVE_FILE));
  if (fs.existsSync(release)) {
    fs.mkdirSync(path.join(dir, "build", "Release"), { recursive: true });
    for (const f of fs.readdirSync(release)) if (f.endsWith(".node")) fs.copyFileSync(path.join(release, f), path.join(dir, "build", "Release", f));
  }
  fs.symlinkSync(path.join(repoRoot, "node_modules"), path.join(dir, "node_modules"));
  return { dir, migrateBin: path.join(dir, "bin", "migrate"), benchDir: path.join(dir, "dist", "bench"), dropsPageCache };
}

/**
 * Where MinIO and fake-gcs-server keep their objects: in memory (tmpfs) when there is room, as
 * Azurite keeps its own. On this VM's disk MinIO is capped near 1,000 small PUTs/s by its
 * per-object syncs, and fake-gcs-server's memory backend scans every object in the bucket on each
 * insert (10,000 inserts: ~60 s whoever the client is); either would hide any difference between
 * the tools. fake-gcs-server therefore runs its filesystem backend in this folder.
 * BENCH_EMULATOR_DIR overrides.
 */
export function emulatorStorage(): { dir: string; kind: string } {
  if (process.env.BENCH_EMULATOR_DIR) return { dir: process.env.BENCH_EMULATOR_DIR, kind: "BENCH_EMULATOR_DIR" };
  const shm = "/dev/shm";
  try {
    const st = fs.statfsSync(shm);
    if (st.bavail * st.bsize >= 8 * 1024 ** 3) return { dir: shm, kind: "tmpfs (/dev/shm)" };
  } catch {
    // no /dev/shm here
  }
  return { dir: os.tmpdir(), kind: `disk (${os.tmpdir()}): /dev/shm missing or under 8 GiB free` };
}

/**
 * How long after a mass removal on the local disk a run that creates files there waits, and how
 * many files make a removal "mass". This VM's root filesystem is ext4 without a journal, and
 * there ext4 will not reuse an inode freed in the last 60 s (`recently_deleted()` in
 * fs/ext4/ialloc.c; 360 s while its inode-table block is still dirty): each new file's
 * allocation steps over every such inode. Right after 10,000 files were removed, creating
 * 10,000 more took any tool 2-5× as long, nearly all of it kernel time (perf: rwsem_spin_on_owner,
 * find_get_block_common, recently_deleted). That cost is the same for every tool, so it pulled
 * every small fs→fs ratio towards 1. Journaled ext4, XFS and the like have no such rule.
 */
const INODE_REUSE_WAIT_MS = 61_000;
const MASS_REMOVAL_FILES = 1_000;

export class Lab {
  private minio?: Emulator;
  /** fs destinations of the current case, removed by endCase(): see INODE_REUSE_WAIT_MS. */
  private readonly removeAtCaseEnd: string[] = [];
  /** When the lab last removed MASS_REMOVAL_FILES or more files from the local disk (epoch ms). */
  private lastMassRemoval = 0;
  private readonly running = new Set<Emulator>();
  private readonly sources = new Map<string, string>();
  private readonly seeded = new Map<string, string>();
  /** GCS and Azure sources by "kind workload": their emulator and how each tool reaches them. */
  private readonly cloudSources = new Map<string, { emu: Emulator; endpoint: Endpoint }>();
  private seq = 0;
  readonly engine: EngineSnapshot;

  /** Removes the lab's files if the process dies without `close()` (the harnesses kill their emulators then). */
  private readonly onExit = () => fs.rmSync(this.root, { recursive: true, force: true });

  constructor(
    readonly root: string,
    private readonly s3Seed: S3Seed = "aws-cli",
    private readonly note: (line: string) => void = () => {},
  ) {
    fs.mkdirSync(root, { recursive: true });
    process.on("exit", this.onExit);
    this.engine = snapshotEngine(root);
  }

  /** Local source tree for a workload (generated on first use). */
  localSource(w: Workload): string {
    let dir = this.sources.get(w.name);
    if (!dir) {
      dir = path.join(this.root, `src-${w.name}`);
      this.removeFromDisk(dir);
      writeSource(dir, w);
      this.sources.set(w.name, dir);
    }
    return dir;
  }

  /** Drop a workload's local tree and seeded bucket once no route needs them any more. */
  async forget(w: Workload): Promise<void> {
    const dir = this.sources.get(w.name);
    if (dir) this.removeFromDisk(dir);
    this.sources.delete(w.name);
    const bucket = this.seeded.get(w.name);
    if (bucket && this.minio) await emptyBucket(this.minio, bucket, true);
    this.seeded.delete(w.name);
    for (const [id, { emu }] of this.cloudSources) {
      if (!id.endsWith(` ${w.name}`)) continue;
      this.cloudSources.delete(id);
      await this.stopOne(emu);
    }
  }

  /** Remove a folder on the local disk, noting the time if it held MASS_REMOVAL_FILES files or more. */
  private removeFromDisk(dir: string): void {
    const files = fs.existsSync(dir) ? treeTotals(dir).count : 0;
    fs.rmSync(dir, { recursive: true, force: true });
    if (files >= MASS_REMOVAL_FILES) this.lastMassRemoval = Date.now();
  }

  /** Wait until files can be created on the local disk at full speed again (INODE_REUSE_WAIT_MS). */
  private async settleDisk(): Promise<void> {
    const left = this.lastMassRemoval + INODE_REUSE_WAIT_MS - Date.now();
    if (left <= 0) return;
    this.note(`  waiting ${(left / 1000).toFixed(0)} s: files were removed from the disk less than ${INODE_REUSE_WAIT_MS / 1000} s ago, and ext4 without a journal slows every new file until then`);
    await new Promise((r) => setTimeout(r, left));
  }

  /** A case is over: remove the fs destinations its runs left (their `dispose` only queued them). */
  endCase(): void {
    for (const dir of this.removeAtCaseEnd.splice(0)) this.removeFromDisk(dir);
  }

  private async track<T extends Emulator>(start: () => Promise<T | undefined>, what: string): Promise<T> {
    const emu = await start();
    if (!emu) throw new Error(`${what} is not installed (scripts/install-emulators.sh)`);
    this.running.add(emu);
    return emu;
  }

  /** CPU used so far by each running emulator, ms, by name; undefined if one cannot be read. */
  emulatorCpuMs(): Record<string, number> | undefined {
    const out: Record<string, number> = {};
    for (const emu of this.running) {
      const ms = emu.pid === undefined ? undefined : processCpuMs(emu.pid);
      if (ms === undefined) return undefined;
      out[emu.name] = (out[emu.name] ?? 0) + ms;
    }
    return out;
  }

  private async stopOne(emu: Emulator): Promise<void> {
    this.running.delete(emu);
    await emu.stop();
  }

  async minioEmu(): Promise<Emulator> {
    this.minio ??= await this.track(() => startMinio(emulatorStorage().dir), "minio");
    return this.minio;
  }

  /** Copy the workload's local tree to `url` with cloudmigrate, and check every object arrived. */
  private async seed(url: string, env: Record<string, string>, w: Workload): Promise<void> {
    const stateDir = path.join(this.root, `seed-state-${++this.seq}`);
    const r = spawnSync(process.execPath, [this.engine.migrateBin, this.localSource(w), url, "--no-progress", "--concurrency", "16"], {
      env: { ...process.env, ...env, MIGRATE_STATE_DIR: stateDir },
      encoding: "utf8",
      timeout: 30 * 60_000,
    });
    fs.rmSync(stateDir, { recursive: true, force: true });
    if (r.status !== 0) throw new Error(`seeding ${url} failed (exit ${r.status}): ${r.stderr.slice(-2000)}`);
    await checkSeeded(url, env, w, "seeding");
  }

  /** The workload's objects in a MinIO bucket, seeded once (as `s3Seed` says) and checked. */
  async s3Source(w: Workload): Promise<Endpoint> {
    const emu = await this.minioEmu();
    let bucket = this.seeded.get(w.name);
    if (!bucket) {
      bucket = (await emu.createBucket()).replace(/^s3:\/\//, "");
      if (this.s3Seed === "cloudmigrate") await this.seed(`s3://${bucket}`, emu.env, w);
      else {
        await seedLikeAwsCli(emu.env, bucket, this.localSource(w), w);
        await checkSeeded(`s3://${bucket}`, emu.env, w, "aws-cli seeding");
      }
      this.seeded.set(w.name, bucket);
    }
    return { cm: `s3://${bucket}`, rclone: s3Remote("src", emu.env, bucket), sdk: `s3:${bucket}`, env: emu.env };
  }

  /**
   * The workload's objects in a GCS or Azure emulator of their own, started and seeded once per
   * workload with cloudmigrate and checked; stopped by forget().
   */
  async cloudSource(kind: "gs" | "az", w: Workload): Promise<Endpoint> {
    const id = `${kind} ${w.name}`;
    const have = this.cloudSources.get(id);
    if (have) return have.endpoint;
    const emu = kind === "gs" ? await this.track(() => startFakeGcs(emulatorStorage().dir), "fake-gcs-server") : await this.track(startAzurite, "azurite");
    const url = await emu.createBucket();
    await this.seed(url, emu.env, w);
    const name = url.split("/").pop()!;
    const rclone = kind === "gs" ? gcsRemote("src", emu.env, name) : azureRemote("src", await containerSasUrl(emu, url), name);
    const endpoint: Endpoint = { cm: url, rclone, sdk: `${kind}:${name}`, env: emu.env };
    this.cloudSources.set(id, { emu, endpoint });
    return endpoint;
  }

  async source(route: RouteName, w: Workload): Promise<Endpoint> {
    if (route.startsWith("s3-")) return this.s3Source(w);
    if (route.startsWith("gcs-")) return this.cloudSource("gs", w);
    if (route.startsWith("az-")) return this.cloudSource("az", w);
    const dir = this.localSource(w);
    return { cm: dir, rclone: localRemote(dir), sdk: `fs:${dir}`, env: {}, localDir: dir };
  }

  /**
   * A new, empty destination for one run of one tool. A local folder is removed only by
   * endCase(), and none is handed out within INODE_REUSE_WAIT_MS of a mass removal, so no run
   * creates files where ext4 is still holding freed inodes back.
   */
  async destination(route: RouteName): Promise<Destination> {
    const kind = route.split("-")[1];
    if (kind === "fs") {
      await this.settleDisk();
      const dir = path.join(this.root, `dst-${++this.seq}`);
      fs.mkdirSync(dir);
      return {
        cm: dir,
        rclone: localRemote(dir),
        sdk: `fs:${dir}`,
        env: {},
        totals: async () => treeTotals(dir),
        dispose: async () => void this.removeAtCaseEnd.push(dir),
      };
    }
    if (kind === "s3") {
      const emu = await this.minioEmu();
      const bucket = (await emu.createBucket()).replace(/^s3:\/\//, "");
      return {
        cm: `s3://${bucket}`,
        rclone: s3Remote("dst", emu.env, bucket),
        sdk: `s3:${bucket}`,
        env: emu.env,
        totals: () => adapterTotals(`s3://${bucket}`, emu.env),
        dispose: () => emptyBucket(emu, bucket, true),
      };
    }
    if (kind === "az") {
      const emu = await this.track(startAzurite, "azurite");
      const url = await emu.createBucket();
      const container = url.split("/").pop()!;
      return {
        cm: url,
        rclone: azureRemote("dst", await containerSasUrl(emu, url), container),
        sdk: `az:${container}`,
        env: emu.env,
        totals: () => adapterTotals(url, emu.env),
        dispose: () => this.stopOne(emu),
      };
    }
    const emu = await this.track(() => startFakeGcs(emulatorStorage().dir), "fake-gcs-server");
    const url = await emu.createBucket();
    const bucket = url.replace(/^gs:\/\//, "");
    return {
      cm: url,
      rclone: gcsRemote("dst", emu.env, bucket),
      sdk: `gs:${bucket}`,
      env: emu.env,
      totals: () => adapterTotals(url, emu.env),
      dispose: () => this.stopOne(emu),
    };
  }

  /** Stop every emulator still running and remove the lab's files. */
  async close(): Promise<void> {
    const all = [...this.running];
    this.running.clear();
    this.minio = undefined;
    this.cloudSources.clear();
    await Promise.allSettled(all.map((e) => e.stop()));
    process.off("exit", this.onExit);
    this.onExit();
  }
}

/** Objects and bytes at a location, listed with our own adapter. */
export async function adapterTotals(url: string, env: Record<string, string>): Promise<Totals> {
  const adapter = await createAdapter(parseLocation(url), { env: { ...process.env, ...env } });
  try {
    let count = 0;
    let bytes = 0;
    for await (const o of adapter.list()) {
      count++;
      bytes += o.size;
    }
    return { count, bytes };
  } finally {
    await adapter.close?.();
  }
}

/** Throw unless `url` holds the workload's objects and bytes. */
async function checkSeeded(url: string, env: Record<string, string>, w: Workload, what: string): Promise<void> {
  const got = await adapterTotals(url, env);
  if (got.count !== w.count || got.bytes !== w.count * w.size) {
    throw new Error(`${what} ${url}: ${got.count} objects, ${got.bytes} bytes; expected ${w.count}, ${w.count * w.size}`);
  }
}

/** Delete every object in a MinIO bucket (1000 per request), and the bucket if asked. */
async function emptyBucket(emu: Emulator, bucket: string, remove: boolean): Promise<void> {
  const s3 = plainS3Client(emu.env);
  try {
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
      const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (keys.length) await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    if (remove) await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
  } finally {
    s3.destroy();
  }
}

/** Flush dirty pages so one run's writeback does not land in the next run's time. */
export function syncDisks(): void {
  try {
    execFileSync("sync", { timeout: 120_000 });
  } catch {
    /* best effort */
  }
}

/** The rclone binary (looked up once), or null when it is not installed. */
let rcloneBin: string | null | undefined;

/**
 * Before a run: sync, then (as root) drop the page, dentry and inode caches and read back in the
 * tools' own files and `also` (the engine snapshot, a local source), so every run starts from
 * the same, warm state. (Left cold, the tools' files cost rclone 0.10-0.17 s a run and
 * cloudmigrate 0.06-0.10 s.) Dropping the caches also shortens ext4's hold on freed inodes (see
 * INODE_REUSE_WAIT_MS: it checks only inode-table blocks still in memory), but does not end it;
 * the lab's destinations avoid it instead. Returns whether the caches were dropped (not
 * possible without root).
 */
export function calmDisk(also: (string | undefined)[]): boolean {
  syncDisks();
  let dropped = false;
  try {
    fs.writeFileSync("/proc/sys/vm/drop_caches", "3");
    dropped = true;
  } catch {
    /* not root, or no procfs: the runs then share whatever state the disk is in */
  }
  if (!dropped) return false;
  rcloneBin ??= findGoBinary("rclone") ?? null;
  for (const p of [process.execPath, rcloneBin, path.join(repoRoot, "node_modules"), ...also]) if (p) warm(p);
  return true;
}

/** Read a file, or every file under a folder (links not followed), once, so the kernel caches it. */
function warm(p: string, buf = Buffer.allocUnsafe(8 * 1024 * 1024)): void {
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  if (st?.isDirectory()) {
    for (const name of fs.readdirSync(p)) warm(path.join(p, name), buf);
  } else if (st?.isFile()) {
    const fd = fs.openSync(p, "r");
    try {
      while (fs.readSync(fd, buf, 0, buf.length, null) > 0);
    } finally {
      fs.closeSync(fd);
    }
  }
}
