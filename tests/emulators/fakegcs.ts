/**
 * fake-gcs-server test harness: starts a real fake-gcs-server (in-memory backend) on a free
 * loopback port, and tears it down again.
 *
 * `startFakeGcs()` resolves to an Emulator, or to undefined when the `fake-gcs-server` binary is
 * missing (after one loud line on stderr) — unless REQUIRE_EMULATORS=1, in which case it throws.
 * The server process dies with the test process (process 'exit' hook) and on `stop()`.
 *
 * fake-gcs-server accepts any credentials (and our adapter sends none to an emulator), so
 * `badCredentialsEnv` cannot make it fail: it is the working env, and GCS test targets leave the
 * bad-credential contract test out rather than fake it.
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { Emulator } from "./types.js";

const BINARY = "fake-gcs-server";
const READY_TIMEOUT_MS = 30_000;

/** First `fake-gcs-server` on PATH, then in `$(go env GOPATH)/bin`, then ~/go/bin. */
function findBinary(): string | undefined {
  const dirs = (process.env.PATH ?? "").split(path.delimiter).filter(Boolean);
  try {
    const gopath = execFileSync("go", ["env", "GOPATH"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
      timeout: 10_000,
    }).trim();
    for (const p of gopath.split(path.delimiter)) if (p) dirs.push(path.join(p, "bin"));
  } catch {
    // No Go toolchain: fall through to the conventional location.
  }
  dirs.push(path.join(os.homedir(), "go", "bin"));
  for (const dir of dirs) {
    const candidate = path.join(dir, BINARY);
    try {
      if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
    } catch {
      // unreadable entry: keep looking
    }
  }
  return undefined;
}

/** A free TCP port on 127.0.0.1 (bound and released; a tiny race with other processes remains). */
function freePort(): Promise<number> {
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
      throw new Error(`${BINARY} exited before becoming ready (code ${child.exitCode}): ${output()}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${BINARY} not ready after ${READY_TIMEOUT_MS} ms: ${output()}`);
}

export async function startFakeGcs(): Promise<Emulator | undefined> {
  const bin = findBinary();
  if (!bin) {
    if (process.env.REQUIRE_EMULATORS === "1") {
      throw new Error(`${BINARY} not installed (REQUIRE_EMULATORS=1); run scripts/install-emulators.sh`);
    }
    process.stderr.write(`SKIPPING gcs tests: ${BINARY} not installed; run scripts/install-emulators.sh\n`);
    return undefined;
  }

  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  let out = "";
  const child = spawn(
    bin,
    [
      "-scheme", "http",
      "-host", "127.0.0.1",
      "-port", String(port),
      "-backend", "memory",
      "-public-host", `127.0.0.1:${port}`,
      "-external-url", endpoint,
      "-log-level", "error",
    ],
    { detached: false, stdio: ["ignore", "pipe", "pipe"] },
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
  };

  try {
    await waitReady(`${endpoint}/storage/v1/b`, child, () => out.trim().split("\n").slice(-3).join(" | "));
  } catch (err) {
    await stop();
    throw err;
  }

  const env: Record<string, string> = { STORAGE_EMULATOR_HOST: endpoint, GOOGLE_CLOUD_PROJECT: "test" };

  return {
    scheme: "gs",
    name: BINARY,
    env,
    // The emulator accepts every credential; see the file comment.
    badCredentialsEnv: { ...env },
    adapterOptions: { env },
    async createBucket() {
      const name = `b-${randomBytes(6).toString("hex")}`;
      const res = await fetch(`${endpoint}/storage/v1/b?project=test`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name }),
      });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`creating bucket ${name}: ${res.status} ${text}`);
      return `gs://${name}`;
    },
    missingBucketUrl() {
      return `gs://missing-${randomBytes(6).toString("hex")}`;
    },
    stop,
  };
}
