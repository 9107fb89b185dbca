/**
 * The source mtime is stored in each service's "mtime" metadata in the form rclone writes there
 * (S3: seconds with a fraction; GCS and Azure: RFC 3339), so either tool reads the other's;
 * the integer ms that older cloudmigrate versions wrote is still read back.
 */
import { describe, expect, it } from "vitest";
import { parseMtime as parseS3, writeHeaders } from "../../adapters/s3/meta.js";
import { resourceFor, toObjectInfo as gcsInfo } from "../../adapters/gcs/objects.js";
import { parseMtime as parseAzure, toAzureMetadata } from "../../adapters/azure/metadata.js";

const mtime = Date.UTC(2026, 10, 30, 4, 53, 1, 602);

describe("mtime metadata", () => {
  it("S3: rclone's seconds.fraction, read back to the ms; old ms still read", () => {
    const stored = writeHeaders({ key: "k", size: 1, mtime }).Metadata?.mtime;
    expect(stored).toBe("1796014381.602");
    expect(parseS3(stored)).toBe(mtime);
    expect(parseS3(String(mtime))).toBe(mtime);
    expect(parseS3(writeHeaders({ key: "k", size: 1, mtime: -1500 }).Metadata?.mtime)).toBe(-1500);
  });

  it("GCS: RFC 3339, read back to the ms; old ms still read", () => {
    const meta = resourceFor({ key: "k", size: 1, mtime }).metadata as Record<string, string>;
    expect(meta.mtime).toBe("2026-11-30T04:53:01.602Z");
    expect(gcsInfo({ name: "k", size: "1", metadata: meta }, "k").mtime).toBe(mtime);
    expect(gcsInfo({ name: "k", size: "1", metadata: { mtime: String(mtime) } }, "k").mtime).toBe(mtime);
  });

  it("Azure: RFC 3339, read back to the ms; old ms still read", () => {
    const stored = toAzureMetadata({ key: "k", size: 1, mtime }).mtime;
    expect(stored).toBe("2026-11-30T04:53:01.602Z");
    expect(parseAzure(stored)).toBe(mtime);
    expect(parseAzure(String(mtime))).toBe(mtime);
  });
});
