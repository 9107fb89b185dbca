import { describe, expect, it } from "vitest";
import { TEMP_PREFIX, hashedTempName, tempNameFor } from "../../adapters/fs-names.js";

describe("temporary names of the filesystem adapter", () => {
  it("keeps a short name, in the same folder", () => {
    expect(tempNameFor("/data/photos/a.jpg")).toBe(`/data/photos/${TEMP_PREFIX}_a.jpg`);
    expect(tempNameFor("/data/photos/a.jpg")).toBe(tempNameFor("/data/photos/a.jpg"));
  });

  it("keeps names of up to 100 UTF-8 bytes and hashes longer ones", () => {
    const at = (name: string) => tempNameFor(`/d/${name}`).slice(3);
    expect(at("x".repeat(100))).toBe(`${TEMP_PREFIX}_${"x".repeat(100)}`);
    expect(at("x".repeat(101))).toMatch(new RegExp(`^${TEMP_PREFIX}[0-9a-f]{24}$`));
    // 40 two-byte letters (80 bytes) are kept though 40 × 3 > 100; 51 of them (102 bytes) are not.
    expect(at("é".repeat(40))).toBe(`${TEMP_PREFIX}_${"é".repeat(40)}`);
    expect(at("é".repeat(51))).toMatch(new RegExp(`^${TEMP_PREFIX}[0-9a-f]{24}$`));
    expect(at("🚀".repeat(26))).toMatch(new RegExp(`^${TEMP_PREFIX}[0-9a-f]{24}$`)); // 104 bytes
    expect(at("🚀".repeat(25))).toBe(`${TEMP_PREFIX}_${"🚀".repeat(25)}`); // 100 bytes, 50 UTF-16 units
  });

  it("gives a long name, and every partial upload, the SHA-256 form older builds gave", () => {
    // Pinned: a resumed upload into a local file finds its parts by this name.
    expect(hashedTempName("/d/part.bin")).toBe(`/d/${TEMP_PREFIX}4aec9d9a9aa636dd7a068443`);
    expect(tempNameFor(`/d/${"y".repeat(150)}`)).toBe(hashedTempName(`/d/${"y".repeat(150)}`));
  });
});
