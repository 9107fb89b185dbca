/**
 * Small local files go to a local destination in groups (Adapter.writeFromFiles): one call and
 * one concurrency slot for up to 128 files of one folder. Only files stored whole are recorded
 * done from a group; any other goes again the usual way and fails (or succeeds) there, alone.
 */
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { FsAdapter } from "../../adapters/fs.js";
import { parseLocation } from "../../adapters/index.js";
import type { Adapter, FileHandoff } from "../../adapters/types.js";
import type { SqliteCheckpoint } from "../../checkpoints/sqlite.js";
import { Copier } from "../../src/copier.js";
import { plan } from "../../src/planner.js";
import { tempDir } from "../helpers/cli.js";
import { scratchStore } from "../helpers/copy.js";

const RETRY = { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 };
const MULTIPART = { threshold: Number.MAX_SAFE_INTEGER, partConcurrency: 2, maxMemory: 64 * 1024 * 1024 };
const COUNT = 40;
const name = (i: number) => `f${String(i).padStart(2, "0")}`;

/**
 * The fs adapter, recording the size of each writeFromFiles call and each delete; it can fail
 * every group call, or report one key as stored one byte longer than it is.
 */
function destination(dir: string, opts: { failGroups?: boolean; misreport?: string } = {}): Adapter & { groups: number[]; groupKeys: string[][]; deleted: string[] } {
  const inner = new FsAdapter(parseLocation(dir));
  const groups: number[] = [];
  const groupKeys: string[][] = [];
  const deleted: string[] = [];
  return Object.assign(Object.create(inner) as Adapter, {
    groups,
    groupKeys,
    deleted,
    async writeFromFiles(items: readonly FileHandoff[]) {
      groups.push(items.length);
      groupKeys.push(items.map((it) => it.key));
      if (opts.failGroups) throw new Error("the group call failed");
      const got = await inner.writeFromFiles(items);
      return got.map((r, i) => (items[i].key === opts.misreport && !(r instanceof Error) ? { ...r, size: r.size + 1 } : r));
    },
    async delete(key: string) {
      deleted.push(key);
      return inner.delete(key);
    },
  });
}

async function setUp(opts: { failGroups?: boolean; misreport?: string; names?: string[] } = {}) {
  const srcDir = tempDir("group-src");
  const dstDir = tempDir("group-dst");
  const names = opts.names ?? Array.from({ length: COUNT }, (_, i) => name(i));
  for (const [i, n] of names.entries()) {
    const file = path.join(srcDir, n);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, `object ${i} `.repeat(i + 1));
    fs.utimesSync(file, 1_700_000_000 + i, 1_700_000_000 + i);
  }
  const source = new FsAdapter(parseLocation(srcDir));
  const dst = destination(dstDir, opts);
  const store = scratchStore(tempDir("group-ckpt"), srcDir, dstDir);
  expect(await plan({ source, destination: dst, store, options: store.job.options })).toBe(true);
  const copier = new Copier(source, dst, store, { concurrency: 4, retry: RETRY, multipart: MULTIPART });
  return { srcDir, dstDir, dst, store, copier };
}

const rowsByKey = (store: SqliteCheckpoint) => new Map([...store.rows()].map((r) => [r.key, r]));

describe("small local files handed over in groups", () => {
  it("copies them in groups; a file gone or grown since the plan fails alone, the rest are done", async () => {
    const { srcDir, dstDir, dst, store, copier } = await setUp();
    fs.rmSync(path.join(srcDir, name(5)));
    fs.appendFileSync(path.join(srcDir, name(17)), "grown");

    const result = await copier.run();

    expect(dst.groups.some((n) => n > 1)).toBe(true);
    expect(result.copied).toBe(COUNT - 2);
    expect(result.failed).toBe(2);
    const rows = rowsByKey(store);
    for (let i = 0; i < COUNT; i++) {
      if (i === 5 || i === 17) continue;
      const [from, to] = [path.join(srcDir, name(i)), path.join(dstDir, name(i))];
      expect(fs.readFileSync(to).equals(fs.readFileSync(from))).toBe(true);
      expect(fs.statSync(to).mtimeMs).toBe(fs.statSync(from).mtimeMs);
      expect(rows.get(name(i))?.state).toBe("done");
    }
    expect(rows.get(name(5))).toMatchObject({ state: "failed", error: expect.stringMatching(/no such file/) });
    expect(rows.get(name(17))).toMatchObject({ state: "failed", error: expect.stringMatching(/holds more than \d+ bytes/) });
    // Neither the missing nor the grown file, nor a temporary file, is left at the destination.
    expect(fs.readdirSync(dstDir).sort()).toEqual(Array.from({ length: COUNT }, (_, i) => name(i)).filter((n) => n !== name(5) && n !== name(17)));
    store.close();
  });

  it("a group holds files of one folder only: writes into a folder are not spread over threads", async () => {
    // Top-level files and three folders, few enough files that one group could hold them all.
    const names = ["top1", "top2", ...["a", "b", "b/c"].flatMap((d) => Array.from({ length: 6 }, (_, i) => `${d}/${name(i)}`))];
    const { srcDir, dstDir, dst, store, copier } = await setUp({ names });
    const result = await copier.run();
    expect(result.copied).toBe(names.length);
    const folder = (k: string) => k.slice(0, k.lastIndexOf("/") + 1);
    for (const keys of dst.groupKeys) expect(new Set(keys.map(folder)).size).toBe(1);
    // Each folder's files went together: one group per folder.
    expect(dst.groupKeys.map((keys) => folder(keys[0])).sort()).toEqual(["", "a/", "b/", "b/c/"]);
    for (const n of names) expect(fs.readFileSync(path.join(dstDir, n)).equals(fs.readFileSync(path.join(srcDir, n)))).toBe(true);
    expect([...store.rows()].every((r) => r.state === "done")).toBe(true);
    store.close();
  });

  it("when a group call fails as a whole, each of its files is copied the usual way", async () => {
    const { srcDir, dstDir, dst, store, copier } = await setUp({ failGroups: true });
    const result = await copier.run();
    expect(dst.groups.length).toBeGreaterThan(0);
    expect(result.copied).toBe(COUNT);
    expect(result.failed).toBe(0);
    for (let i = 0; i < COUNT; i++) expect(fs.readFileSync(path.join(dstDir, name(i))).equals(fs.readFileSync(path.join(srcDir, name(i))))).toBe(true);
    expect([...store.rows()].every((r) => r.state === "done")).toBe(true);
    store.close();
  });

  it("a file a group reports stored at another size is removed and copied again alone", async () => {
    const { srcDir, dstDir, dst, store, copier } = await setUp({ misreport: name(9) });
    const result = await copier.run();
    expect(dst.groups.some((n) => n > 1)).toBe(true);
    expect(dst.deleted).toEqual([name(9)]);
    expect(result.copied).toBe(COUNT);
    expect(result.failed).toBe(0);
    for (let i = 0; i < COUNT; i++) expect(fs.readFileSync(path.join(dstDir, name(i))).equals(fs.readFileSync(path.join(srcDir, name(i))))).toBe(true);
    expect(rowsByKey(store).get(name(9))?.state).toBe("done");
    store.close();
  });
});
