/**
 * MinIO test harness: starts a real MinIO server on a free loopback port with a temporary data
 * directory, and tears it down again.
 *
 * `startMinio()` resolves to an Emulator, or to undefined when the `minio` binary is missing
 * (after one loud line on stderr) — unless REQUIRE_EMULATORS=1, in which case it throws.
 * The server process dies with the test process (process 'exit' hook) and on `stop()`.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { CreateBucketCommand, S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";
import { suppressNodeVersionWarning } from "../../adapters/s3/client.js";
import type { Emulator } from "./types.js";
import { findGoBinary, freePort, missingEmulator, supervise, waitReady } from "./process.js";

/** An SDK client for the S3 store an Emulator's `env` points at (`extra` adds or overrides settings). */
export function s3ClientFor(env: Record<string, string>, extra: S3ClientConfig = {}): S3Client {
  return new S3Client({
    endpoint: env.AWS_ENDPOINT_URL,
    region: env.AWS_REGION ?? "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
    ...extra,
  });
}

const ROOT_USER = "minio-test-user";
const ROOT_PASSWORD = "minio-test-password-0123456789";

/**
 * `dataParent`: where MinIO keeps its objects (default: the temp dir). The benchmark passes a
 * memory-backed folder, as Azurite keeps its objects in memory.
 */
export async function startMinio(dataParent = os.tmpdir()): Promise<Emulator | undefined> {
  const bin = findGoBinary("minio");
  if (!bin) return missingEmulator("minio", "s3");

  const port = await freePort();
  let consolePort = await freePort();
  while (consolePort === port) consolePort = await freePort();
  const dataDir = mkdtempSync(path.join(dataParent, "minio-test-"));
  const endpoint = `http://127.0.0.1:${port}`;

  const child = spawn(
    bin,
    ["server", dataDir, "--address", `127.0.0.1:${port}`, "--console-address", `127.0.0.1:${consolePort}`, "--quiet"],
    {
      detached: false,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        MINIO_ROOT_USER: ROOT_USER,
        MINIO_ROOT_PASSWORD: ROOT_PASSWORD,
        MINIO_BROWSER: "off",
        MINIO_UPDATE: "off",
      },
    },
  );
  const supervised = supervise(child, dataDir);
  const stop = supervised.stop;

  try {
    await waitReady("minio", `${endpoint}/minio/health/live`, child, supervised.output);
  } catch (err) {
    await stop();
    throw err;
  }

  const env: Record<string, string> = {
    AWS_ENDPOINT_URL: endpoint,
    AWS_ACCESS_KEY_ID: ROOT_USER,
    AWS_SECRET_ACCESS_KEY: ROOT_PASSWORD,
    AWS_REGION: "us-east-1",
  };
  const badCredentialsEnv = { ...env, AWS_SECRET_ACCESS_KEY: "wrong-secret-key-for-tests" };

  suppressNodeVersionWarning();
  const admin = new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: ROOT_USER, secretAccessKey: ROOT_PASSWORD },
    maxAttempts: 3,
  });

  return {
    scheme: "s3",
    name: "minio",
    pid: child.pid,
    env,
    badCredentialsEnv,
    adapterOptions: { env },
    async createBucket() {
      const name = `b-${randomBytes(6).toString("hex")}`;
      await admin.send(new CreateBucketCommand({ Bucket: name }));
      return `s3://${name}`;
    },
    missingBucketUrl() {
      return `s3://missing-${randomBytes(6).toString("hex")}`;
    },
    async stop() {
      admin.destroy();
      await stop();
    },
  };
}
