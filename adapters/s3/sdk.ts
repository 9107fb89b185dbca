/**
 * The AWS SDK modules, loaded with require(): Node loads their CommonJS bundles in about half the
 * time that `import` takes, which first scans each bundle for its export names (Node 20, bench
 * VM: client-s3 124 → 69 ms, the SigV4 signer 40 → 24 ms; paid by every run that touches S3).
 * Types come from `import type`, as usual.
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
export const sdk = require("@aws-sdk/client-s3") as typeof import("@aws-sdk/client-s3");
export const signing = require("@smithy/signature-v4") as typeof import("@smithy/signature-v4");
