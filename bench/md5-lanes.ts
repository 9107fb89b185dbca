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

/** Each row: the buffers it hashes, how, and its MiB/s per round. */
type Row = { buffers: Buffer[]; run: () => Promise<unknown> | unknown; xs: number[] };
const row = (buffers: Buffer[], run: Row["run"]): Row => ({ buffers, run, xs: [] });
const rows: Record<string, Row> = {
  "OpenSSL, one at a time": row(four, () => four.forEach((b) => crypto.createHash("md5").update(b).digest())),
  "lanes, eight in flight": row(eight, all(lanes, eight)),
  "lanes, AVX2 x8": row(eight, all(avx2, eight)),
  "lanes, four in flight": row(four, all(lanes, four)),
  "lanes, SSE2 x4": row(four, all(sse2, four)),
  "lanes, WebAssembly x4": row(four, all(wasm, four)),
  "lanes, one at a time": row(four, async () => {
    for (const b of four) await lanes.md5(b);
  }),
};
for (let r = 0; r < Number(values.rounds); r++) {
  for (const w of Object.values(rows)) w.xs.push(await rate(w.buffers, w.run));
}
const openssl = median(rows["OpenSSL, one at a time"].xs);
for (const [what, { buffers, xs }] of Object.entries(rows)) {
  const m = median(xs);
  process.stdout.write(`${what.padEnd(24)} ${m.toFixed(0).padStart(6)} MiB/s  ${(m / openssl).toFixed(2)}× OpenSSL  (median of ${xs.length}, ${buffers.length} × ${values.mib} MiB each)\n`);
}
