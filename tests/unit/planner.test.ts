import path from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import type { Adapter, Capabilities, ObjectInfo } from "../../adapters/types.js";
import { SqliteCheckpoint } from "../../checkpoints/sqlite.js";
import { compareObjects, makeFilter, mergeJoin, plan } from "../../src/planner.js";
import { compareKeys } from "../../src/keys.js";
import { readAhead } from "../../src/readahead.js";
import { collect } from "../helpers/streams.js";
import { tempDir } from "../helpers/cli.js";

const caps = (over: Partial<Capabilities> = {}): Capabilities => ({
  readRange: true,
  listMd5: false,
  writeReportsMd5: false,
  writeChecksMd5: false,
  crc32c: false,
  preservesMtime: true,
  mtimePrecisionMs: 1,
  maxKeyBytes: 1024,
  metadata: false,
  ...over,
});

async function* listing(keys: string[]): AsyncGenerator<ObjectInfo> {
  for (const key of keys) yield { key, size: key.length };
}

describe("compare rules", () => {
  const side = (info: Partial<ObjectInfo>, c = caps()) => ({ info: { key: "k", size: 1, ...info }, caps: c });

  it("size decides first", () => {
    expect(compareObjects(side({ size: 10 }), side({ size: 12 }), "default")).toEqual({ action: "update", reason: "size 10 → 12" });
    expect(compareObjects(side({ size: 10 }), side({ size: 12 }), "size-only").action).toBe("update");
  });

  it("default: preserved mtimes must match", () => {
    expect(compareObjects(side({ mtime: 1000 }), side({ mtime: 1000 }), "default").action).toBe("skip");
    expect(compareObjects(side({ mtime: 1000 }), side({ mtime: 5000 }), "default")).toEqual({ action: "update", reason: "modified time differs" });
    expect(compareObjects(side({ mtime: 1000 }), side({ mtime: 1001 }), "default").action).toBe("skip"); // within precision
  });

  it("default: where the destination cannot keep mtimes, it must not be older than the source", () => {
    const s3 = caps({ preservesMtime: false, mtimePrecisionMs: 1000 });
    expect(compareObjects(side({ mtime: 1000 }), side({ mtime: 9000 }, s3), "default").action).toBe("skip");
    expect(compareObjects(side({ mtime: 9000 }), side({ mtime: 1000 }, s3), "default")).toEqual({ action: "update", reason: "source modified after destination" });
  });

  it("equal md5s override an mtime difference", () => {
    expect(compareObjects(side({ mtime: 1, md5: "aa" }), side({ mtime: 99999, md5: "aa" }), "default").action).toBe("skip");
  });

  it("checksum mode compares md5, then crc32c, else size", () => {
    expect(compareObjects(side({ md5: "a" }), side({ md5: "b" }), "checksum")).toEqual({ action: "update", reason: "md5 differs" });
    expect(compareObjects(side({ md5: "a", mtime: 1 }), side({ md5: "a", mtime: 9e9 }), "checksum").action).toBe("skip");
    expect(compareObjects(side({ crc32c: "x" }), side({ crc32c: "y" }), "checksum").reason).toBe("crc32c differs");
    expect(compareObjects(side({}), side({}), "checksum").action).toBe("skip");
  });

  it("size-only ignores times and checksums", () => {
    expect(compareObjects(side({ mtime: 1, md5: "a" }), side({ mtime: 9e9, md5: "b" }), "size-only").action).toBe("skip");
  });
});

/** `keys` as a listing in pages of the given sizes (the last size repeats). */
async function* pages(keys: string[], sizes: number[] = [2]): AsyncGenerator<ObjectInfo[]> {
  for (let i = 0, n = 0; i < keys.length; n++) {
    const size = sizes[Math.min(n, sizes.length - 1)];
    yield keys.slice(i, i + size).map((key) => ({ key, size: key.length }));
    i += size;
  }
}

/** The pairs mergeJoin gives, one after another, as [src key, dst key]. */
async function joined(src: AsyncIterable<ObjectInfo[]>, dst: AsyncIterable<ObjectInfo[]>): Promise<[string | null, string | null][]> {
  return (await collect(mergeJoin(src, dst))).flat().map((p) => [p.src?.key ?? null, p.dst?.key ?? null]);
}

describe("merge-join", () => {
  it("pairs equal keys and passes one-sided keys through, in order, across page boundaries", async () => {
    const want = [
      ["a", null],
      ["b", "b"],
      [null, "c"],
      ["d", "d"],
      [null, "e"],
    ];
    for (const [s, d] of [
      [[1], [1]],
      [[2], [3]],
      [[3], [1, 0, 2]], // an empty page in the middle
      [[100], [100]],
    ]) {
      expect(await joined(pages(["a", "b", "d"], s), pages(["b", "c", "d", "e"], d))).toEqual(want);
    }
  });

  it("handles empty sides", async () => {
    expect(await joined(pages([]), pages([]))).toEqual([]);
    expect(await joined(pages(["x"]), pages([]))).toEqual([["x", null]]);
    expect(await joined(pages([]), pages(["y"]))).toEqual([[null, "y"]]);
  });

  it("orders keys by UTF-8 bytes, not UTF-16 units", async () => {
    const keys = ["a/b", "a-c", "a", "\uFFFD", "😀", "Z", "é"];
    const sorted = [...keys].sort(compareKeys);
    expect(sorted).toEqual(["Z", "a", "a-c", "a/b", "é", "\uFFFD", "😀"]);
    expect(sorted).toEqual([...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))));
    const out = await joined(pages(sorted, [3]), pages(sorted, [2]));
    expect(out).toEqual(sorted.map((k) => [k, k]));
  });

  it("refuses an out-of-order listing, within a page or across two, instead of planning wrongly", async () => {
    await expect(joined(pages(["b", "a"], [2]), pages([]))).rejects.toThrow(/source listing is not in key order \("b" before "a"\)/);
    await expect(joined(pages(["b", "a"], [1]), pages([]))).rejects.toThrow(/source listing is not in key order/);
    await expect(joined(pages(["a", "c"]), pages(["a", "b", "b"], [2]))).rejects.toThrow(/destination listing is not in key order \("b" before "b"\)/);
  });

  it("fails at once on an out-of-order listing while the other listing's request is still in flight", async () => {
    async function* stalled(): AsyncGenerator<ObjectInfo[]> {
      yield [{ key: "b", size: 1 }];
      await new Promise(() => undefined); // a page that never comes
    }
    await expect(joined(pages(["b", "a"], [1]), stalled())).rejects.toThrow(/source listing is not in key order/);
  });

  it("stops both listings when its consumer stops early", async () => {
    const closed: string[] = [];
    async function* tracked(side: string): AsyncGenerator<ObjectInfo[]> {
      try {
        for (let i = 0; ; i++) yield [{ key: `k${String(i).padStart(6, "0")}`, size: 1 }];
      } finally {
        closed.push(side);
      }
    }
    for await (const batch of mergeJoin(tracked("src"), tracked("dst"))) {
      expect(batch[0].src?.key).toBe("k000000");
      break;
    }
    expect(closed.sort()).toEqual(["dst", "src"]);
  });

  it("read-ahead keeps order and propagates errors", async () => {
    expect(await collect(readAhead(listing(["1", "2", "3"]), 2))).toHaveLength(3);
    async function* boom() {
      yield 1;
      throw new Error("boom");
    }
    await expect(collect(readAhead(boom(), 4))).rejects.toThrow("boom");
  });
});

describe("filters", () => {
  it("a pattern without / matches names at any depth; with / the whole key", () => {
    const f = makeFilter(["*.jpg", "docs/**"], ["**/tmp/**"]);
    expect(f("a/b/c.jpg")).toBe(true);
    expect(f("c.jpg")).toBe(true);
    expect(f("docs/x.txt")).toBe(true);
    expect(f("other/x.txt")).toBe(false);
    expect(f("a/tmp/c.jpg")).toBe(false);
    expect(makeFilter([], [".*"])(".hidden")).toBe(false);
    expect(makeFilter([], [])("anything")).toBe(true);
  });
});

describe("plan", () => {
  /**
   * 300 keys. Every third is at the destination with the same size: deciding it takes a stat of
   * the source (an S3-like source, a destination that keeps mtimes), answered after a random
   * delay. Every third has another size there; the rest are missing. Rows decided at once and
   * rows that wait must still be written in key order: the resume point is the last row written.
   */
  const keys = Array.from({ length: 300 }, (_, i) => `k${String(i).padStart(3, "0")}`);
  const kind = (i: number) => (["same-size", "other-size", "missing"] as const)[i % 3];
  const side = (over: Partial<Adapter>, c: Capabilities): Adapter => ({ capabilities: c, ...over }) as Adapter;
  const source = side(
    {
      list: () => listing(keys),
      stat: async (key: string) => {
        await new Promise((r) => setTimeout(r, Math.random() * 3));
        return { key, size: key.length, mtime: 5_000 };
      },
    },
    caps({ preservesMtime: false, mtimePrecisionMs: 1000 }),
  );
  const destination = side(
    {
      async *list() {
        for (const [i, key] of keys.entries()) {
          if (kind(i) === "same-size") yield { key, size: key.length, mtime: 5_000 };
          if (kind(i) === "other-size") yield { key, size: 1, mtime: 5_000 };
        }
      },
    },
    caps(),
  );
  const newStore = () => {
    const file = path.join(tempDir("plan-order"), "j.sqlite");
    const store = SqliteCheckpoint.create(file, { id: "t", source: "src", destination: "dst", options: { include: [], exclude: [], compare: "default", delete: false } });
    return { file, store };
  };
  const written = (file: string) => {
    const db = new Database(file, { readonly: true });
    try {
      return db.prepare("SELECT key, action FROM objects ORDER BY id").all() as { key: string; action: string }[];
    } finally {
      db.close();
    }
  };

  it("writes rows decided at once and rows that waited for a stat in key order", async () => {
    const { file, store } = newStore();
    expect(await plan({ source, destination, store, options: store.job.options, batchSize: 40 })).toBe(true);
    store.close();
    const rows = written(file);
    expect(rows.map((r) => r.key)).toEqual(keys);
    expect(rows.map((r) => r.action)).toEqual(keys.map((_, i) => ({ "same-size": "skip", "other-size": "update", missing: "copy" })[kind(i)]));
  });

  it("stopped between batches, keeps a prefix of the keys; planning again adds the rest once", async () => {
    const { file, store } = newStore();
    let asked = 0;
    expect(await plan({ source, destination, store, options: store.job.options, batchSize: 40, shouldStop: () => ++asked > 1 })).toBe(false);
    const first = written(file).map((r) => r.key);
    expect(first.length).toBeGreaterThan(0);
    expect(first.length).toBeLessThan(keys.length);
    expect(first).toEqual(keys.slice(0, first.length));
    expect(await plan({ source, destination, store, options: store.job.options, batchSize: 40 })).toBe(true);
    store.close();
    expect(written(file).map((r) => r.key)).toEqual(keys);
  });
});
