/**
 * The handshake between a filesystem worker finishing a copy and the main thread reporting its
 * progress: a report in progress delays the rename; none starts after it. Real threads (the
 * built module in dist/ on the other side, as in production).
 */
import { Worker } from "node:worker_threads";
import { pathToFileURL } from "node:url";
import { expect, it } from "vitest";
import { workerScript } from "../../src/worker-pool.js";
import { finishCopy, newCopyProgress, reportWhileCopying, storeWritten } from "../../adapters/fs-progress.js";

const built = pathToFileURL(workerScript(new URL("../../adapters/fs.ts", import.meta.url).href, "fs-progress")).href;

it("reports while copying, and never once the copy is finishing", () => {
  const p = newCopyProgress();
  const seen: number[] = [];
  expect(reportWhileCopying(p, () => seen.push(1))).toBe(true);
  finishCopy(p);
  expect(reportWhileCopying(p, () => seen.push(2))).toBe(false);
  expect(seen).toEqual([1]);
});

it("finishing waits for a report another thread is making", async () => {
  const p = newCopyProgress();
  // The other thread marks the start of its report (element 0 = 1), takes 300 ms, then marks its end (2).
  const code = `
    const { workerData } = require("node:worker_threads");
    import(workerData.built).then(({ reportWhileCopying, storeWritten }) => {
      reportWhileCopying(workerData.p, () => {
        storeWritten(workerData.p, 1n);
        const until = Date.now() + 300;
        while (Date.now() < until);
        storeWritten(workerData.p, 2n);
      });
    });`;
  const worker = new Worker(code, { eval: true, workerData: { built, p } });
  try {
    while (Atomics.load(p, 0) !== 1n) await new Promise((r) => setTimeout(r, 2));
    finishCopy(p);
    expect(Atomics.load(p, 0)).toBe(2n); // the report ended before finishing did
    storeWritten(p, 3n);
    expect(reportWhileCopying(p, () => storeWritten(p, 4n))).toBe(false);
    expect(Atomics.load(p, 0)).toBe(3n);
  } finally {
    await worker.terminate();
  }
});
