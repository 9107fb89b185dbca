import { describe, expect, it } from "vitest";
import { flatten, inGroups } from "../../src/listing.js";
import { collect } from "../helpers/streams.js";

async function* numbers(n: number, waitBefore?: number, until?: Promise<void>): AsyncGenerator<number> {
  for (let i = 0; i < n; i++) {
    if (i === waitBefore) await until;
    yield i;
  }
}

describe("listing in groups", () => {
  it("groups items up to the size, in order, none empty", async () => {
    const groups = await collect(inGroups(numbers(2500), 1000));
    expect(groups.map((g) => g.length)).toEqual([1000, 1000, 500]);
    expect(groups.flat()).toEqual(Array.from({ length: 2500 }, (_, i) => i));
    expect(await collect(inGroups(numbers(0), 1000))).toEqual([]);
  });

  it("hands on what it has when the listing waits, instead of holding it", async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const it = inGroups(numbers(10, 6, held), 1000)[Symbol.asyncIterator]();
    // The listing stops before its 7th item until released: the first six come anyway.
    expect((await it.next()).value).toEqual([0, 1, 2, 3, 4, 5]);
    release();
    expect((await it.next()).value).toEqual([6, 7, 8, 9]);
    expect((await it.next()).done).toBe(true);
  });

  it("passes a listing's error on, after the items before it", async () => {
    async function* failing(): AsyncGenerator<number> {
      yield 1;
      await new Promise((r) => setTimeout(r, 5));
      throw new Error("reset");
    }
    const it = inGroups(failing(), 1000)[Symbol.asyncIterator]();
    expect((await it.next()).value).toEqual([1]);
    await expect(it.next()).rejects.toThrow("reset");
  });

  it("stops the listing when its consumer stops", async () => {
    let closed = false;
    async function* endless(): AsyncGenerator<number> {
      try {
        for (let i = 0; ; i++) yield i;
      } finally {
        closed = true;
      }
    }
    for await (const g of inGroups(endless(), 10)) {
      expect(g).toHaveLength(10);
      break;
    }
    expect(closed).toBe(true);
  });

  it("flatten gives the items of pages one by one", async () => {
    async function* pages(): AsyncGenerator<number[]> {
      yield [1, 2];
      yield [];
      yield [3];
    }
    expect(await collect(flatten(pages()))).toEqual([1, 2, 3]);
  });
});
