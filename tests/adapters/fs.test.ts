import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { adapterContract } from "./contract.js";
import { FsAdapter } from "../../adapters/fs.js";
import { parseLocation } from "../../adapters/index.js";

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
