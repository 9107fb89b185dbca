/**
 * Local filesystem adapter. The location's root is an absolute directory; keys are paths below
 * it with "/" separators. Writes go to a temporary name in the target directory and are renamed
 * into place, so no half-written file ever appears under its final name.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import crypto from "node:crypto";
import { pipeline } from "node:stream/promises";
import { Readable, Transform } from "node:stream";
import type { Adapter, ByteRange, Capabilities, FileHandoff, Location, MultipartSteps, ObjectInfo, ObjectStream, WriteOptions, WriteResult } from "./types.js";
import { MigrateError, toMigrateError } from "../src/errors.js";
import { compareKeys } from "../src/keys.js";
import { flatten } from "../src/listing.js";
import { WorkerPool, fromErrorShape, workerScript } from "../src/worker-pool.js";
import type { CopiedFile, CopiedOrFailed, CopyArgs, DirEntry, SmallRead } from "./fs-worker.js";
import { TEMP_PREFIX, hashedTempName, tempNameFor } from "./fs-names.js";
import { TEMP_SIZE_IS_PROGRESS, loadWritten, newCopyProgress, reportWhileCopying } from "./fs-progress.js";
import { dropCached } from "./fs-cache.js";
import { NATIVE_COPY_BELOW, NativeCopier } from "./fs-native-copy.js";
import { fsNative } from "../src/native.js";

export { TEMP_PREFIX };

const NAME_MAX = 255;
/**
 * Matches every key with a segment keyProblem refuses for its form (empty, ".", "..", one of our
 * temporary names) or a NUL, and some keys it accepts; no match means only lengths are left to check.
 */
const MAYBE_BAD_SEGMENT = new RegExp(`\\0|(?:^|/)(?:/|$|\\.\\.?(?:/|$)|${TEMP_PREFIX.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")})`);
/** Files up to this size are read and written whole, by one worker call. */
const SMALL_FILE = 256 * 1024;
/**
 * Threads for synchronous file calls, shared by every filesystem adapter in the process: one per
 * core, at least two so one blocked in the kernel leaves another working. On 2 cores each thread
 * more costs CPU (wake-ups, its start) that the others needed. 10,000 × 4 KiB fs→fs on tmpfs,
 * medians of 10: 1 thread 0.87 s (1.12 CPU-s), 2 threads 0.85 s (1.33), 3 threads 0.92 s (1.47).
 * On disk with caches dropped, medians of 5: 2.24, 1.89, 1.88, and 4 threads 1.85 s.
 */
const FS_WORKERS = Number(process.env.CLOUDMIGRATE_FS_THREADS) || Math.min(8, Math.max(2, os.availableParallelism()));
let sharedPool: WorkerPool | undefined;
const fsPool = (): WorkerPool => (sharedPool ??= new WorkerPool(workerScript(import.meta.url, "fs-worker"), FS_WORKERS));
/**
 * The addon's copier, on twice as many of libuv's threads as there are file threads: a call
 * costs no thread of its own, and while one waits in the kernel (folder locks, the journal)
 * another keeps the core. 10,000 × 4 KiB fs→fs on 2 cores, medians of 8 alternated runs (two
 * sessions): 2 calls at once 579 and 599 ms, 3 562, 4 537 and 532, 6 546, 8 533 (rclone 918, 862).
 */
const nativeCopier = NativeCopier.create(2 * FS_WORKERS);
/** Whether writeFromFiles may use the addon (CLOUDMIGRATE_NATIVE_COPY=0 turns it off, read per call). */
const nativeCopyOn = (): boolean => nativeCopier !== undefined && process.env.CLOUDMIGRATE_NATIVE_COPY !== "0";

/**
 * `buf`, or a copy of it in memory of its own: a message to a worker copies a view's whole
 * backing store, and a small body is often a slice of a 64 KiB socket buffer or an 8 KiB pool.
 */
function ownMemory(buf: Buffer): Buffer {
  if (buf.byteLength === buf.buffer.byteLength || buf.buffer instanceof SharedArrayBuffer) return buf;
  const own = Buffer.allocUnsafeSlow(buf.length);
  buf.copy(own);
  return own;
}

/** A Buffer over bytes that arrived from a worker (they arrive as a plain Uint8Array). */
const asBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
const wholeStream = (whole: Buffer): ObjectStream => Object.assign(Readable.from([whole], { objectMode: false }), { whole });
/** writeFromFile reports progress, every PROGRESS_EVERY_MS, for files at least this big. */
const PROGRESS_MIN = 32 * 1024 * 1024;
const PROGRESS_EVERY_MS = 25;
/** Subfolders of a folder whose listings are read ahead of the walk. */
const LIST_AHEAD = 4;
/** Files held read ahead, at most (× SMALL_FILE bytes at worst). */
const AHEAD_MAX = 256;

const capabilities: Capabilities = Object.freeze({
  readRange: true,
  listMd5: false,
  writeReportsMd5: false,
  writeChecksMd5: true,
  crc32c: false,
  preservesMtime: true,
  mtimePrecisionMs: 1,
  maxKeyBytes: 4095,
  metadata: false,
  multipart: Object.freeze({ minPartSize: 1, maxPartSize: 5 * 1024 ** 3, maxParts: 100_000, defaultThreshold: 8 * 1024 ** 3 }),
});

export class FsAdapter implements Adapter {
  readonly display: string;
  readonly capabilities = capabilities;
  private readonly root: string;
  private readonly rootSlash: string;
  private readonly rootBytes: number;

  constructor(loc: Location) {
    this.root = loc.prefix ? path.join(loc.root, ...loc.prefix.split("/")) : loc.root;
    this.rootSlash = this.root.endsWith(path.sep) ? this.root : this.root + path.sep;
    this.rootBytes = Buffer.byteLength(this.root);
    this.display = loc.display;
  }

  /** The file's path: the root, a separator, the key (keyProblem has refused "." and ".." segments). */
  private pathOf(key: string): string {
    const problem = this.keyProblem(key);
    if (problem) throw new MigrateError("Unsupported", `${key}: ${problem}`);
    return path.sep === "/" ? this.rootSlash + key : path.join(this.root, ...key.split("/"));
  }

  keyProblem(key: string): string | undefined {
    const bytes = Buffer.byteLength(key);
    // Most keys pass one pattern test; a key of at most NAME_MAX bytes has no longer segment.
    if (MAYBE_BAD_SEGMENT.test(key) || bytes > NAME_MAX) {
      if (key.includes("\0")) return "a file name cannot contain NUL";
      for (const p of key.split("/")) {
        if (p === "") return "a file name cannot be empty (key has '//' or ends in '/')";
        if (p === "." || p === "..") return `a path segment cannot be '${p}' on a filesystem`;
        if (Buffer.byteLength(p) > NAME_MAX) return `a file name is longer than ${NAME_MAX} bytes`;
        if (p.startsWith(TEMP_PREFIX)) return "name reserved for cloudmigrate's temporary files";
      }
    }
    if (bytes + this.rootBytes + 1 > capabilities.maxKeyBytes) return `path is longer than ${capabilities.maxKeyBytes} bytes`;
    return undefined;
  }

  list(prefix = ""): AsyncIterable<ObjectInfo> {
    return flatten(this.listPages(prefix));
  }

  /** Pages are runs of files of one folder, between its subfolders. */
  listPages(prefix = ""): AsyncIterable<ObjectInfo[]> {
    const start = prefix ? path.join(this.root, ...prefix.split("/")) : this.root;
    return this.walk(start, prefix ? prefix + "/" : "", this.listDir(start));
  }

  /**
   * A folder's entries, read (and its files stat'ed) by the addon, else by one worker call ahead
   * of any copying queued.
   */
  private async listDir(dir: string): Promise<DirEntry[]> {
    try {
      if (!fsNative.listDir) return await fsPool().callFirst<DirEntry[]>("listDir", dir, TEMP_PREFIX);
      const [names, meta] = await fsNative.listDir(dir, TEMP_PREFIX);
      return names.map((name, i) => ({ name, dir: meta[3 * i] === 1, size: meta[3 * i + 1], mtimeMs: meta[3 * i + 2] }));
    } catch (err) {
      throw toMigrateError(err);
    }
  }

  /**
   * Depth-first walk in key order, in pages (see listPages): entries sorted as "name" for files
   * and "name/" for folders.
   * The next LIST_AHEAD subfolders of a folder are read while the walk is in the ones before
   * them, so a copy running alongside is not kept waiting on one listing call at a time.
   */
  private async *walk(dir: string, keyPrefix: string, listing: Promise<DirEntry[]>): AsyncGenerator<ObjectInfo[]> {
    const entries = await listing;
    const sorted = entries.map((e) => ({ e, sortKey: e.dir ? e.name + "/" : e.name }));
    sorted.sort((a, b) => compareKeys(a.sortKey, b.sortKey));
    const subdirs = sorted.filter(({ e }) => e.dir).map(({ e }) => e.name);
    const ahead = new Map<string, Promise<DirEntry[]>>();
    let next = 0;
    const readAhead = () => {
      for (; next < subdirs.length && ahead.size < LIST_AHEAD; next++) {
        const p = this.listDir(path.join(dir, subdirs[next]));
        p.catch(() => undefined); // awaited in order below; not unhandled meanwhile
        ahead.set(subdirs[next], p);
      }
    };
    let files: ObjectInfo[] = [];
    for (const { e } of sorted) {
      if (!e.dir) {
        // Files this big are read or copied by the file threads: they boot while the plan runs.
        if (e.size > SMALL_FILE) fsPool().warm();
        files.push({ key: keyPrefix + e.name, size: e.size, mtime: Math.floor(e.mtimeMs) });
        continue;
      }
      if (files.length) yield files;
      files = [];
      readAhead();
      const p = ahead.get(e.name)!;
      ahead.delete(e.name);
      readAhead();
      yield* this.walk(path.join(dir, e.name), keyPrefix + e.name + "/", p);
    }
    if (files.length) yield files;
  }

  async stat(key: string): Promise<ObjectInfo> {
    const p = this.pathOf(key);
    try {
      const st = await fsp.stat(p);
      if (!st.isFile()) throw new MigrateError("NotFound", `${key}: not a file`);
      return { key, size: st.size, mtime: Math.floor(st.mtimeMs) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new MigrateError("NotFound", `${key}: no such file`);
      throw toMigrateError(err);
    }
  }

  /** Files read ahead by prefetch(), until read() takes them. */
  private readonly ahead = new Map<string, Promise<SmallRead | undefined>>();

  prefetch(keys: readonly string[]): void {
    // A bound on what is held: entries no read() came for (a stopped run) are dropped wholesale.
    if (this.ahead.size >= AHEAD_MAX) this.ahead.clear();
    const wanted: string[] = [];
    const paths: string[] = [];
    for (const k of keys) {
      if (this.ahead.has(k)) continue;
      try {
        paths.push(this.pathOf(k));
        wanted.push(k);
      } catch {
        // a key that cannot be a file here: read() gives the error
      }
    }
    if (!wanted.length) return;
    const all = fsNative.readSmallFiles
      ? fsNative.readSmallFiles(paths, SMALL_FILE).then(
          (got) => got.map((g) => (g === true ? { big: true as const } : g === null ? { failed: true as const } : { buf: g })),
          () => undefined,
        )
      : fsPool().call<(SmallRead | { failed: true })[]>("readMany", paths, SMALL_FILE).catch(() => undefined);
    wanted.forEach((k, i) =>
      this.ahead.set(k, all.then((got) => { const one = got?.[i]; return one && !("failed" in one) ? one : undefined; })),
    );
  }

  async read(key: string, range?: ByteRange): Promise<ObjectStream> {
    const early = range ? undefined : this.ahead.get(key);
    if (early) {
      this.ahead.delete(key);
      const got = await early;
      if (got && "buf" in got) return wholeStream(asBuffer(got.buf));
      // Not read ahead after all (too big, or failed): read it now, for the real answer.
    }
    const p = this.pathOf(key);
    const length = range ? range.end - range.start + 1 : undefined;
    if (length === undefined || length <= SMALL_FILE) {
      // Small files in one worker call: a stream per file costs more than the bytes.
      let got: SmallRead;
      try {
        got = await fsPool().call<SmallRead>("readSmall", p, SMALL_FILE, range?.start, length);
      } catch (err) {
        throw this.readError(key, err);
      }
      if ("buf" in got) return wholeStream(asBuffer(got.buf));
    }
    let handle: fsp.FileHandle;
    try {
      handle = await fsp.open(p, "r");
    } catch (err) {
      throw this.readError(key, err);
    }
    try {
      const size = length ?? (await handle.stat()).size;
      const stream = handle.createReadStream({
        start: range?.start,
        end: range?.end,
        highWaterMark: Math.min(size, 1024 * 1024),
        autoClose: true,
      });
      // Before autoClose closes it: the range is read.
      stream.once("end", () => dropCached(handle.fd, range?.start ?? 0, length ?? 0));
      return stream;
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw toMigrateError(err);
    }
  }

  async readInto(key: string, start: number, target: Buffer): Promise<number> {
    const p = this.pathOf(key);
    try {
      // Shared memory is filled by the worker in place; other memory on this thread.
      if (target.buffer instanceof SharedArrayBuffer) return await fsPool().callAlone<number>("readInto", p, start, target);
      const handle = await fsp.open(p, "r");
      try {
        let got = 0;
        while (got < target.length) {
          const { bytesRead } = await handle.read(target, got, target.length - got, start + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        dropCached(handle.fd, start, got);
        return got;
      } finally {
        await handle.close();
      }
    } catch (err) {
      throw this.readError(key, err);
    }
  }

  private readError(key: string, err: unknown): MigrateError {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return new MigrateError("NotFound", `${key}: no such file`);
    return toMigrateError(err);
  }

  /**
   * Checks before the rename: the bytes received number `source.size`, and match `opts.md5`
   * when given; otherwise nothing appears under the name (temporary Integrity error).
   */
  async write(key: string, body: Readable, source: ObjectInfo, opts?: WriteOptions): Promise<WriteResult> {
    const finalPath = this.pathOf(key);
    const dir = path.dirname(finalPath);
    const tmp = tempNameFor(finalPath);
    if (source.size <= SMALL_FILE) {
      const whole = opts?.whole ?? (await collect(key, body, source.size));
      return this.writeWhole(key, whole, source, tmp, finalPath, opts?.md5);
    }
    try {
      await this.ensureDir(dir);
    } catch (err) {
      body.destroy();
      throw this.placeError(key, err);
    }
    let size = 0;
    const hash = opts?.md5 ? crypto.createHash("md5") : undefined;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        size += chunk.length;
        hash?.update(chunk);
        cb(null, chunk);
      },
    });
    try {
      await pipeline(body, counter, fs.createWriteStream(tmp, { highWaterMark: 1024 * 1024 }));
      const got = hash?.digest("hex");
      if (size !== source.size || (got && got !== opts?.md5)) {
        throw new MigrateError(
          "Integrity",
          size !== source.size ? `${key}: received ${size} bytes, expected ${source.size}` : `${key}: received bytes have md5 ${got}, expected ${opts?.md5}`,
          { temporary: true },
        );
      }
      if (source.mtime !== undefined) {
        const t = new Date(source.mtime);
        await fsp.utimes(tmp, t, t);
      }
      await fsp.rename(tmp, finalPath);
    } catch (err) {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      throw this.placeError(key, err);
    }
    return { size };
  }

  localPath(key: string): string {
    return this.pathOf(key);
  }

  /**
   * One worker call reads (and hashes, if asked) and writes the whole file: no bytes cross to the
   * main thread. A big file's progress is read from shared memory the worker updates.
   */
  async writeFromFile(key: string, file: string, source: ObjectInfo, opts?: { md5?: boolean; onBytes?(n: number): void }): Promise<WriteResult> {
    if (opts?.md5 !== true && source.size < NATIVE_COPY_BELOW && nativeCopyOn()) {
      // By the addon, as a group of one (no progress to report below PROGRESS_MIN).
      const [one] = await this.copyGroup([{ key, file, source }]);
      if (one instanceof MigrateError) throw one;
      return one;
    }
    const finalPath = this.pathOf(key);
    const onBytes = opts?.onBytes;
    const progress = onBytes && source.size >= PROGRESS_MIN ? newCopyProgress() : undefined;
    let reported = 0;
    let settled = false;
    // Never once the file is in place (see reportWhileCopying), nor after this call returns.
    const report = (now: number) =>
      reportWhileCopying(progress!, () => {
        if (settled || now <= reported) return;
        onBytes!(now - reported);
        reported = now;
      });
    const tmp = progress ? tempNameFor(finalPath) : "";
    const ticker =
      onBytes && progress
        ? setInterval(() => {
            const now = loadWritten(progress);
            if (now !== TEMP_SIZE_IS_PROGRESS) report(Number(now));
            else fs.stat(tmp, (err, st) => !err && report(st.size));
          }, PROGRESS_EVERY_MS)
        : undefined;
    let got: CopiedFile;
    try {
      const pool = fsPool();
      const args: CopyArgs = [file, finalPath, source.size, source.mtime, opts?.md5 === true, progress];
      got = await (source.size > SMALL_FILE ? pool.callAlone<CopiedFile>("copyFile", ...args) : pool.call<CopiedFile>("copyFile", ...args));
    } catch (err) {
      throw this.handoffError(key, file, err);
    } finally {
      settled = true;
      clearInterval(ticker);
    }
    const result = this.handoffResult(key, source, got);
    if (result instanceof MigrateError) throw result;
    return result;
  }

  /**
   * writeFromFile for several small files in one worker call; each result is that file's
   * WriteResult or error. Groups into the same folder go to one thread at a time (see callPinned).
   */
  writeFromFiles(items: readonly FileHandoff[]): Promise<(WriteResult | MigrateError)[]> {
    return this.copyGroup(items);
  }

  /** writeFromFiles; writeFromFile's way for a file the addon copies. */
  private async copyGroup(items: readonly FileHandoff[]): Promise<(WriteResult | MigrateError)[]> {
    const entries = items.map((it): CopyArgs => {
      const finalPath = this.pathOf(it.key);
      return [it.file, finalPath, it.source.size, it.source.mtime, it.md5 === true];
    });
    const folder = path.dirname(entries[0][1]);
    // The addon copies files that need no hash, as the worker's copyOne would (native/copy-files.c).
    const native = nativeCopyOn() && items.every((it) => it.md5 !== true && it.source.size < NATIVE_COPY_BELOW);
    const got = native
      ? await nativeCopier!.copy(
          folder,
          entries.map(([src, final, size, mtimeMs]) => ({ src, tmp: tempNameFor(final), final, size, mtimeMs })),
        )
      : await fsPool().callPinned<CopiedOrFailed[]>(folder, "copyFiles", entries);
    return got.map((g, i) => {
      const { key, file, source } = items[i];
      return "error" in g ? this.handoffError(key, file, fromErrorShape(g.error)) : this.handoffResult(key, source, g.ok);
    });
  }

  /** What a failed copy of the local file `file` to `key` means here. */
  private handoffError(key: string, file: string, err: unknown): MigrateError {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" && (err as NodeJS.ErrnoException).path === file) {
      return new MigrateError("NotFound", `${key}: no such file`);
    }
    return this.placeError(key, err);
  }

  /** A copy that found the file at another size is a temporary Integrity error (it changed). */
  private handoffResult(key: string, source: ObjectInfo, got: CopiedFile): WriteResult | MigrateError {
    if (!got.complete) {
      const what = got.size > source.size ? `more than ${source.size}` : String(got.size);
      return new MigrateError("Integrity", `${key}: the source file holds ${what} bytes, expected ${source.size} (it changed during the copy?)`, { temporary: true });
    }
    return { size: got.size, md5: got.md5 };
  }

  /**
   * A small body, held whole, goes to disk in one worker call: MD5 check, temporary file, mtime,
   * rename. A stream per small file costs more than its bytes.
   */
  private async writeWhole(key: string, whole: Buffer, source: ObjectInfo, tmp: string, finalPath: string, md5?: string): Promise<WriteResult> {
    if (whole.length !== source.size) {
      throw new MigrateError("Integrity", `${key}: received ${whole.length} bytes, expected ${source.size}`, { temporary: true });
    }
    let got: string | undefined;
    try {
      got = await fsPool().call<string | undefined>("writeSmall", tmp, finalPath, ownMemory(whole), source.mtime, md5?.toLowerCase());
    } catch (err) {
      throw this.placeError(key, err);
    }
    if (md5 && got !== md5.toLowerCase()) {
      throw new MigrateError("Integrity", `${key}: received bytes have md5 ${got}, expected ${md5}`, { temporary: true });
    }
    return { size: whole.length };
  }

  /** Folders known to exist (bounded), to spare a mkdir call per file. */
  private readonly madeDirs = new Set<string>();

  private async ensureDir(dir: string): Promise<void> {
    if (this.madeDirs.has(dir)) return;
    await fsp.mkdir(dir, { recursive: true });
    if (this.madeDirs.size > 10_000) this.madeDirs.clear();
    this.madeDirs.add(dir);
  }

  /** Errors placing a file: a key whose parent is a file, or a file where a folder is. */
  private placeError(key: string, err: unknown): MigrateError {
    if (err instanceof MigrateError) return err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOTDIR" || code === "EEXIST") {
      return new MigrateError("ConditionNotMatch", `${key}: a parent folder of it is a file at the destination`, { cause: err });
    }
    if (code === "EISDIR") {
      return new MigrateError("ConditionNotMatch", `${key}: a folder of that name exists at the destination`, { cause: err });
    }
    const e = toMigrateError(err);
    return new MigrateError(e.kind, `${key}: ${e.message}`, { temporary: e.temporary, cause: err });
  }

  async delete(key: string): Promise<void> {
    try {
      await fsp.unlink(this.pathOf(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw toMigrateError(err);
    }
  }

  async check(role: "source" | "destination"): Promise<void> {
    // Threads boot while the run sets up, not on the first listing call. Where the addon lists,
    // reads and copies small files they may never be needed (each costs ~70-140 ms of CPU to
    // boot): then they boot once a listing finds a big file, or on first use.
    if (!fsNative.listDir) fsPool().warm();
    const st = await fsp.stat(this.root).catch((err: NodeJS.ErrnoException) => err);
    if (st instanceof Error) {
      if (st.code !== "ENOENT") throw runError(role, this.display, st.message);
      if (role === "source") throw runError(role, this.display, "no such directory", "ConfigInvalid");
      // A destination that does not exist yet is created on first write; its parent must be writable.
      let parent = path.dirname(this.root);
      while (!(await exists(parent))) parent = path.dirname(parent);
      await assertWritable(parent, role, this.display);
      return;
    }
    if (!st.isDirectory()) throw runError(role, this.display, "not a directory", "ConfigInvalid");
    if (role === "destination") await assertWritable(this.root, role, this.display);
  }

  /**
   * Parts are written at their offsets into one temporary file (named by key and upload id, so a
   * restarted process finds it again), which is renamed into place on completion.
   */
  readonly multipart: MultipartSteps = {
    startUpload: async (key, _source, partSize) => {
      const uploadId = `${crypto.randomBytes(8).toString("hex")}.${partSize}`;
      const tmp = this.uploadPath(key, uploadId);
      try {
        await fsp.mkdir(path.dirname(tmp), { recursive: true });
        await (await fsp.open(tmp, "w")).close();
      } catch (err) {
        throw this.placeError(key, err);
      }
      return uploadId;
    },
    uploadPart: async (key, uploadId, partNumber, body, md5) => {
      const partSize = Number(uploadId.split(".")[1]);
      let stored: string;
      try {
        stored = await fsPool().callAlone<string>("writePart", this.uploadPath(key, uploadId), (partNumber - 1) * partSize, body, md5);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new MigrateError("NotFound", `${key}: upload ${uploadId} no longer exists`);
        throw this.placeError(key, err);
      }
      if (stored !== md5) throw new MigrateError("Integrity", `${key}: part ${partNumber} does not match its md5`, { temporary: true });
      return md5;
    },
    completeUpload: async (key, uploadId, parts, source) => {
      const tmp = this.uploadPath(key, uploadId);
      const size = parts.reduce((n, p) => n + p.size, 0);
      try {
        await fsp.truncate(tmp, size);
        if (source.mtime !== undefined) await fsp.utimes(tmp, new Date(source.mtime), new Date(source.mtime));
        await fsp.rename(tmp, this.pathOf(key));
      } catch (err) {
        throw this.placeError(key, err);
      }
      return { size };
    },
    abortUpload: async (key, uploadId) => {
      await fsp.rm(this.uploadPath(key, uploadId), { force: true });
    },
  };

  private uploadPath(key: string, uploadId: string): string {
    return `${hashedTempName(this.pathOf(key))}-${uploadId.replace(/[^0-9a-f.]/g, "")}`;
  }

  async computeMd5(key: string): Promise<string> {
    try {
      return await fsPool().callAlone<string>("md5File", this.pathOf(key));
    } catch (err) {
      throw this.readError(key, err);
    }
  }

  async readWhole(key: string, max: number, opts?: { md5?: boolean }): Promise<{ body: Buffer; md5?: string } | undefined> {
    let got: { buf: Uint8Array; md5?: string } | { big: true };
    try {
      got = await fsPool().callAlone("readWhole", this.pathOf(key), max, opts?.md5 === true);
    } catch (err) {
      throw this.readError(key, err);
    }
    return "buf" in got ? { body: asBuffer(got.buf), md5: got.md5 } : undefined;
  }

  async digestParts(key: string, partSize: number): Promise<{ md5: string; partCrc32c: string[] }> {
    try {
      return await fsPool().callAlone("digestFile", this.pathOf(key), partSize);
    } catch (err) {
      throw this.readError(key, err);
    }
  }
}

/** A small body's bytes; more or fewer than `size` is a temporary Integrity error. */
async function collect(key: string, body: Readable, size: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  try {
    for await (const c of body as AsyncIterable<Buffer>) {
      chunks.push(c);
      got += c.length;
      if (got > size) break;
    }
  } catch (err) {
    throw toMigrateError(err);
  }
  if (got !== size) {
    body.destroy();
    throw new MigrateError("Integrity", `${key}: received ${got}${got > size ? "+" : ""} bytes, expected ${size}`, { temporary: true });
  }
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
}

async function exists(p: string): Promise<boolean> {
  return fsp.stat(p).then(
    () => true,
    () => false,
  );
}

async function assertWritable(dir: string, role: string, display: string): Promise<void> {
  try {
    await fsp.access(dir, fs.constants.W_OK);
  } catch {
    throw runError(role, display, `${dir} is not writable`, "PermissionDenied");
  }
}

function runError(role: string, display: string, why: string, kind: "ConfigInvalid" | "PermissionDenied" = "ConfigInvalid"): MigrateError {
  return new MigrateError(kind, `${role} ${display}: ${why}`, { scope: "run" });
}
