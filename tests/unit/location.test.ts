import { describe, expect, it } from "vitest";
import path from "node:path";
import { locationContains, locationId, parseLocation } from "../../adapters/index.js";
import { MigrateError } from "../../src/errors.js";

describe("parseLocation", () => {
  it("parses cloud URLs into root and folder prefix", () => {
    expect(parseLocation("s3://bucket/a/b/")).toMatchObject({ scheme: "s3", root: "bucket", prefix: "a/b", display: "s3://bucket/a/b" });
    expect(parseLocation("s3://bucket")).toMatchObject({ scheme: "s3", root: "bucket", prefix: "" });
    expect(parseLocation("gs://b//x//y")).toMatchObject({ scheme: "gs", root: "b", prefix: "x/y" });
    expect(parseLocation("az://acct/cont/p/q")).toMatchObject({ scheme: "az", root: "acct/cont", prefix: "p/q", extra: { account: "acct", container: "cont" } });
    expect(parseLocation("S3://bucket/x")).toMatchObject({ scheme: "s3" });
  });

  it("parses paths and file URLs", () => {
    expect(parseLocation("./rel/dir")).toMatchObject({ scheme: "file", root: path.resolve("rel/dir"), prefix: "" });
    expect(parseLocation("/abs/dir")).toMatchObject({ scheme: "file", root: "/abs/dir" });
    expect(parseLocation("file:///tmp/a%20b")).toMatchObject({ scheme: "file", root: "/tmp/a b" });
  });

  it("keeps a SAS token out of display and id", () => {
    const loc = parseLocation("https://acct.blob.core.windows.net/cont/pre?sv=2020&sig=SECRET");
    expect(loc).toMatchObject({ scheme: "az", root: "acct/cont", prefix: "pre" });
    expect(loc.extra.sas).toBe("sv=2020&sig=SECRET");
    expect(loc.display).not.toContain("SECRET");
    expect(locationId(loc)).not.toContain("SECRET");
  });

  it("refuses unknown schemes and malformed input with a usage error", () => {
    for (const bad of ["ftp://x/y", "s3://", "az://acct", "", "https://example.com/x", "mailto:x"]) {
      expect(() => parseLocation(bad), bad).toThrow(MigrateError);
    }
  });

  it("locationId round-trips through parseLocation", () => {
    for (const s of ["s3://b/p", "gs://b", "az://a/c/p", "/tmp/x y/z"]) {
      const loc = parseLocation(s);
      expect(parseLocation(locationId(loc))).toMatchObject({ scheme: loc.scheme, root: loc.root, prefix: loc.prefix });
    }
  });

  it("detects overlapping locations", () => {
    const p = (s: string) => parseLocation(s);
    expect(locationContains(p("s3://b/a"), p("s3://b/a/b"))).toBe(true);
    expect(locationContains(p("s3://b/a"), p("s3://b/ab"))).toBe(false);
    expect(locationContains(p("s3://b"), p("s3://b/x"))).toBe(true);
    expect(locationContains(p("s3://b/x"), p("gs://b/x"))).toBe(false);
    expect(locationContains(p("/tmp/a"), p("/tmp/a/b"))).toBe(true);
    expect(locationContains(p("/tmp/a"), p("/tmp/ab"))).toBe(false);
  });
});
