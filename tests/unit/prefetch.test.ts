/**
 * Local files read off the main thread: small ones ahead in groups (the copier hints the source,
 * the filesystem adapter reads the group in one worker call, and read() serves from it), and
 * ones of a few MiB whole, hashed on the worker. Real files, real worker threads.
 */
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { FsAdapter } from "../../adapters/fs.js";
import { parseLocation } from "../../adapters/index.js";
import type { Adapter, ObjectStream } from "../../adapters/types.js";
import { Copier } from "../../src/copier.js";
import { plan } from "../../src/planner.js";
import { tempDir } from "../helpers/cli.js";
import { scratchStore } from "../helpers/copy.js";
import { md5, seededBytes } from "../helpers/streams.js";

const RETRY = { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 };
const MULTIPART = { threshold: Number.MAX_SAFE_INTEGER, partConcurrency: 2, maxMemory: 64 * 1024 * 1024 };

/**
 * A job from `source` to the folder `dstDir`, planned. The destination lacks writeFromFile, so it
 * takes bytes through write(), as a cloud one does.
 */
async function plannedJob(source: Adapter, srcDir: string, dstDir: string) {
  const dstInner = new FsAdapter(parseLocation(dstDir));
  const destination: Adapter = Object.assign(Object.create(dstInner) as Adapter, { writeFromFile: undefined });
  const store = scratchStore(tempDir("prefetch-ckpt"), srcDir, dstDir);
  await plan({ source, destination, store, options: store.job.options });
  return { destination, store };
}

async function bytesOf(s: ObjectStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

describe("filesystem read-ahead", () => {
  it("serves read() from the group read ahead, and reads anything else as before", async () => {
    const dir = tempDir("prefetch");
    const small = [seededBytes(4096, 1), seededBytes(10, 2)];
    const big = seededBytes(300 * 1024, 3); // over the whole-read size: not held ahead
    fs.writeFileSync(path.join(dir, "a"), small[0]);
    fs.writeFileSync(path.join(dir, "b"), small[1]);
    fs.writeFileSync(path.join(dir, "big"), big);
    const fsa = new FsAdapter(parseLocation(dir));
    fsa.prefetch(["a", "b", "big", "missing"]);

    expect((await bytesOf(await fsa.read("b"))).equals(small[1])).toBe(true);
    // The group was read in one go: "a" is served from what was read ahead even once it is gone.
    fs.rmSync(path.join(dir, "a"));
    expect((await bytesOf(await fsa.read("a"))).equals(small[0])).toBe(true);
    // Taken once: the next read goes to the disk.
    await expect(fsa.read("a")).rejects.toMatchObject({ kind: "NotFound" });
    expect((await bytesOf(await fsa.read("big"))).equals(big)).toBe(true);
    await expect(fsa.read("missing")).rejects.toMatchObject({ kind: "NotFound" });
  });
});

describe("the copier reads small objects ahead", () => {
  it("hints groups of small keys only, and every object arrives whole", async () => {
    const srcDir = tempDir("prefetch-src");
    const dstDir = tempDir("prefetch-dst");
    const files = new Map<string, Buffer>();
    for (let i = 0; i < 100; i++) files.set(`s${String(i).padStart(3, "0")}`, seededBytes(1000 + i, i));
    files.set("t-large", seededBytes(200 * 1024, 7)); // bigger than what is read ahead
    for (const [k, v] of files) fs.writeFileSync(path.join(srcDir, k), v);

    const inner = new FsAdapter(parseLocation(srcDir));
    const hints: string[][] = [];
    const source: Adapter = Object.assign(Object.create(inner) as Adapter, {
      prefetch(keys: readonly string[]) {
        hints.push([...keys]);
        inner.prefetch(keys);
      },
    });
    const { destination, store } = await plannedJob(source, srcDir, dstDir);
    const result = await new Copier(source, destination, store, { concurrency: 8, retry: RETRY, multipart: MULTIPART }).run();

    expect(result.copied).toBe(101);
    for (const [k, v] of files) expect(fs.readFileSync(path.join(dstDir, k)).equals(v)).toBe(true);
    const hinted = hints.flat();
    expect(hinted.sort()).toEqual([...files.keys()].filter((k) => k !== "t-large").sort());
    expect(Math.max(...hints.map((h) => h.length))).toBeLessThanOrEqual(32);
    store.close();
  });
});

describe("files of a few MiB are read and hashed whole on a worker", () => {
  it("readWhole gives the bytes (and their MD5 when asked), or undefined past the bound", async () => {
    const dir = tempDir("readwhole");
    const data = seededBytes(3 * 1024 * 1024 + 1, 9);
    fs.writeFileSync(path.join(dir, "mid"), data);
    const fsa = new FsAdapter(parseLocation(dir));
    const got = await fsa.readWhole("mid", 4 * 1024 * 1024, { md5: true });
    expect(got?.body.equals(data)).toBe(true);
    expect(got?.md5).toBe(md5(data));
    const bare = await fsa.readWhole("mid", 4 * 1024 * 1024);
    expect(bare?.body.equals(data)).toBe(true);
    expect(bare?.md5).toBeUndefined(); // hashed only when asked
    expect(await fsa.readWhole("mid", 1024 * 1024)).toBeUndefined();
    await expect(fsa.readWhole("missing", 1024)).rejects.toMatchObject({ kind: "NotFound" });
  });

  it("the copier takes them whole, and streams one that grew past the bound since it was listed", async () => {
    const srcDir = tempDir("readwhole-src");
    const dstDir = tempDir("readwhole-dst");
    const files = new Map<string, Buffer>([
      ["a-small", seededBytes(1000, 1)],
      ["b-mid", seededBytes(2 * 1024 * 1024 + 5, 2)],
      ["c-grows", seededBytes(1024 * 1024, 3)],
    ]);
    for (const [k, v] of files) fs.writeFileSync(path.join(srcDir, k), v);
    const inner = new FsAdapter(parseLocation(srcDir));
    const whole: string[] = [];
    const source: Adapter = Object.assign(Object.create(inner) as Adapter, {
      async readWhole(key: string, max: number, opts?: { md5?: boolean }) {
        const got = await inner.readWhole(key, max, opts);
        if (got) whole.push(key);
        return got;
      },
    });
    const { destination, store } = await plannedJob(source, srcDir, dstDir);
    // Planned at 1 MiB; it is past the whole-read bound (16 MiB) by the time it is copied.
    const grown = seededBytes(17 * 1024 * 1024, 4);
    fs.writeFileSync(path.join(srcDir, "c-grows"), grown);
    const result = await new Copier(source, destination, store, { concurrency: 2, retry: RETRY, multipart: MULTIPART }).run();

    expect(whole).toEqual(["b-mid"]);
    expect(result.copied).toBe(2);
    expect(result.failed).toBe(1); // the grown file is refused: its size is not the one planned
    for (const k of ["a-small", "b-mid"]) expect(fs.readFileSync(path.join(dstDir, k)).equals(files.get(k)!)).toBe(true);
    expect(fs.existsSync(path.join(dstDir, "c-grows"))).toBe(false);
    store.close();
  });
});
