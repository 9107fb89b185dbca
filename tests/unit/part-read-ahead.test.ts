/**
 * Parts of a large object are read ahead of those uploading: at most partConcurrency uploads
 * at once, and while they are slow up to as many more parts (32 MiB of them at most, one at
 * least) are already read, so the destination never waits on a read. Parts that carry MD5s
 * read ahead as many as the hashing thread has lanes, if more (64 MiB at most), so their MD5s
 * are hashed side by side. Reads start two at a time and widen as they finish, so the first
 * part is not slowed by sharing the source with every other part held. The object still arrives
 * whole and byte-identical.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { FsAdapter } from "../../adapters/fs.js";
import { parseLocation } from "../../adapters/index.js";
import type { Adapter, MultipartSteps } from "../../adapters/types.js";
import { Copier } from "../../src/copier.js";
import { MD5_LANES } from "../../src/hash-thread.js";
import { plan } from "../../src/planner.js";
import { tempDir } from "../helpers/cli.js";
import { scratchStore } from "../helpers/copy.js";

const RETRY = { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 };
const MiB = 1024 * 1024;
const PART_CONCURRENCY = 3;

/** Counters of what a copy did at once: ranged reads started, uploads in flight. */
interface Watch {
  reads: number[];
  uploading: number;
  maxUploading: number;
  /**
   * Reads started while PART_CONCURRENCY parts were already read and not yet uploaded: read
   * ahead of them. (Not "while PART_CONCURRENCY uploads were in flight": a part may hold its
   * upload slot a moment before uploadPart is called, waiting for its MD5.)
   */
  readsAhead: number;
  /** Parts read and not yet uploaded, and the most there were. */
  held: number;
  maxHeld: number;
  /** Reads in flight; the most there were before the first finished, and ever. */
  reading: number;
  maxReadingAtStart: number;
  maxReading: number;
  readsDone: number;
}

/** A local folder whose ranged reads each take at least `readDelayMs`. */
function watchedSource(dir: string, watch: Watch, readDelayMs: number): Adapter {
  const inner = new FsAdapter(parseLocation(dir));
  return Object.assign(Object.create(inner) as Adapter, {
    async readInto(key: string, start: number, into: Buffer): Promise<number> {
      watch.reads.push(start);
      if (watch.held >= PART_CONCURRENCY) watch.readsAhead++;
      watch.maxHeld = Math.max(watch.maxHeld, ++watch.held);
      watch.maxReading = Math.max(watch.maxReading, ++watch.reading);
      if (watch.readsDone === 0) watch.maxReadingAtStart = Math.max(watch.maxReadingAtStart, watch.reading);
      try {
        if (readDelayMs) await new Promise((r) => setTimeout(r, readDelayMs));
        return await inner.readInto!(key, start, into);
      } finally {
        watch.reading--;
        watch.readsDone++;
      }
    },
  });
}

/** A local folder slow to take parts; `crc32c`: its parts carry CRC32Cs (as S3's and GCS's do), not MD5s. */
function slowDestination(dir: string, watch: Watch, crc32c: boolean): Adapter {
  const inner = new FsAdapter(parseLocation(dir));
  const steps = inner.multipart!;
  const multipart: MultipartSteps = {
    ...steps,
    async uploadPart(key, uploadId, partNumber, body, checksum) {
      watch.uploading++;
      watch.maxUploading = Math.max(watch.maxUploading, watch.uploading);
      try {
        await new Promise((r) => setTimeout(r, 25));
        // The folder itself checks parts by MD5.
        const md5 = crc32c ? crypto.createHash("md5").update(body).digest("hex") : checksum;
        await steps.uploadPart(key, uploadId, partNumber, body, md5);
        return checksum;
      } finally {
        watch.uploading--;
        watch.held--;
      }
    },
  };
  const capabilities = { ...inner.capabilities, multipart: { ...inner.capabilities.multipart!, partChecksum: crc32c ? ("crc32c" as const) : undefined } };
  return Object.assign(Object.create(inner) as Adapter, { multipart, capabilities });
}

async function copyWatched(part: number, parts: number, crc32c = false, readDelayMs = 0): Promise<Watch> {
  const srcDir = tempDir("readahead-src");
  const dstDir = tempDir("readahead-dst");
  const body = crypto.randomBytes(part * parts);
  fs.writeFileSync(path.join(srcDir, "big.bin"), body);
  const watch: Watch = {
    reads: [],
    uploading: 0,
    maxUploading: 0,
    readsAhead: 0,
    held: 0,
    maxHeld: 0,
    reading: 0,
    maxReadingAtStart: 0,
    maxReading: 0,
    readsDone: 0,
  };
  const source = watchedSource(srcDir, watch, readDelayMs);
  const destination = slowDestination(dstDir, watch, crc32c);
  const store = scratchStore(tempDir("readahead-ckpt"), srcDir, dstDir);
  await plan({ source, destination, store, options: store.job.options });
  const result = await new Copier(source, destination, store, {
    concurrency: 1,
    retry: RETRY,
    multipart: { threshold: part, partSize: part, partConcurrency: PART_CONCURRENCY, maxMemory: 256 * MiB },
  }).run();

  expect(result.copied).toBe(1);
  expect(fs.readFileSync(path.join(dstDir, "big.bin")).equals(body)).toBe(true);
  expect(watch.reads.length).toBe(parts);
  expect(watch.maxUploading).toBe(PART_CONCURRENCY);
  expect(store.counts().byState.done.objects).toBe(1);
  store.close();
  return watch;
}

describe("parts read ahead of uploads", () => {
  it("keeps partConcurrency uploads in flight, reads as many more meanwhile, and delivers the object intact", async () => {
    const parts = 24;
    const watch = await copyWatched(256 * 1024, parts, true);
    // Reads went on while as many parts as upload at once were held (without read-ahead: never).
    expect(watch.readsAhead).toBeGreaterThanOrEqual(parts / 4);
    expect(watch.maxHeld).toBe(2 * PART_CONCURRENCY);
  }, 30_000);

  it("reads big parts ahead only up to 32 MiB", async () => {
    const watch = await copyWatched(16 * MiB, 6, true);
    expect(watch.maxHeld).toBe(PART_CONCURRENCY + 2);
  }, 60_000);

  it("reads parts that carry MD5s ahead as far as the hashing thread has lanes, up to 64 MiB", async () => {
    const parts = 24;
    const small = await copyWatched(256 * 1024, parts);
    expect(small.readsAhead).toBeGreaterThanOrEqual(parts / 4);
    expect(small.maxHeld).toBe(PART_CONCURRENCY + Math.max(PART_CONCURRENCY, MD5_LANES));
    const big = await copyWatched(16 * MiB, 8);
    expect(big.maxHeld).toBe(PART_CONCURRENCY + Math.min(Math.max(PART_CONCURRENCY, MD5_LANES), 4));
  }, 60_000);

  it("starts two reads, and widens to every part held as reads finish", async () => {
    const watch = await copyWatched(256 * 1024, 24, true, 20);
    // All 2 × PART_CONCURRENCY held parts read at once would share the source and finish together.
    expect(watch.maxReadingAtStart).toBe(2);
    expect(watch.maxReading).toBeGreaterThan(2);
    expect(watch.maxHeld).toBe(2 * PART_CONCURRENCY);
  }, 30_000);
});
