import fs from "node:fs";
import { execFileSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { adapterContract } from "./contract.js";
import { FsAdapter } from "../../adapters/fs.js";
import type { ObjectInfo } from "../../adapters/types.js";
import { parseLocation } from "../../adapters/index.js";
import { describe, expect, it } from "vitest";
import { crc32cBase64 } from "../../src/hashing.js";
import { compareKeys } from "../../src/keys.js";
import { collect, md5, seededBytes } from "../helpers/streams.js";
import { repoRoot, runCli, tempDir, treeDigest } from "../helpers/cli.js";
import { canDropCached } from "../../adapters/fs-cache.js";

adapterContract("fs", async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "cm-fs-contract-"));
  return {
    async open(prefix: string) {
      const dir = path.join(root, ...prefix.split("/").filter(Boolean));
      fs.mkdirSync(dir, { recursive: true });
      return new FsAdapter(parseLocation(dir));
    },
    async missingBucket() {
      return new FsAdapter(parseLocation(path.join(root, "no", "such", "dir")));
    },
    createsMissingRoot: true,
    async stop() {
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
});

describe("fs digestParts", () => {
  it("gives the whole MD5 and each part's CRC32C in one pass, for any part size", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cm-fs-digest-"));
    const fsa = new FsAdapter(parseLocation(dir));
    const data = seededBytes(9 * 1024 * 1024 + 17, 5);
    fs.writeFileSync(path.join(dir, "f"), data);
    fs.writeFileSync(path.join(dir, "empty"), "");
    for (const partSize of [1024 * 1024, 3 * 1024 * 1024, 5 * 1024 * 1024 + 1, 6 * 1024 * 1024, 64 * 1024 * 1024]) {
      const want: string[] = [];
      for (let at = 0; at < data.length; at += partSize) want.push(crc32cBase64(data.subarray(at, at + partSize)));
      expect(await fsa.digestParts("f", partSize)).toEqual({ md5: md5(data), partCrc32c: want });
    }
    // A file of whole parts ends on a boundary: no empty part after the last.
    const whole = data.subarray(0, 8 * 1024 * 1024);
    fs.writeFileSync(path.join(dir, "whole"), whole);
    for (const partSize of [2 * 1024 * 1024, 4 * 1024 * 1024, 8 * 1024 * 1024]) {
      const want: string[] = [];
      for (let at = 0; at < whole.length; at += partSize) want.push(crc32cBase64(whole.subarray(at, at + partSize)));
      expect(await fsa.digestParts("whole", partSize)).toEqual({ md5: md5(whole), partCrc32c: want });
    }
    expect(await fsa.computeMd5!("f")).toBe(md5(data));
    expect(await fsa.digestParts("empty", 1024)).toEqual({ md5: md5(Buffer.alloc(0)), partCrc32c: [crc32cBase64(Buffer.alloc(0))] });
    await expect(fsa.digestParts("missing", 1024)).rejects.toMatchObject({ kind: "NotFound" });
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe("fs keys and paths", () => {
  /** keyProblem as it was before its one-pattern fast path: every segment checked. */
  function reference(key: string, rootBytes: number): string | undefined {
    if (key.includes("\0")) return "a file name cannot contain NUL";
    for (const p of key.split("/")) {
      if (p === "") return "a file name cannot be empty (key has '//' or ends in '/')";
      if (p === "." || p === "..") return `a path segment cannot be '${p}' on a filesystem`;
      if (Buffer.byteLength(p) > 255) return "a file name is longer than 255 bytes";
      if (p.startsWith(".cloudmigrate-tmp-")) return "name reserved for cloudmigrate's temporary files";
    }
    if (Buffer.byteLength(key) + rootBytes + 1 > 4095) return "path is longer than 4095 bytes";
    return undefined;
  }

  it("refuses exactly the keys the segment-by-segment check refuses, and maps the rest below the root", () => {
    const root = tempDir("fs-keys");
    const fsa = new FsAdapter(parseLocation(root));
    const pieces = ["/", "/", ".", "..", "a", "é", "\0", ".cloudmigrate-tmp-", ".cloudmigrate-tm", "x".repeat(200), "🚀".repeat(30)];
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    const keys = ["", "/", "a/", "/a", "a//b", ".", "..", "a/.", "./a", "a/../b", "..a", ".a.", "a/.cloudmigrate-tmp-x", "x".repeat(256), "x".repeat(255)];
    for (let i = 0; i < 20_000; i++) {
      let k = "";
      for (let n = 1 + (next() % 6); n > 0; n--) k += pieces[next() % pieces.length];
      keys.push(k);
    }
    let accepted = 0;
    for (const k of keys) {
      const want = reference(k, Buffer.byteLength(root));
      expect(fsa.keyProblem(k), JSON.stringify(k)).toBe(want);
      if (want === undefined) {
        accepted++;
        expect(fsa.localPath(k)).toBe(path.join(root, ...k.split("/")));
      } else expect(() => fsa.localPath(k)).toThrow(want);
    }
    expect(accepted).toBeGreaterThan(1000);
    expect(accepted).toBeLessThan(keys.length - 1000);
  });
});

describe("fs listing", () => {
  it("walks a tree of many folders (listings read ahead) in key order, every file once", async () => {
    const root = tempDir("walk");
    const keys: string[] = [];
    // Folders at three depths, more per level than are read ahead, with names that sort
    // differently as folders ("a/") than as plain names ("a-b", "a.b", "a0").
    for (const top of ["a", "a-b", "a.b", "a0", "b", "c", "d", "e", "f"]) {
      keys.push(`${top}/top-file`);
      for (let i = 0; i < 6; i++) {
        keys.push(`${top}/s${i}/x`, `${top}/s${i}/y`);
        if (i % 2 === 0) keys.push(`${top}/s${i}/deep/z`);
      }
    }
    keys.push("a-b.txt", "z");
    for (const k of keys) {
      fs.mkdirSync(path.dirname(path.join(root, k)), { recursive: true });
      fs.writeFileSync(path.join(root, k), k);
    }
    const listed: string[] = [];
    for await (const o of new FsAdapter(parseLocation(root)).list()) listed.push(o.key);
    expect(listed).toEqual([...keys].sort(compareKeys));
    const under: string[] = [];
    for await (const o of new FsAdapter(parseLocation(root)).list("a")) under.push(o.key);
    expect(under).toEqual(keys.filter((k) => k.startsWith("a/")).sort(compareKeys));
    // In pages: runs of one folder's files, none empty.
    const pages: ObjectInfo[][] = [];
    for await (const p of new FsAdapter(parseLocation(root)).listPages()) pages.push(p);
    expect(pages.flat().map((o) => o.key)).toEqual([...keys].sort(compareKeys));
    for (const p of pages) {
      expect(p.length).toBeGreaterThan(0);
      expect(new Set(p.map((o) => path.posix.dirname(o.key))).size).toBe(1);
    }
    expect(pages.filter((p) => p.length > 1).length).toBeGreaterThan(0);
  });
});

describe("fs writeFromFile progress", () => {
  it("reports a big file's bytes while it is still being written, never more than were written", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cm-fs-progress-"));
    try {
      const fsa = new FsAdapter(parseLocation(dir));
      // 512 MiB, sparse but for a seeded tail: quick to make, and far longer to copy than the
      // adapter's 25 ms between progress reports on any disk.
      const size = 512 * 1024 * 1024;
      const tail = seededBytes(1024 * 1024, 9);
      const file = path.join(dir, "big-src");
      fs.writeFileSync(file, "");
      fs.truncateSync(file, size - tail.length);
      fs.appendFileSync(file, tail);
      const told: { n: number; finalExists: boolean }[] = [];
      const final = path.join(dir, "out", "big");
      const res = await fsa.writeFromFile("out/big", file, { key: "out/big", size, mtime: 1_600_000_000_000 }, {
        onBytes: (n) => told.push({ n, finalExists: fs.existsSync(final) }),
      });
      expect(res.size).toBe(size);
      expect(told.length).toBeGreaterThan(0);
      expect(told.every((t) => t.n > 0 && !t.finalExists)).toBe(true);
      expect(told.reduce((a, t) => a + t.n, 0)).toBeLessThanOrEqual(size);
      const st = fs.statSync(final);
      expect(st.size).toBe(size);
      expect(st.mtimeMs).toBe(1_600_000_000_000);
      const fd = fs.openSync(final, "r");
      const got = Buffer.alloc(tail.length);
      fs.readSync(fd, got, 0, tail.length, size - tail.length);
      fs.closeSync(fd);
      expect(md5(got)).toBe(md5(tail));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("fs writeFromFile of a big file (copied by the kernel unless hashed)", () => {
  const big = 2 * 1024 * 1024 + 5;
  const withDir = async (fn: (dir: string, fsa: FsAdapter) => Promise<void>) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cm-fs-kcopy-"));
    try {
      await fn(dir, new FsAdapter(parseLocation(path.join(dir, "dst"))));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  const info = (key: string, size: number): ObjectInfo => ({ key, size, mtime: 1_500_000_000_000 });
  const leftovers = (dir: string) => (fs.readdirSync(dir, { recursive: true }) as string[]).filter((n) => n.includes(".cloudmigrate-tmp-"));

  it("stores bytes, mtime and the mode a small file gets, into a new folder, over a stale temporary file", async () => {
    await withDir(async (dir, fsa) => {
      const data = seededBytes(big, 21);
      const small = seededBytes(4096, 22);
      fs.writeFileSync(path.join(dir, "big-src"), data, { mode: 0o600 });
      fs.writeFileSync(path.join(dir, "small-src"), small, { mode: 0o600 });
      // A temporary file left by a killed run, longer than the new copy: replaced, not appended to.
      fs.mkdirSync(path.join(dir, "dst", "a"), { recursive: true });
      fs.writeFileSync(path.join(dir, "dst", "a", ".cloudmigrate-tmp-_big"), Buffer.alloc(big + 4096, 7));
      const res = await fsa.writeFromFile("a/big", path.join(dir, "big-src"), info("a/big", big));
      await fsa.writeFromFile("b/c/small", path.join(dir, "small-src"), info("b/c/small", small.length));
      const deep = await fsa.writeFromFile("d/e/big", path.join(dir, "big-src"), info("d/e/big", big));
      expect(res.size).toBe(big);
      expect(deep.size).toBe(big);
      for (const f of ["a/big", "d/e/big"]) {
        const st = fs.statSync(path.join(dir, "dst", f));
        expect(md5(fs.readFileSync(path.join(dir, "dst", f)))).toBe(md5(data));
        expect(st.mtimeMs).toBe(1_500_000_000_000);
        expect(st.mode & 0o777).toBe(fs.statSync(path.join(dir, "dst", "b/c/small")).mode & 0o777);
        expect(st.mode & 0o777).toBe(0o666 & ~process.umask());
      }
      expect(leftovers(dir)).toEqual([]);
    });
  });

  it("hashes as it copies when asked for the MD5", async () => {
    await withDir(async (dir, fsa) => {
      const data = seededBytes(big, 23);
      fs.writeFileSync(path.join(dir, "src"), data);
      const res = await fsa.writeFromFile("f", path.join(dir, "src"), info("f", big), { md5: true });
      expect(res).toEqual({ size: big, md5: md5(data) });
    });
  });

  it("leaves nothing when the file no longer holds the listed bytes, and makes no folder for a missing one", async () => {
    await withDir(async (dir, fsa) => {
      fs.writeFileSync(path.join(dir, "src"), seededBytes(big, 24));
      await expect(fsa.writeFromFile("x/f", path.join(dir, "src"), info("x/f", big - 1))).rejects.toMatchObject({
        kind: "Integrity",
        message: expect.stringMatching(/holds more than/),
      });
      await expect(fsa.writeFromFile("y/f", path.join(dir, "gone"), info("y/f", big))).rejects.toMatchObject({ kind: "NotFound" });
      expect(fs.existsSync(path.join(dir, "dst", "x", "f"))).toBe(false);
      expect(fs.existsSync(path.join(dir, "dst", "y"))).toBe(false);
      expect(leftovers(dir)).toEqual([]);
    });
  });
});

describe("fs reads and the page cache", () => {
  /** Bytes of `file` in the page cache (util-linux fincore). */
  const cached = (file: string): number =>
    Number(execFileSync("fincore", ["--bytes", "--noheadings", "--output", "RES", file], { encoding: "utf8" }).trim());

  /** A folder on a disk filesystem: tmpfs pages cannot be dropped, so os.tmpdir() will not do if it is one. */
  function diskDir(): string {
    const onTmpfs = execFileSync("stat", ["-f", "-c", "%T", os.tmpdir()], { encoding: "utf8" }).trim() === "tmpfs";
    const base = onTmpfs ? path.join(repoRoot, "node_modules", ".cache") : os.tmpdir();
    fs.mkdirSync(base, { recursive: true });
    return fs.mkdtempSync(path.join(base, "cm-fs-cache-"));
  }

  /** Write `files` (name → size) to disk and read them back, so all their (clean) pages are cached. */
  function cachedFiles(dir: string, files: Record<string, number>): void {
    for (const [name, size] of Object.entries(files)) {
      const file = path.join(dir, name);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, seededBytes(size, size % 251));
      const fd = fs.openSync(file, "r");
      fs.fsyncSync(fd); // dirty pages are never dropped
      fs.closeSync(fd);
      fs.readFileSync(file);
      expect(cached(file)).toBe(Math.ceil(size / 4096) * 4096);
    }
  }

  it.runIf(process.platform === "linux")("drops a local source's pages once a copy has read them", async () => {
    expect(canDropCached).toBe(true); // the native binding was built at install
    const dir = diskDir();
    try {
      const src = path.join(dir, "src");
      const files = { "a/small.bin": 10_000, "b/kernel-copied.bin": 3 * 1024 * 1024 + 5 };
      cachedFiles(src, files);
      const state = path.join(dir, "state");
      const r = await runCli([src, path.join(dir, "dst"), "--json"], { env: { MIGRATE_STATE_DIR: state } });
      expect(r.code).toBe(0);
      for (const name of Object.keys(files)) expect(cached(path.join(src, name)), name).toBe(0);
      expect(treeDigest(path.join(dir, "dst"))).toEqual(treeDigest(src)); // (reads the source back in)

      // The reads other destinations use: whole, into part memory, and streamed.
      // Parts of 2 MiB: the kernel drops only whole folios (up to 2 MiB each) inside the range.
      const MiB2 = 2 * 1024 * 1024;
      const reads = { "whole.bin": 70_000, "parts.bin": 2 * MiB2, "streamed.bin": 1024 * 1024 + 3 };
      cachedFiles(src, reads);
      const fsa = new FsAdapter(parseLocation(src));
      expect((await fsa.readWhole("whole.bin", 1024 * 1024))?.body.length).toBe(70_000);
      expect(await fsa.readInto("parts.bin", 0, Buffer.from(new SharedArrayBuffer(MiB2)))).toBe(MiB2); // on a file thread
      expect(cached(path.join(src, "parts.bin"))).toBe(MiB2); // only the range read
      expect(await fsa.readInto("parts.bin", MiB2, Buffer.alloc(MiB2))).toBe(MiB2); // on this thread
      expect(md5(Buffer.concat((await collect(await fsa.read("streamed.bin"))) as Buffer[]))).toBe(md5(seededBytes(reads["streamed.bin"], reads["streamed.bin"] % 251)));
      for (const name of Object.keys(reads)) expect(cached(path.join(src, name)), name).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
