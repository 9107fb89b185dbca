/**
 * The SIMD MD5 (md5-wasm.ts, md5-lanes.ts) against OpenSSL's: every length around the block
 * and slice boundaries, many at once (so they share lanes), and chains advanced piece by piece
 * through saved states as the checkpoint keeps them.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import { describe, expect, it } from "vitest";
import { Md5Lanes, decodeMd5State, encodeMd5State, freshMd5State, type Md5State } from "../../src/md5-lanes.js";
import { fsNative } from "../../src/native.js";
import { seededBytes } from "../helpers/streams.js";

const openssl = (b: Uint8Array) => crypto.createHash("md5").update(b).digest("hex");
const KiB = 1024;

describe("Md5Lanes", () => {
  it("has the native x4 on x86-64 (the addon built by npm ci), so the cases below run it", () => {
    if (process.arch !== "x64") return;
    expect(fsNative.md5x4).toBeTypeOf("function");
    // It refuses a lane shorter than the blocks asked rather than reading past it.
    expect(() => fsNative.md5x4!(new Uint32Array(16), new Uint8Array(128), new Uint8Array(128), new Uint8Array(128), new Uint8Array(64), 2)).toThrow(/fewer bytes/);
  });

  it("has the native x8 where the CPU has AVX2, so the x8 cases below run it", () => {
    const avx2 = process.arch === "x64" && process.platform === "linux" && /\bavx2\b/.test(fs.readFileSync("/proc/cpuinfo", "utf8"));
    if (!avx2) return;
    expect(fsNative.md5x8).toBeTypeOf("function");
    const lane = new Uint8Array(128);
    expect(() => fsNative.md5x8!(new Uint32Array(32), lane, lane, lane, lane, lane, lane, lane, new Uint8Array(64), 2)).toThrow(/fewer bytes/);
    expect(() => fsNative.md5x8!(new Uint32Array(16), lane, lane, lane, lane, lane, lane, lane, lane, 1)).toThrow(/32 words/);
  });

  // Eighteen hashes at once fill eight lanes where md5x8 runs (the x4 cases keep it off).
  describe.each([
    ["native x4 (AVX-512 where the CPU has it)", { x4: "best", x8: "off" }],
    ["native x4's SSE2 code", { x4: "sse2", x8: "off" }],
    ["WebAssembly x4", { x4: "wasm", x8: "off" }],
    ["native x8 (AVX-512 where the CPU has it)", { x8: "best" }],
    ["native x8's AVX2 code", { x8: "avx2" }],
  ] as const)("with the %s", (_name, opts) => {
    it("matches OpenSSL for lengths around block and slice edges, hashed side by side", async () => {
      const lanes = new Md5Lanes(opts);
      const sizes = [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, 128 * KiB - 1, 128 * KiB, 128 * KiB + 1, 300_000, 1024 * KiB + 13, 3_000_017];
      const data = sizes.map((n, i) => seededBytes(n, 100 + i));
      expect(await Promise.all(data.map((d) => lanes.md5(d)))).toEqual(data.map(openssl));
      // One at a time (the single-lane code) as well.
      for (const d of data.slice(-4)) expect(await lanes.md5(d)).toBe(openssl(d));
    });

    it("continues saved states over pieces of any size, several chains at once", async () => {
      const lanes = new Md5Lanes(opts);
      const chains = [0, 1, 2, 3, 4, 5, 6, 7, 8].map(async (k) => {
        const data = seededBytes(2_000_000 + k * 7777, 200 + k);
        let state: Md5State = freshMd5State();
        for (let at = 0, step = 1; at < data.length; step = step * 3 + k + 1) {
          const piece = data.subarray(at, Math.min(data.length, at + step));
          state = decodeMd5State(encodeMd5State(await lanes.update(state, piece)))!;
          at += piece.length;
        }
        expect(state.length).toBe(data.length);
        expect(lanes.finish(state)).toBe(openssl(data));
      });
      await Promise.all(chains);
    });
  });

  it("reads only states it wrote", () => {
    const state = { words: [1, 2, 3, 4], length: 70, tail: Uint8Array.from([9, 8, 7, 6, 5, 4]) };
    expect(decodeMd5State(encodeMd5State(state))).toEqual(state);
    expect(decodeMd5State(Uint8Array.from([1, 2, 3]))).toBeUndefined();
    const bad = encodeMd5State(state);
    bad[0] ^= 1;
    expect(decodeMd5State(bad)).toBeUndefined();
    expect(decodeMd5State(encodeMd5State({ ...state, length: 71 }))).toBeUndefined(); // tail does not fit the length
  });
});
