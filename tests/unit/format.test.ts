import { describe, expect, it } from "vitest";
import { formatBytes, formatCount } from "../../src/format.js";

describe("formatCount", () => {
  it("groups thousands with commas, as en-US does", () => {
    for (const n of [0, 7, 999, 1000, 10_000, 123_456_789, -1_234_567, 1_234_567.5]) {
      expect(formatCount(n)).toBe(n.toLocaleString("en-US"));
    }
    expect(formatCount(1_000_000)).toBe("1,000,000");
  });
});

describe("formatBytes", () => {
  it("shows whole bytes below 1 KiB, even for a rate with a fraction, and two or one decimals above", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(351.35135135135135)).toBe("351 B");
    expect(formatBytes(1023.4)).toBe("1023 B");
    expect(formatBytes(1023.6)).toBe("1.00 KiB");
    expect(formatBytes(1536)).toBe("1.50 KiB");
    expect(formatBytes(39.1 * 1024 * 1024)).toBe("39.1 MiB");
    expect(formatBytes(5 * 1024 ** 3)).toBe("5.00 GiB");
  });
});
