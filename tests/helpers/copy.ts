/** Copying and reading back through adapters in-process, as a run would. */

import path from "node:path";
import { expect } from "vitest";
import type { Adapter } from "../../adapters/types.js";
import { SqliteCheckpoint } from "../../checkpoints/sqlite.js";
import { Copier, type RunResult } from "../../src/copier.js";
import { plan } from "../../src/planner.js";

/** A throwaway job checkpoint in `dir`: every object (or those `include` names), default compare, no deletes. */
export function scratchStore(dir: string, source: string, destination: string, include: string[] = []): SqliteCheckpoint {
  return SqliteCheckpoint.create(path.join(dir, "j.sqlite"), {
    id: "t",
    source,
    destination,
    options: { include, exclude: [], compare: "default", delete: false },
  });
}

/** Plan and copy between two adapters, with a throwaway checkpoint. */
export async function planAndCopy(source: Adapter, destination: Adapter, o: { dir: string; urls: [string, string]; include: string[]; concurrency: number }): Promise<RunResult> {
  const store = scratchStore(o.dir, o.urls[0], o.urls[1], o.include);
  try {
    await plan({ source, destination, store, options: store.job.options });
    return await new Copier(source, destination, store, {
      concurrency: o.concurrency,
      retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 5 },
      multipart: { partConcurrency: 2, maxMemory: 64 * 1024 * 1024 },
    }).run();
  } finally {
    store.close();
  }
}

/**
 * `source` with its readWhole and read calls counted: `whole` gets each key readWhole read
 * (undefined answers are not counted), `streamed` each key read() was asked for whole.
 */
export function countingReads(source: Adapter): { counted: Adapter; whole: string[]; streamed: string[] } {
  const whole: string[] = [];
  const streamed: string[] = [];
  const counted: Adapter = Object.assign(Object.create(source) as Adapter, {
    readWhole: async (key: string, max: number, opts?: { md5?: boolean; memory?: () => Buffer }) => {
      const got = await source.readWhole!(key, max, opts);
      if (got) whole.push(key);
      return got;
    },
    read: async (key: string, range?: { start: number; end: number }) => {
      if (!range) streamed.push(key);
      return source.read(key, range);
    },
  });
  return { counted, whole, streamed };
}

/**
 * Read `data` back as `key` with readInto in parts of `partSize` bytes (the last one short)
 * and check every part's count and bytes.
 */
export async function expectPartsReadBack(a: Adapter, key: string, data: Buffer, partSize: number): Promise<void> {
  const body = Buffer.alloc(partSize);
  for (let start = 0; start < data.length; start += partSize) {
    const want = data.subarray(start, start + partSize);
    expect(await a.readInto!(key, start, body)).toBe(want.length);
    expect(body.subarray(0, want.length).equals(want)).toBe(true);
  }
}
