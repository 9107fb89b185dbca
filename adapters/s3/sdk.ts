/**
 * The AWS SDK modules. Types come from `import type`, as usual.
 *
 * - The CLI (dist/bundle/) loads them from one CommonJS bundle beside its chunks,
 *   aws-sdk.cjs (built from sdk-entry.cjs by scripts/bundle.mjs), compiled from the V8 code
 *   cache the build wrote for it (src/cached-require.ts): on Node 20, loading client-s3 went
 *   from ~65 ms to ~35 ms, paid by every run that touches S3.
 * - Without a cache for this Node (another Node than the build's), and anywhere else (tests
 *   on the sources, the bench's dist/ copy), they come from node_modules
 *   with require(): Node loads their CommonJS builds in about half the time `import` takes,
 *   which first scans each for its export names.
 */
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { requireCached } from "../../src/cached-require.js";

interface SdkModules {
  sdk: typeof import("@aws-sdk/client-s3");
  signing: typeof import("@smithy/signature-v4");
}

function load(): SdkModules {
  // Named by scripts/bundle.mjs; beside the chunk this module is bundled into.
  const bundled = fileURLToPath(new URL("./aws-sdk.cjs", import.meta.url));
  const cached = requireCached(bundled);
  if (cached) return cached.exports as SdkModules;
  const require = createRequire(import.meta.url);
  return { sdk: require("@aws-sdk/client-s3"), signing: require("@smithy/signature-v4") };
}

export const { sdk, signing } = load();
