/**
 * MD5 throughput on this machine: OpenSSL (node:crypto) one buffer at a time, and md5-lanes.ts
 * with eight buffers in flight (the native addon's x8 and its AVX2 code), four (the addon's x4,
 * its SSE2 code, and the WebAssembly x4) and one at a time (its single-lane code).
 *
 *   node dist/bench/md5-lanes.js [--mib 8] [--rounds 5]
 */
import crypto from "node:crypto";
import { parseArgs } from "node:util";
import { Md5Lanes } from "../src/md5-lanes.js";
import { median } from "./measure.js";

const { values } = parseArgs({ options: { mib: { type: "string", default: "8" }, rounds: { type: "string", default: "5" } } });
const size = Number(values.mib) * 1024 * 1024;
const eight = [0, 1, 2, 3, 4, 5, 6, 7].map(() => crypto.randomBytes(size));
const four = eight.slice(0, 4);
const lanes = new Md5Lanes();
const avx2 = new Md5Lanes({ x8: "avx2" });
const sse2 = new Md5Lanes({ x4: "sse2" });
const wasm = new Md5Lanes({ x4: "wasm" });

/** MiB/s hashing `buffers` by `run`. */
async function rate(buffers: Buffer[], run: () => Promise<unknown> | unknown): Promise<number> {
  const t = performance.now();
  await run();
  return ((buffers.length * size) / 2 ** 20 / (performance.now() - t)) * 1000;
}
const all = (l: Md5Lanes, buffers: Buffer[]) => () => Promise.all(buffers.map((b) => l.md5(b)));

const rows: Record<string, number[]> = {
  "OpenSSL, one at a time": [],
  "lanes, eight in flight": [],
  "lanes, AVX2 x8": [],
  "lanes, four in flight": [],
  "lanes, SSE2 x4": [],
  "lanes, WebAssembly x4": [],
  "lanes, one at a time": [],
};
for (let r = 0; r < Number(values.rounds); r++) {
  rows["OpenSSL, one at a time"].push(await rate(four, () => four.forEach((b) => crypto.createHash("md5").update(b).digest())));
  rows["lanes, eight in flight"].push(await rate(eight, all(lanes, eight)));
  rows["lanes, AVX2 x8"].push(await rate(eight, all(avx2, eight)));
  rows["lanes, four in flight"].push(await rate(four, all(lanes, four)));
  rows["lanes, SSE2 x4"].push(await rate(four, all(sse2, four)));
  rows["lanes, WebAssembly x4"].push(await rate(four, all(wasm, four)));
  rows["lanes, one at a time"].push(await rate(four, async () => {
    for (const b of four) await lanes.md5(b);
  }));
}
const openssl = median(rows["OpenSSL, one at a time"]);
for (const [what, xs] of Object.entries(rows)) {
  const m = median(xs);
  process.stdout.write(`${what.padEnd(24)} ${m.toFixed(0).padStart(6)} MiB/s  ${(m / openssl).toFixed(2)}× OpenSSL  (median of ${xs.length}, ${what.includes("eight") || what.includes("x8") ? 8 : 4} × ${values.mib} MiB each)\n`);
}
