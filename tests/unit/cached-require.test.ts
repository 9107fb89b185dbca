/**
 * Loading a CommonJS bundle from its V8 code cache (src/cached-require.ts), and the cached AWS
 * SDK bundle the build writes for the CLI (scripts/bundle.mjs).
 */
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { codeCacheFile, requireCached, writeCodeCache } from "../../src/cached-require.js";
import { tempDir } from "../helpers/cli.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** A bundle that needs what require() gives a module: its own require, __dirname, `this`, import(). */
function fixture(): string {
  const dir = tempDir("cached-require");
  fs.writeFileSync(path.join(dir, "lib.cjs"), "exports.twice = (n) => 2 * n;\n");
  const file = path.join(dir, "bundle.cjs");
  fs.writeFileSync(
    file,
    [
      "globalThis.__cachedRequireRuns = (globalThis.__cachedRequireRuns ?? 0) + 1;",
      'const lib = require("./lib.cjs");',
      "exports.twice = lib.twice;",
      "exports.dir = __dirname;",
      "exports.file = __filename;",
      "exports.thisIsExports = this === module.exports;",
      'exports.joinType = () => import("node:path").then((m) => typeof m.join);',
      "",
    ].join("\n"),
  );
  return file;
}

interface Fixture {
  twice(n: number): number;
  dir: string;
  file: string;
  thisIsExports: boolean;
  joinType(): Promise<string>;
}

const runs = () => (globalThis as { __cachedRequireRuns?: number }).__cachedRequireRuns ?? 0;

describe("requireCached", () => {
  it("runs a bundle from the cache writeCodeCache wrote, as require() would run it", async () => {
    const file = fixture();
    const size = await writeCodeCache(file, (m) => void (m as Fixture).twice(1));
    expect(size).toBeGreaterThan(0);
    expect(fs.statSync(codeCacheFile(file)).size).toBe(size);
    expect(path.dirname(codeCacheFile(file))).toBe(path.dirname(file));

    const before = runs();
    const loaded = requireCached(file);
    expect(loaded?.cacheUsed).toBe(true);
    expect(runs()).toBe(before + 1);
    const m = loaded!.exports as Fixture;
    expect(m.twice(21)).toBe(42);
    expect(m.file).toBe(file);
    expect(m.dir).toBe(path.dirname(file));
    expect(m.thisIsExports).toBe(true);
    expect(await m.joinType()).toBe("function");
  });

  it("runs nothing when there is no cache for this Node, so the caller can require() instead", () => {
    const file = fixture();
    const before = runs();
    expect(requireCached(file)).toBeUndefined();
    expect(runs()).toBe(before);
  });

  it("compiles from source when V8 refuses the cache: the bundle changed, or the cache is damaged", async () => {
    const file = fixture();
    await writeCodeCache(file);
    fs.appendFileSync(file, "exports.added = true;\n");
    const changed = requireCached(file);
    expect(changed?.cacheUsed).toBe(false);
    expect((changed!.exports as Fixture & { added: boolean }).added).toBe(true);
    expect((changed!.exports as Fixture).twice(4)).toBe(8);

    // Another source text: V8 keeps scripts it compiled in this process and would not look at the cache.
    const other = fixture();
    fs.appendFileSync(other, "exports.other = 1;\n");
    fs.writeFileSync(codeCacheFile(other), Buffer.alloc(4096, 7));
    const damaged = requireCached(other);
    expect(damaged?.cacheUsed).toBe(false);
    expect((damaged!.exports as Fixture).twice(5)).toBe(10);
  });
});

describe("the CLI's AWS SDK bundle (npm run build)", () => {
  it("has a code cache that a plain node takes, and gives a working client and signer", () => {
    const bundle = path.join(root, "dist", "bundle", "aws-sdk.cjs");
    expect(fs.existsSync(codeCacheFile(bundle))).toBe(true);
    const script = `
      const { requireCached } = await import(${JSON.stringify(path.join(root, "dist", "src", "cached-require.js"))});
      const loaded = requireCached(${JSON.stringify(bundle)});
      const { sdk, signing } = loaded.exports;
      process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
      const credentials = { accessKeyId: "AKID", secretAccessKey: "secret" };
      const client = new sdk.S3Client({ region: "us-east-1", endpoint: "http://127.0.0.1:9", forcePathStyle: true, maxAttempts: 1, credentials });
      const err = await client.send(new sdk.HeadBucketCommand({ Bucket: "b" })).then(() => "answered", (e) => e.code ?? e.name);
      const signer = new signing.SignatureV4({ service: "s3", region: "us-east-1", credentials, sha256: class {} });
      console.log(JSON.stringify({ cacheUsed: loaded.cacheUsed, err, signer: typeof signer.sign }));
    `;
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", env });
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.stdout)).toEqual({ cacheUsed: true, err: "ECONNREFUSED", signer: "function" });
  });
});
