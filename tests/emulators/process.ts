/**
 * What every emulator harness needs: find its binary, a free loopback port, start the process
 * so it dies with the tests, wait until it answers, and the REQUIRE_EMULATORS rule for a
 * missing binary.
 */
import { execFileSync, type ChildProcess } from "node:child_process";
import { existsSync, rmSync, statSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

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

/**
 * A missing emulator: under REQUIRE_EMULATORS=1 that fails the run; otherwise one loud line
 * and the caller skips its suite.
 */
export function missingEmulator(binary: string, scheme: string): undefined {
  if (process.env.REQUIRE_EMULATORS === "1") {
    throw new Error(`${binary} not installed (REQUIRE_EMULATORS=1); run scripts/install-emulators.sh`);
  }
  process.stderr.write(`SKIPPING ${scheme} tests: ${binary} not installed; run scripts/install-emulators.sh\n`);
  return undefined;
}

/**
 * Keep the tail of a child's output for error messages, kill it when the test process exits,
 * and give a `stop()` that ends it (SIGTERM, then SIGKILL after 5 s). `dataDir`, the child's
 * storage, is removed once it is stopped, and at the test process's exit however that comes
 * (on tmpfs a leftover holds memory).
 */
export function supervise(child: ChildProcess, dataDir?: string): { output: () => string; stop: () => Promise<void> } {
  let out = "";
  const keep = (b: Buffer) => {
    out = (out + b.toString("utf8")).slice(-4000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const removeData = () => {
    if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
  };
  const killOnExit = () => {
    if (child.exitCode === null) child.kill("SIGKILL");
    try {
      removeData();
    } catch {
      /* at exit, a child still dying may add a file as it goes; nothing more can be done then */
    }
  };
  process.on("exit", killOnExit);
  let stopped = false;
  return {
    output: () => out.trim().split("\n").slice(-3).join(" | "),
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((r) => child.once("exit", () => r()));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
        await exited;
        clearTimeout(timer);
      }
      removeData();
      // Only now: a process that dies while this waits still kills the child and removes its data.
      process.off("exit", killOnExit);
    },
  };
}

/** Poll `url` until it answers 200, the child exits, or 30 s pass. */
export async function waitReady(name: string, url: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${name} exited before becoming ready (code ${child.exitCode}): ${output()}`);
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
  throw new Error(`${name} not ready after ${READY_TIMEOUT_MS} ms: ${output()}`);
}
