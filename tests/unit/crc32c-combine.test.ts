/** Whole-object CRC32Cs worked out from part CRC32Cs, checked against hashing the whole. */
import crypto from "node:crypto";
import { describe, expect, it } from "vitest";
import { combinedCrc32cBase64, crc32c, crc32cBase64, crc32cCombine } from "../../src/hashing.js";

describe("crc32cCombine", () => {
  it("gives the CRC32C of A then B, for random contents and lengths", () => {
    for (let i = 0; i < 300; i++) {
      const a = crypto.randomBytes(crypto.randomInt(0, 70_000));
      const b = crypto.randomBytes(i < 20 ? i : crypto.randomInt(0, 70_000));
      expect(crc32cCombine(crc32c(a, 0), crc32c(b, 0), b.length)).toBe(crc32c(Buffer.concat([a, b]), 0));
    }
  });

  it("is consistent for lengths past 32 bits (combining is associative)", () => {
    const [x, y, z] = [0x1234abcd, 0x9e3779b9, 0x0badf00d];
    for (const [ly, lz] of [[5_000_000_000, 7], [2 ** 32, 2 ** 32 + 1], [3 * 2 ** 40 + 5, 16 * 2 ** 20]]) {
      expect(crc32cCombine(crc32cCombine(x, y, ly), z, lz)).toBe(crc32cCombine(x, crc32cCombine(y, z, lz), ly + lz));
    }
  });

  it("combinedCrc32cBase64: parts of any sizes give the whole's base64 CRC32C", () => {
    const whole = crypto.randomBytes(1_000_003);
    const cuts = [0, 1, 65_536, 65_537, 400_000, 999_999, whole.length];
    const parts = cuts.slice(1).map((end, i) => whole.subarray(cuts[i], end));
    expect(combinedCrc32cBase64(parts.map((p) => ({ crc32c: crc32cBase64(p), size: p.length })))).toBe(crc32cBase64(whole));
    expect(combinedCrc32cBase64([])).toBe(crc32cBase64(Buffer.alloc(0)));
  });
});
