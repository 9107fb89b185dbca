/**
 * Bundle the compiled CLI (dist/src, dist/adapters, dist/checkpoints) into dist/bundle/, which
 * bin/migrate runs. Why: Node 20 resolves and reads every module file of the Azure and GCS SDKs
 * one by one; one file per entry and shared chunks for the lazily loaded adapters cut about
 * 250 ms from each start of a cloud run (measured on the S3→Azure route: first request at
 * ~490-650 ms instead of ~800-930 ms).
 *
 * Contract kept from the unbundled build:
 * - Worker entries (hash-worker, fs-worker) sit beside the chunks, where workerScript() looks.
 * - Native addons and the modules we load with createRequire (picomatch, cli-progress) stay in
 *   node_modules, resolved at run time from dist/bundle/.
 * - The AWS SDK is a CommonJS file of its own, aws-sdk.cjs, with a V8 code cache for the Node
 *   running this build (see the end of this file).
 * - dist/bundle/ is two levels below the package root, as dist/src/ is, so relative paths to
 *   package.json still hold.
 */
import { build } from "esbuild";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const outdir = path.join(root, "dist", "bundle");
fs.rmSync(outdir, { recursive: true, force: true });

await build({
  absWorkingDir: root,
  entryPoints: ["dist/src/cli.js", "dist/src/hash-worker.js", "dist/adapters/fs-worker.js"],
  outdir,
  entryNames: "[name]",
  chunkNames: "chunk-[hash]",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  external: ["better-sqlite3", "@node-rs/crc32"],
  // Bundled CommonJS code calls require() for Node's own modules; ESM has none, so give it one.
  banner: { js: "import { createRequire as __bundleRequire } from 'node:module'; const require = __bundleRequire(import.meta.url);" },
  keepNames: true,
  sourcemap: "linked",
  logLevel: "warning",
});

// The AWS SDK and the SigV4 signer, as one CommonJS file that adapters/s3/sdk.ts loads with the
// V8 code cache written here (src/cached-require.ts). Bundled apart from the CLI's chunks: the
// cache needs a classic script, which ESM chunks are not.
const sdkBundle = path.join(outdir, "aws-sdk.cjs");
await build({
  absWorkingDir: root,
  entryPoints: ["adapters/s3/sdk-entry.cjs"],
  outfile: sdkBundle,
  bundle: true,
  format: "cjs",
  platform: "node",
  target: "node20",
  keepNames: true,
  logLevel: "warning",
});
// Exercised before the cache is taken, so what a first request runs is in it too: a client
// built and a HeadBucket signed and sent to a closed local port (refused at once, no network).
const { writeCodeCache } = await import(pathToFileURL(path.join(root, "dist", "src", "cached-require.js")).href);
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true"; // the SDK warns on Node < 22
await writeCodeCache(sdkBundle, async ({ sdk, signing }) => {
  const credentials = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "example" };
  const client = new sdk.S3Client({ region: "us-east-1", endpoint: "http://127.0.0.1:9", forcePathStyle: true, maxAttempts: 1, credentials });
  // Bounded, in case something does listen there.
  await client.send(new sdk.HeadBucketCommand({ Bucket: "warm" }), { abortSignal: AbortSignal.timeout(2000) }).catch(() => undefined);
  client.destroy();
  new signing.SignatureV4({ service: "s3", region: "us-east-1", credentials, sha256: class {} });
});
