/**
 * MD5 throughput on this machine: OpenSSL (node:crypto) one buffer at a time, and md5-lanes.ts
 * with four buffers in flight (its SIMD lanes: the native addon's x4, its SSE2 code, and the
 * WebAssembly x4) and with one at a time (its single-lane code).
 *
 *   node dist/bench/md5-lanes.js [--mib 8] [--rounds 5]
 */
import crypto from "node:crypto";
import { parseArgs } from "node:util";
import { Md5Lanes } from "../src/md5-lanes.js";
import { median } from "./measure.js";

const { values } = parseArgs({ options: { mib: { type: "string", default: "8" }, rounds: { type: "string", default: "5" } } });
const size = Number(values.mib) * 1024 * 1024;
const buffers = [0, 1, 2, 3].map(() => crypto.randomBytes(size));
const lanes = new Md5Lanes();
const sse2 = new Md5Lanes({ x4: "sse2" });
const wasm = new Md5Lanes({ x4: "wasm" });
const total = (4 * size) / 2 ** 20;

async function rate(run: () => Promise<unknown> | unknown): Promise<number> {
  const t = performance.now();
  await run();
  return (total / (performance.now() - t)) * 1000;
}

const rows: Record<string, number[]> = {
  "OpenSSL, one at a time": [],
  "lanes, four in flight": [],
  "lanes, SSE2 x4": [],
  "lanes, WebAssembly x4": [],
  "lanes, one at a time": [],
};
for (let r = 0; r < Number(values.rounds); r++) {
  rows["OpenSSL, one at a time"].push(await rate(() => buffers.forEach((b) => crypto.createHash("md5").update(b).digest())));
  rows["lanes, four in flight"].push(await rate(() => Promise.all(buffers.map((b) => lanes.md5(b)))));
  rows["lanes, SSE2 x4"].push(await rate(() => Promise.all(buffers.map((b) => sse2.md5(b)))));
  rows["lanes, WebAssembly x4"].push(await rate(() => Promise.all(buffers.map((b) => wasm.md5(b)))));
  rows["lanes, one at a time"].push(await rate(async () => {
    for (const b of buffers) await lanes.md5(b);
  }));
}
const openssl = median(rows["OpenSSL, one at a time"]);
for (const [what, xs] of Object.entries(rows)) {
  const m = median(xs);
  process.stdout.write(`${what.padEnd(24)} ${m.toFixed(0).padStart(6)} MiB/s  ${(m / openssl).toFixed(2)}× OpenSSL  (median of ${xs.length}, 4 × ${values.mib} MiB each)\n`);
}
