import { describe, expect, it } from "vitest";
import { AdaptiveLimit, TokenBucket, withLimits } from "../../src/limits.js";
import type { Adapter, ObjectInfo } from "../../adapters/types.js";
import { MigrateError } from "../../src/errors.js";
import { collect } from "../helpers/streams.js";
import { ByteBudget } from "../../src/memory.js";
import { choosePartSize } from "../../src/multipart.js";

describe("adaptive concurrency", () => {
  it("halves on throttling (once per burst), grows back by one per window of successes", async () => {
    const g = new AdaptiveLimit(16);
    for (let i = 0; i < 16; i++) await g.acquire();
    g.release("throttled");
    g.release("throttled"); // same burst: no second cut
    expect(g.limit).toBe(8);
    expect(g.floor).toBe(8);
    expect(g.cuts).toBe(1);
    for (let i = 0; i < 14; i++) g.release("ok");
    // in flight is now 0; 8 successes at limit 8 → 9
    expect(g.limit).toBeGreaterThanOrEqual(9);
    expect(g.floor).toBe(8);
  });

  it("starts below its cap and grows to it only while nothing is throttled", async () => {
    const g = new AdaptiveLimit(64, 16);
    expect(g.limit).toBe(16);
    await g.acquire();
    g.release("throttled");
    expect(g.limit).toBe(8);
  });

  it("never lets more than the limit in flight", async () => {
    const g = new AdaptiveLimit(2);
    await g.acquire();
    await g.acquire();
    let third = false;
    const p = g.acquire().then(() => (third = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(third).toBe(false);
    g.release("ok");
    await p;
    expect(third).toBe(true);
  });
});

describe("token bucket", () => {
  it("lets a burst of one second through, then paces", async () => {
    const b = new TokenBucket(100);
    const t0 = Date.now();
    for (let i = 0; i < 100; i++) await b.take(1);
    expect(Date.now() - t0).toBeLessThan(200);
    await b.take(50); // needs ~0.5 s of refill
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
  });
});

describe("memory budget", () => {
  it("holds acquirers until bytes are released, in order", async () => {
    const m = new ByteBudget(100);
    await m.acquire(60);
    const order: number[] = [];
    const a = m.acquire(50).then(() => order.push(1));
    const b = m.acquire(10).then(() => order.push(2));
    await new Promise((r) => setTimeout(r, 5));
    expect(order).toEqual([]); // FIFO: the small one waits behind the big one
    m.release(60);
    await Promise.all([a, b]);
    expect(order).toEqual([1, 2]);
    expect(m.peak).toBe(60);
  });

  it("lets a request larger than the whole budget through alone", async () => {
    const m = new ByteBudget(10);
    await m.acquire(50);
    expect(m.peak).toBe(50);
  });
});

describe("part size", () => {
  const s3 = { minPartSize: 5 * 2 ** 20, maxPartSize: 5 * 2 ** 30, maxParts: 10_000 };
  it("uses the preferred size within the service's limits", () => {
    expect(choosePartSize(100 * 2 ** 20, 16 * 2 ** 20, s3)).toBe(16 * 2 ** 20);
    expect(choosePartSize(100 * 2 ** 20, 1 * 2 ** 20, s3)).toBe(5 * 2 ** 20);
  });
  it("grows parts so a 50 GiB object fits in 10,000", () => {
    const p = choosePartSize(50 * 2 ** 30, 8 * 2 ** 20, s3);
    expect(Math.ceil((50 * 2 ** 30) / p)).toBeLessThanOrEqual(10_000);
  });
});

describe("listing through the limits", () => {
  const settings = { retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 }, maxInFlight: 4 };
  /** An adapter whose listing gives `keys` a page of two at a time, failing after `failAfter` pages (the first `failing` times). */
  function lister(keys: string[], failAfter?: number, failing = 1): Adapter & { listings: number } {
    const self = {
      listings: 0,
      display: "fake",
      capabilities: {} as Adapter["capabilities"],
      async *listPages(): AsyncGenerator<ObjectInfo[]> {
        const run = self.listings++;
        for (let i = 0, pages = 0; i < keys.length; i += 2, pages++) {
          if (run < failing && pages === failAfter) throw new MigrateError("Unexpected", "connection reset", { temporary: true });
          yield keys.slice(i, i + 2).map((key) => ({ key, size: 1 }));
        }
      },
    };
    return self as unknown as Adapter & { listings: number };
  }

  it("lists again after a temporary error, giving each key once", async () => {
    const inner = lister(["a", "b", "c", "d", "e"], 2);
    const keys = (await collect(withLimits(inner, settings).list())).map((o) => o.key);
    expect(keys).toEqual(["a", "b", "c", "d", "e"]);
    expect(inner.listings).toBe(2);
  });

  it("gives up on a listing that fails at the same place every time, after the attempts allowed", async () => {
    const inner = lister(["a", "b", "c", "d", "e"], 1, Infinity);
    await expect(collect(withLimits(inner, settings).list())).rejects.toThrow("connection reset");
    expect(inner.listings).toBe(3);
  });

  it("passes an out-of-order listing on as it is, for the planner to refuse, rather than dropping keys", async () => {
    const pages = await collect(withLimits(lister(["b", "c", "a"]), settings).listPages!());
    expect(pages.flat().map((o) => o.key)).toEqual(["b", "c", "a"]);
  });
});
