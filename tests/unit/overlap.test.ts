/**
 * Planning and copying overlap: the copier takes rows as the planner commits them. The source
 * listing here stops half-way until an object has arrived at the destination — without the
 * overlap that never happens and the test times out.
 */
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { FsAdapter } from "../../adapters/fs.js";
import { parseLocation } from "../../adapters/index.js";
import type { Adapter, ObjectInfo } from "../../adapters/types.js";
import { Copier, RowFeed } from "../../src/copier.js";
import { plan } from "../../src/planner.js";
import { tempDir } from "../helpers/cli.js";
import { scratchStore } from "../helpers/copy.js";

const RETRY = { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 };
const MULTIPART = { threshold: Number.MAX_SAFE_INTEGER, partConcurrency: 2, maxMemory: 64 * 1024 * 1024 };

/** The fs adapter whose listing waits, after `pauseAfter` keys, until `resume()` is called. */
function pausingSource(dir: string, pauseAfter: number): Adapter & { resume(): void; paused: Promise<void> } {
  const inner = new FsAdapter(parseLocation(dir));
  let resume!: () => void;
  let markPaused!: () => void;
  const resumed = new Promise<void>((r) => (resume = r));
  const paused = new Promise<void>((r) => (markPaused = r));
  return Object.assign(Object.create(inner) as Adapter, {
    resume,
    paused,
    listPages: undefined, // the planner lists through list() below, one object at a time
    async *list(prefix?: string): AsyncGenerator<ObjectInfo> {
      let n = 0;
      for await (const o of inner.list(prefix)) {
        if (n++ === pauseAfter) {
          markPaused();
          await resumed;
        }
        yield o;
      }
    },
  });
}

describe("planning alongside copying", () => {
  it("copies rows the planner has committed while the listing is still running", async () => {
    const srcDir = tempDir("overlap-src");
    const dstDir = tempDir("overlap-dst");
    for (let i = 0; i < 1000; i++) fs.writeFileSync(path.join(srcDir, `k${String(i).padStart(4, "0")}`), `object ${i}`);
    const source = pausingSource(srcDir, 600);
    const dst = new FsAdapter(parseLocation(dstDir));
    const store = scratchStore(tempDir("overlap-ckpt"), srcDir, dstDir);
    const feed = new RowFeed();
    const copier = new Copier(source, dst, store, { concurrency: 4, retry: RETRY, multipart: MULTIPART, moreRows: () => feed.next() });
    const planned = plan({ source, destination: dst, store, options: store.job.options, batchSize: 100, onRows: () => feed.notify() }).finally(() => feed.end());
    const copied = copier.run();

    await source.paused;
    // The listing is stuck at key 600: objects still arrive, from the rows already committed.
    for (let waited = 0; !fs.existsSync(path.join(dstDir, "k0000")); waited += 10) {
      if (waited > 10_000) throw new Error("nothing was copied while the listing was paused");
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(store.job.planComplete).toBe(false);
    source.resume();

    const [whole, result] = await Promise.all([planned, copied]);
    expect(whole).toBe(true);
    expect(result.copied).toBe(1000);
    expect(fs.readdirSync(dstDir).sort()).toEqual(fs.readdirSync(srcDir).sort());
    expect(fs.readFileSync(path.join(dstDir, "k0999"), "utf8")).toBe("object 999");
    const counts = store.counts();
    expect(counts.byState.done.objects).toBe(1000);
    expect(counts.byState.pending.objects).toBe(0);
    store.close();
  }, 30_000);

  it("a stopped copier stops waiting for rows", async () => {
    const srcDir = tempDir("overlap-stop-src");
    fs.writeFileSync(path.join(srcDir, "a"), "a");
    const dst = new FsAdapter(parseLocation(tempDir("overlap-stop-dst")));
    const store = scratchStore(tempDir("overlap-stop-ckpt"), srcDir, "d");
    const feed = new RowFeed(); // never notified, never ended: only stop() can end the run
    const copier = new Copier(new FsAdapter(parseLocation(srcDir)), dst, store, { concurrency: 2, retry: RETRY, multipart: MULTIPART, moreRows: () => feed.next() });
    const run = copier.run();
    setTimeout(() => copier.stop(), 50);
    const result = await run;
    expect(result.interrupted).toBe(true);
    expect(result.copied).toBe(0);
    store.close();
  });
});

describe("RowFeed", () => {
  it("keeps a notice given while nobody waits, and says false once ended", async () => {
    const feed = new RowFeed();
    feed.notify();
    await expect(feed.next()).resolves.toBe(true);
    const waiting = feed.next();
    feed.notify();
    await expect(waiting).resolves.toBe(true);
    const last = feed.next();
    feed.end();
    await expect(last).resolves.toBe(false);
    await expect(feed.next()).resolves.toBe(false);
  });

  it("rows committed just before the end are still taken", async () => {
    const feed = new RowFeed();
    feed.notify();
    feed.end();
    await expect(feed.next()).resolves.toBe(true);
    await expect(feed.next()).resolves.toBe(false);
  });
});
