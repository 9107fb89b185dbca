import { describe, expect, it } from "vitest";
import { formatCount } from "../../src/format.js";

describe("formatCount", () => {
  it("groups thousands with commas, as en-US does", () => {
    for (const n of [0, 7, 999, 1000, 10_000, 123_456_789, -1_234_567, 1_234_567.5]) {
      expect(formatCount(n)).toBe(n.toLocaleString("en-US"));
    }
    expect(formatCount(1_000_000)).toBe("1,000,000");
  });
});
