/**
 * MinIO test harness: starts a real MinIO server on a free loopback port with a temporary data
 * directory, and tears it down again.
 *
 * `startMinio()` resolves to an Emulator, or to undefined when the `minio` binary is missing
 * (after one loud line on stderr) — unless REQUIRE_EMULATORS=1, in which case it throws.
 * The server process dies with the test process (process 'exit' hook) and on `stop()`.
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { suppressNodeVersionWarning } from "../../adapters/s3/client.js";
import type { Emulator } from "./types.js";

const ROOT_USER = "minio-test-user";
const ROOT_PASSWORD = "minio-test-password-0123456789";
const READY_TIMEOUT_MS = 30_000;

/** First executable named `name` on PATH, then in `$(go env GOPATH)/bin`, then ~/go/bin. */
export function findGoBinary(name: string): string | undefined {
  const dirs = (process.env.PATH ?? "").split(path.delimiter).filter(Boolean);
  try {
    const gopath = execFileSync("go", ["env", "GOPATH"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 10_000 }).trim();
    for (const p of gopath.split(path.delimiter)) if (p) dirs.push(path.join(p, "bin"));
  } catch {
    // No Go toolchain: fall through to the conventional location.
  }
  dirs.push(path.join(os.homedir(), "go", "bin"));
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
    } catch {
      // unreadable dir entry: keep looking
    }
  }
  return undefined;
}

/** A free TCP port on 127.0.0.1 (bound and released; a tiny race with other processes remains). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error("no free port"))));
    });
  });
}

async function waitReady(url: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`minio exited before becoming ready (code ${child.exitCode}): ${output()}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`minio not ready after ${READY_TIMEOUT_MS} ms: ${output()}`);
}

export async function startMinio(): Promise<Emulator | undefined> {
  const bin = findGoBinary("minio");
  if (!bin) {
    if (process.env.REQUIRE_EMULATORS === "1") {
      throw new Error("minio not installed (REQUIRE_EMULATORS=1); run scripts/install-emulators.sh");
    }
    process.stderr.write("SKIPPING s3 tests: minio not installed; run scripts/install-emulators.sh\n");
    return undefined;
  }

  const port = await freePort();
  let consolePort = await freePort();
  while (consolePort === port) consolePort = await freePort();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "minio-test-"));
  const endpoint = `http://127.0.0.1:${port}`;

  let out = "";
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
  const keep = (b: Buffer) => {
    out = (out + b.toString("utf8")).slice(-4000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const killOnExit = () => {
    if (child.exitCode === null) child.kill("SIGKILL");
  };
  process.on("exit", killOnExit);

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.off("exit", killOnExit);
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dataDir, { recursive: true, force: true });
  };

  try {
    await waitReady(`${endpoint}/minio/health/live`, child, () => out.trim().split("\n").slice(-3).join(" | "));
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
