import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { adapterContract } from "./contract.js";
import { FsAdapter } from "../../adapters/fs.js";
import { parseLocation } from "../../adapters/index.js";
import { describe, expect, it } from "vitest";
import { crc32cBase64 } from "../../src/hashing.js";
import { md5, seededBytes } from "../helpers/streams.js";

adapterContract("fs", async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "cm-fs-contract-"));
  return {
    async open(prefix: string) {
      const dir = path.join(root, ...prefix.split("/").filter(Boolean));
      fs.mkdirSync(dir, { recursive: true });
      return new FsAdapter(parseLocation(dir));
    },
    async missingBucket() {
      return new FsAdapter(parseLocation(path.join(root, "no", "such", "dir")));
    },
    createsMissingRoot: true,
    async stop() {
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
});

describe("fs digestParts", () => {
  it("gives the whole MD5 and each part's CRC32C in one pass, for any part size", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cm-fs-digest-"));
    const fsa = new FsAdapter(parseLocation(dir));
    const data = seededBytes(9 * 1024 * 1024 + 17, 5);
    fs.writeFileSync(path.join(dir, "f"), data);
    fs.writeFileSync(path.join(dir, "empty"), "");
    for (const partSize of [1024 * 1024, 3 * 1024 * 1024, 5 * 1024 * 1024 + 1, 6 * 1024 * 1024, 64 * 1024 * 1024]) {
      const want: string[] = [];
      for (let at = 0; at < data.length; at += partSize) want.push(crc32cBase64(data.subarray(at, at + partSize)));
      expect(await fsa.digestParts("f", partSize)).toEqual({ md5: md5(data), partCrc32c: want });
    }
    expect(await fsa.digestParts("empty", 1024)).toEqual({ md5: md5(Buffer.alloc(0)), partCrc32c: [crc32cBase64(Buffer.alloc(0))] });
    await expect(fsa.digestParts("missing", 1024)).rejects.toMatchObject({ kind: "NotFound" });
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
