import { describe, expect, it } from "vitest";
import type { Capabilities, ObjectInfo } from "../../adapters/types.js";
import { compareObjects, makeFilter, mergeJoin } from "../../src/planner.js";
import { compareKeys } from "../../src/keys.js";
import { readAhead } from "../../src/readahead.js";
import { collect } from "../helpers/streams.js";

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

describe("merge-join", () => {
  it("pairs equal keys and passes one-sided keys through, in order", async () => {
    const out = await collect(mergeJoin(listing(["a", "b", "d"]), listing(["b", "c", "d", "e"])));
    expect(out.map((p) => [p.src?.key ?? null, p.dst?.key ?? null])).toEqual([
      ["a", null],
      ["b", "b"],
      [null, "c"],
      ["d", "d"],
      [null, "e"],
    ]);
  });

  it("handles empty sides", async () => {
    expect(await collect(mergeJoin(listing([]), listing([])))).toEqual([]);
    expect((await collect(mergeJoin(listing(["x"]), listing([])))).map((p) => p.src?.key)).toEqual(["x"]);
    expect((await collect(mergeJoin(listing([]), listing(["y"])))).map((p) => p.dst?.key)).toEqual(["y"]);
  });

  it("orders keys by UTF-8 bytes, not UTF-16 units", async () => {
    const keys = ["a/b", "a-c", "a", "\uFFFD", "😀", "Z", "é"];
    const sorted = [...keys].sort(compareKeys);
    expect(sorted).toEqual(["Z", "a", "a-c", "a/b", "é", "\uFFFD", "😀"]);
    expect(sorted).toEqual([...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))));
    const out = await collect(mergeJoin(listing(sorted), listing(sorted)));
    expect(out.every((p) => p.src && p.dst)).toBe(true);
  });

  it("refuses an out-of-order listing instead of planning wrongly", async () => {
    await expect(collect(mergeJoin(listing(["b", "a"]), listing([])))).rejects.toThrow(/not in key order/);
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
