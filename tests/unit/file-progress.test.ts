/**
 * A local file handed whole to a local destination (Adapter.writeFromFile) may report its bytes
 * while it is written (opts.onBytes). The copier counts them as they come, tops up the rest from
 * the result, and takes them back when the attempt fails: the progress bar ends at the file's
 * size, never above it.
 */
import fs from "node:fs";
import path from "node:path";
import { expect, it } from "vitest";
import { FsAdapter } from "../../adapters/fs.js";
import { parseLocation } from "../../adapters/index.js";
import type { Adapter, ObjectInfo } from "../../adapters/types.js";
import { Copier } from "../../src/copier.js";
import { MigrateError } from "../../src/errors.js";
import { plan } from "../../src/planner.js";
import { tempDir } from "../helpers/cli.js";
import { scratchStore } from "../helpers/copy.js";
import { seededBytes } from "../helpers/streams.js";

it("counts a handed-over file's reported bytes once, and takes back those of a failed attempt", async () => {
  const srcDir = tempDir("progress-src");
  const dstDir = tempDir("progress-dst");
  const data = seededBytes(3 * 1024 * 1024 + 7, 4);
  fs.writeFileSync(path.join(srcDir, "big"), data);
  const inner = new FsAdapter(parseLocation(dstDir));
  let calls = 0;
  // Reports 1,000 bytes before each attempt; the first attempt then reports 500 more and fails.
  const destination: Adapter = Object.assign(Object.create(inner) as Adapter, {
    async writeFromFile(key: string, file: string, source: ObjectInfo, opts?: { md5?: boolean; onBytes?(n: number): void }) {
      calls++;
      opts?.onBytes?.(1000);
      if (calls === 1) {
        opts?.onBytes?.(500);
        throw new MigrateError("Unexpected", "disk went away for a moment", { temporary: true });
      }
      return inner.writeFromFile(key, file, source, opts);
    },
  });
  const source = new FsAdapter(parseLocation(srcDir));
  const store = scratchStore(tempDir("progress-ckpt"), srcDir, dstDir);
  expect(await plan({ source, destination, store, options: store.job.options })).toBe(true);
  let moved = 0;
  let peak = 0;
  const result = await new Copier(source, destination, store, {
    concurrency: 2,
    retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 },
    multipart: { threshold: Number.MAX_SAFE_INTEGER, partConcurrency: 2, maxMemory: 64 * 1024 * 1024 },
    onBytes: (n) => {
      moved += n;
      peak = Math.max(peak, moved);
    },
  }).run();
  store.close();

  expect(calls).toBe(2);
  expect(result).toMatchObject({ copied: 1, failed: 0, copiedBytes: data.length });
  expect(moved).toBe(data.length);
  expect(peak).toBe(data.length);
  // Bytes sent count every attempt's, as for any retried object.
  expect(result.bytesSent).toBe(data.length + 1500);
  expect(fs.readFileSync(path.join(dstDir, "big")).equals(data)).toBe(true);
});
