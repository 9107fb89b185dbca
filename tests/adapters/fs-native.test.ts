/**
 * The fsnative addon (native/*.c): small files copied, read and folders listed without
 * JavaScript per file. Each outcome is checked against the worker-thread path it replaces
 * (CLOUDMIGRATE_NATIVE_COPY=0 for copies, the worker's listDir and readMany for listings and
 * reads), so the two cannot drift apart.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { FsAdapter, TEMP_PREFIX } from "../../adapters/fs.js";
import { fsNative } from "../../src/native.js";
import { parseLocation } from "../../adapters/index.js";
import type { FileHandoff, WriteResult } from "../../adapters/types.js";
import { WorkerPool, workerScript } from "../../src/worker-pool.js";
import type { DirEntry } from "../../adapters/fs-worker.js";
import { MigrateError } from "../../src/errors.js";
import { tempDir } from "../helpers/cli.js";

const linux = process.platform === "linux";
const MTIME = 1_650_000_000_123;

/** Source files of `sizes` bytes (seeded by name) in a fresh folder. */
function sources(sizes: Record<string, number>): string {
  const dir = tempDir("native-src");
  for (const [name, size] of Object.entries(sizes)) {
    fs.writeFileSync(path.join(dir, name), Buffer.alloc(size, name.charCodeAt(0)));
    fs.utimesSync(path.join(dir, name), MTIME / 1000, MTIME / 1000);
  }
  return dir;
}

/** What writeFromFiles gave, in a form both paths must agree on. */
const outcome = (r: WriteResult | MigrateError) => (r instanceof MigrateError ? { kind: r.kind, message: r.message.replace(/\s*\(.*$/, "") } : { size: r.size });

/**
 * Every file under `dir`, temporary ones included: relative path → "MD5 of its bytes, length,
 * mtime" (the mtime only where a copy set one from the source, else "now").
 */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else {
        const bytes = fs.readFileSync(p);
        const mtime = fs.statSync(p).mtimeMs;
        out[path.relative(dir, p)] = `${md5(bytes)} ${bytes.length} @${mtime < 1_700_000_000_000 ? Math.round(mtime) : "now"}`;
      }
    }
  };
  walk(dir);
  return out;
}

const md5 = (b: Buffer | string) => crypto.createHash("md5").update(b).digest("hex");

describe.runIf(linux)("fsnative addon", () => {
  afterEach(() => {
    delete process.env.CLOUDMIGRATE_NATIVE_COPY;
    vi.restoreAllMocks();
  });

  it("was built at install and has its functions", () => {
    expect(typeof fsNative.dropCached).toBe("function");
    expect(typeof fsNative.copySmallFiles).toBe("function");
    expect(typeof fsNative.listDir).toBe("function");
    expect(typeof fsNative.readSmallFiles).toBe("function");
  });

  it("readSmallFiles reads what the file thread's readMany reads", async () => {
    const dir = sources({ small: 5000, empty: 0, big: 20_000 });
    fs.mkdirSync(path.join(dir, "folder"));
    const paths = ["small", "empty", "big", "missing", "folder"].map((n) => path.join(dir, n));
    const native = await fsNative.readSmallFiles!(paths, 10_000);
    // A folder opens, but reading it fails (EISDIR).
    expect(native).toEqual([Buffer.alloc(5000, "s"), Buffer.alloc(0), true, null, null]);
    const pool = new WorkerPool(workerScript(new URL("../../adapters/fs.ts", import.meta.url).href, "fs-worker"), 1);
    try {
      const thread = await pool.call<({ buf: Uint8Array } | { big: true } | { failed: true })[]>("readMany", paths, 10_000);
      expect(native.map((g) => (g === true ? { big: true } : g === null ? { failed: true } : { buf: new Uint8Array(g) }))).toEqual(thread);
    } finally {
      await pool.close();
    }
  });

  it("writeFromFiles gives the same files, results and errors through the addon as through a file thread", async () => {
    const src = sources({ a: 0, b: 4096, c: 70_000, d: 1000, e: 10 });
    const items: FileHandoff[] = [
      { key: "new/deep/a", file: path.join(src, "a"), source: { key: "new/deep/a", size: 0, mtime: MTIME } },
      { key: "new/deep/b", file: path.join(src, "b"), source: { key: "new/deep/b", size: 4096, mtime: MTIME } },
      { key: "new/deep/c", file: path.join(src, "c"), source: { key: "new/deep/c", size: 70_000 } },
      // The source changed since it was listed: shorter, then longer than expected.
      { key: "new/deep/short", file: path.join(src, "d"), source: { key: "new/deep/short", size: 1001, mtime: MTIME } },
      { key: "new/deep/long", file: path.join(src, "d"), source: { key: "new/deep/long", size: 999, mtime: MTIME } },
      { key: "new/deep/gone", file: path.join(src, "missing"), source: { key: "new/deep/gone", size: 5, mtime: MTIME } },
      // A folder where the file goes, and a file where a folder goes.
      { key: "taken", file: path.join(src, "e"), source: { key: "taken", size: 10, mtime: MTIME } },
      { key: "file/x", file: path.join(src, "e"), source: { key: "file/x", size: 10, mtime: MTIME } },
      // An old temporary file is truncated, not appended to.
      { key: "stale", file: path.join(src, "e"), source: { key: "stale", size: 10, mtime: MTIME } },
    ];
    const run = async (native: boolean) => {
      const dst = tempDir(native ? "native-dst" : "thread-dst");
      fs.mkdirSync(path.join(dst, "taken"));
      fs.writeFileSync(path.join(dst, "file"), "a file");
      fs.writeFileSync(path.join(dst, `${TEMP_PREFIX}_stale`), Buffer.alloc(50, 1));
      process.env.CLOUDMIGRATE_NATIVE_COPY = native ? "1" : "0";
      const calls = vi.spyOn(fsNative, "copySmallFiles");
      const fsa = new FsAdapter(parseLocation(dst));
      // One group a folder, as the copier sends them.
      const groups = [items.slice(0, 6), items.slice(6, 7), items.slice(7, 8), items.slice(8)];
      const results = [];
      for (const g of groups) results.push(...(await fsa.writeFromFiles(g)));
      expect(calls).toHaveBeenCalledTimes(native ? groups.length : 0);
      vi.restoreAllMocks();
      return { results: results.map(outcome), files: tree(dst) };
    };
    const native = await run(true);
    const thread = await run(false);
    expect(native).toEqual(thread);
    expect(native.results).toEqual([
      { size: 0 },
      { size: 4096 },
      { size: 70_000 },
      { kind: "Integrity", message: "new/deep/short: the source file holds 1000 bytes, expected 1001" },
      { kind: "Integrity", message: "new/deep/long: the source file holds more than 999 bytes, expected 999" },
      { kind: "NotFound", message: "new/deep/gone: no such file" },
      { kind: "ConditionNotMatch", message: "taken: a folder of that name exists at the destination" },
      { kind: "ConditionNotMatch", message: "file/x: a parent folder of it is a file at the destination" },
      { size: 10 },
    ]);
    // Bytes and mtimes (none set for c, which had none); no temporary file left, the stale one gone.
    expect(native.files).toEqual({
      file: `${md5("a file")} 6 @now`,
      "new/deep/a": `${md5("")} 0 @${MTIME}`,
      "new/deep/b": `${md5(Buffer.alloc(4096, "b"))} 4096 @${MTIME}`,
      "new/deep/c": `${md5(Buffer.alloc(70_000, "c"))} 70000 @now`,
      stale: `${md5(Buffer.alloc(10, "e"))} 10 @${MTIME}`,
    });
  });

  it("writeFromFile of a file below 1 MiB needing no hash goes through the addon; others through a file thread", async () => {
    const src = sources({ small: 70_000, big: 1024 * 1024 });
    const dst = tempDir("native-one");
    const fsa = new FsAdapter(parseLocation(dst));
    const calls = vi.spyOn(fsNative, "copySmallFiles");
    const info = (key: string, size: number) => ({ key, size, mtime: MTIME });
    expect(await fsa.writeFromFile("a/small", path.join(src, "small"), info("a/small", 70_000))).toEqual({ size: 70_000 });
    expect(calls).toHaveBeenCalledTimes(1);
    await expect(fsa.writeFromFile("a/gone", path.join(src, "gone"), info("a/gone", 5))).rejects.toMatchObject({ kind: "NotFound" });
    expect(calls).toHaveBeenCalledTimes(2);
    expect(await fsa.writeFromFile("b/hashed", path.join(src, "small"), info("b/hashed", 70_000), { md5: true })).toMatchObject({ size: 70_000, md5: md5(Buffer.alloc(70_000, "s")) });
    expect(await fsa.writeFromFile("b/big", path.join(src, "big"), info("b/big", 1024 * 1024))).toEqual({ size: 1024 * 1024 });
    expect(calls).toHaveBeenCalledTimes(2);
    expect(tree(dst)).toEqual({
      "a/small": `${md5(Buffer.alloc(70_000, "s"))} 70000 @${MTIME}`,
      "b/hashed": `${md5(Buffer.alloc(70_000, "s"))} 70000 @${MTIME}`,
      "b/big": `${md5(Buffer.alloc(1024 * 1024, "b"))} 1048576 @${MTIME}`,
    });
  });

  it("copySmallFiles sets the mtime Node's futimes sets and gives errors shaped as Node's", async () => {
    const src = sources({ f: 3 });
    const dst = tempDir("native-raw");
    const got = await fsNative.copySmallFiles!(
      [path.join(src, "f"), path.join(src, "nope")],
      [path.join(dst, "t1"), path.join(dst, "t2")],
      [path.join(dst, "f"), path.join(dst, "g")],
      [3, 3],
      [1_234_567_890_987.5, NaN],
    );
    expect(got[0]).toBe(3);
    // The mtime Node's own futimes sets for the same number, to the µs.
    const byNode = path.join(src, "by-node");
    fs.writeFileSync(byNode, "");
    fs.utimesSync(byNode, 1_234_567_890_987.5 / 1000, 1_234_567_890_987.5 / 1000);
    expect(fs.statSync(path.join(dst, "f")).mtimeMs).toBe(fs.statSync(byNode).mtimeMs);
    expect(Math.floor(fs.statSync(path.join(dst, "f")).mtimeMs)).toBe(1_234_567_890_987);
    expect(got[1]).toBeInstanceOf(Error);
    expect(got[1]).toMatchObject({ code: "ENOENT", syscall: "open", path: path.join(src, "nope"), message: `ENOENT: no such file or directory, open '${path.join(src, "nope")}'` });
    expect(fs.readdirSync(dst)).toEqual(["f"]);
    expect(() => fsNative.copySmallFiles!(["a"], [], [], [], [])).toThrow(/arrays of one length/);
    expect(() => fsNative.copySmallFiles!(["a"], ["b"], ["c"], [-1], [0])).toThrow(/sizes/);
  });

  it("listDir lists what the file thread lists: files, links to files, folders; not links to folders or nowhere, fifos or our temporary files", async () => {
    const dir = tempDir("native-list");
    fs.writeFileSync(path.join(dir, "file"), "12345");
    fs.utimesSync(path.join(dir, "file"), 1_600_000_000.25, 1_600_000_000.25);
    fs.mkdirSync(path.join(dir, "sub"));
    fs.symlinkSync(path.join(dir, "file"), path.join(dir, "link-to-file"));
    fs.symlinkSync(path.join(dir, "sub"), path.join(dir, "link-to-dir"));
    fs.symlinkSync(path.join(dir, "missing"), path.join(dir, "dangling"));
    fs.symlinkSync(path.join(dir, "loop-b"), path.join(dir, "loop-a"));
    fs.symlinkSync(path.join(dir, "loop-a"), path.join(dir, "loop-b"));
    fs.writeFileSync(path.join(dir, `${TEMP_PREFIX}_x`), "tmp");
    fs.writeFileSync(path.join(dir, "ünïcödé name"), "");
    const { execFileSync } = await import("node:child_process");
    execFileSync("mkfifo", [path.join(dir, "fifo")]);
    const [names, meta] = await fsNative.listDir!(dir, TEMP_PREFIX);
    const native = names.map((name, i): DirEntry => ({ name, dir: meta[3 * i] === 1, size: meta[3 * i + 1], mtimeMs: meta[3 * i + 2] }));
    const pool = new WorkerPool(workerScript(new URL("../../adapters/fs.ts", import.meta.url).href, "fs-worker"), 1);
    try {
      const thread = await pool.call<DirEntry[]>("listDir", dir, TEMP_PREFIX);
      const byName = (a: DirEntry, b: DirEntry) => (a.name < b.name ? -1 : 1);
      expect(native.sort(byName)).toEqual(thread.sort(byName));
      expect(native.map((e) => e.name)).toEqual(["file", "link-to-file", "sub", "ünïcödé name"]);
      expect(native[0]).toEqual({ name: "file", dir: false, size: 5, mtimeMs: 1_600_000_000_250 });
      // A missing folder, or a file, has no entries.
      expect(await fsNative.listDir!(path.join(dir, "missing"), "")).toEqual([[], new Float64Array(0)]);
      expect(await fsNative.listDir!(path.join(dir, "file"), "")).toEqual([[], new Float64Array(0)]);
      expect(await pool.call("listDir", path.join(dir, "file"), "")).toEqual([]);
    } finally {
      await pool.close();
    }
  });
});
