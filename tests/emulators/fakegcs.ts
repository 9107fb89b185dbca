/**
 * fake-gcs-server test harness: starts a real fake-gcs-server (in-memory backend unless told
 * otherwise) on a free loopback port, and tears it down again.
 *
 * `startFakeGcs()` resolves to an Emulator, or to undefined when the `fake-gcs-server` binary is
 * missing (after one loud line on stderr) — unless REQUIRE_EMULATORS=1, in which case it throws.
 * The server process dies with the test process (process 'exit' hook) and on `stop()`.
 *
 * fake-gcs-server accepts any credentials (and our adapter sends none to an emulator), so
 * `badCredentialsEnv` cannot make it fail: it is the working env, and GCS test targets leave the
 * bad-credential contract test out rather than fake it.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import path from "node:path";
import type { Emulator } from "./types.js";
import { findGoBinary, freePort, missingEmulator, supervise, waitReady } from "./process.js";

const BINARY = "fake-gcs-server";

/**
 * `fsRoot`: keep objects in files under a fresh folder there (`-backend filesystem`) instead of in
 * memory. The memory backend scans every object in the bucket on each insert; the filesystem one
 * does not, so it suits large object counts.
 */
export async function startFakeGcs(fsRoot?: string): Promise<Emulator | undefined> {
  const bin = findGoBinary(BINARY);
  if (!bin) return missingEmulator(BINARY, "gcs");
  const dataDir = fsRoot === undefined ? undefined : mkdtempSync(path.join(fsRoot, "fake-gcs-"));
  const backend = dataDir === undefined ? ["-backend", "memory"] : ["-backend", "filesystem", "-filesystem-root", dataDir];

  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const child = spawn(
    bin,
    [
      "-scheme", "http",
      "-host", "127.0.0.1",
      "-port", String(port),
      ...backend,
      "-public-host", `127.0.0.1:${port}`,
      "-external-url", endpoint,
      "-log-level", "error",
    ],
    { detached: false, stdio: ["ignore", "pipe", "pipe"] },
  );
  const supervised = supervise(child, dataDir);
  const { output, stop } = supervised;

  try {
    await waitReady(BINARY, `${endpoint}/storage/v1/b`, child, output);
  } catch (err) {
    await stop();
    throw err;
  }

  const env: Record<string, string> = { STORAGE_EMULATOR_HOST: endpoint, GOOGLE_CLOUD_PROJECT: "test" };

  return {
    scheme: "gs",
    name: BINARY,
    pid: child.pid,
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
