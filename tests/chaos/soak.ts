/**
 * The soak: `npm run soak -- --minutes N [--seed S] [--rate 0.1] [--services s3,gcs,azure]`.
 * Not part of the test suite (build first: `npx tsc -p tsconfig.json`).
 *
 * Repeats the chaos migration for N minutes: for each available emulator in turn, a fresh
 * fixture goes fs → cloud → fs through the fault-injecting proxy, each leg SIGKILLed at random
 * moments and resumed until it finishes. At the end (and after every round) it prints what it
 * survived: faults injected by kind, kills, runs, and the count of objects lost (missing or
 * different at the end) or transferred twice (reported done again after the checkpoint recorded
 * them done) — both must be 0. Exit code 0 when they are, 1 otherwise.
 */
import fs from "node:fs";
import path from "node:path";
import { startMinio } from "../emulators/minio.js";
import { startFakeGcs } from "../emulators/fakegcs.js";
import { startAzurite } from "../emulators/azurite.js";
import type { Emulator } from "../emulators/types.js";
import { FAULT_KINDS, emulatorHostOf, envThroughProxy, prng, startFaultProxy, type FaultKind } from "./proxy.js";
import { countObjectEvents, doneKeys, hasJob, makeMixed, parseEvents, spawnCli, tempDir, treeDigest, type Run } from "./harness.js";

interface Args {
  minutes: number;
  seed: number;
  rate: number;
  services: string[];
}

function parseArgs(argv: string[]): Args {
  const a: Args = { minutes: 5, seed: Date.now() % 1_000_000, rate: 0.1, services: ["s3", "gcs", "azure"] };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    if (argv[i] === "--minutes") a.minutes = Number(v);
    else if (argv[i] === "--seed") a.seed = Number(v);
    else if (argv[i] === "--rate") a.rate = Number(v);
    else if (argv[i] === "--services") a.services = v.split(",");
    else if (argv[i] === "--help" || argv[i] === "-h") {
      process.stdout.write("usage: npm run soak -- --minutes N [--seed S] [--rate 0.1] [--services s3,gcs,azure]\n");
      process.exit(0);
    } else continue;
    i++;
  }
  if (!(a.minutes > 0) || !(a.rate >= 0 && a.rate < 1) || !Number.isFinite(a.seed)) {
    process.stderr.write("soak: --minutes must be > 0, --rate in [0, 1), --seed a number\n");
    process.exit(2);
  }
  return a;
}

const FLAGS = ["--json", "--no-progress", "--concurrency", "8", "--retries", "10", "--timeout", "2", "--multipart-threshold", "6M", "--part-size", "5M"];

const totals = {
  rounds: 0,
  runs: 0,
  kills: 0,
  objects: 0,
  lost: 0,
  twice: 0,
  /** Runs that ended with an exit code other than 0 (or our own SIGKILL): listed, then resumed. */
  unexpected: [] as string[],
  faults: Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>,
};

function summary(label: string): string {
  const faults = FAULT_KINDS.filter((k) => totals.faults[k]).map((k) => `${k}=${totals.faults[k]}`).join(" ") || "none";
  const sum = Object.values(totals.faults).reduce((x, y) => x + y, 0);
  return [
    `== soak ${label}: ${totals.rounds} rounds, ${totals.runs} runs, ${totals.kills} kills survived, ${totals.objects} objects verified`,
    `   faults injected and survived: ${sum} (${faults})`,
    `   runs ending unexpectedly (then resumed): ${totals.unexpected.length}${totals.unexpected.length ? "\n     " + totals.unexpected.slice(-10).join("\n     ") : ""}`,
    `   objects lost: ${totals.lost}, transferred twice: ${totals.twice}`,
  ].join("\n");
}

/** One run, SIGKILLed after `killAfter` object events (or never, when undefined). */
function runOnce(args: string[], env: Record<string, string>, killAfter: number | undefined): Promise<Run> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawnCli(args, { env });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => {
      stdout += d.toString();
      if (killAfter !== undefined && countObjectEvents(stdout) >= killAfter && child.exitCode === null) child.kill("SIGKILL");
    });
    child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const guard = setTimeout(() => child.kill("SIGKILL"), 300_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal, stdout, stderr, events: parseEvents(stdout.slice(0, stdout.lastIndexOf("\n") + 1)), ms: Date.now() - started });
    });
  });
}

/** Run one leg to completion through kills and unexpected endings; counts into `totals`. */
async function leg(label: string, args: string[], env: Record<string, string>, state: string, random: () => number, total: number): Promise<boolean> {
  const recorded = new Set<string>();
  const kills = Math.floor(random() * 4);
  for (let attempt = 0; attempt < 40; attempt++) {
    const killAfter = attempt < kills ? 1 + Math.floor(random() * Math.max(1, total / (kills + 1))) : undefined;
    const r = await runOnce(args, env, killAfter);
    totals.runs++;
    for (const e of r.events) {
      if (e.event === "object" && e.state === "done" && recorded.has(String(e.key))) totals.twice++;
    }
    if (r.signal === "SIGKILL" && killAfter !== undefined) totals.kills++;
    else if (r.code === 0) return true;
    else {
      const failed = r.events.filter((e) => e.event === "object" && e.state === "failed").map((e) => `${String(e.key)}: ${String(e.error)}`);
      totals.unexpected.push(`${label}: exit ${r.code ?? r.signal}: ${r.stderr.trim().split("\n").slice(-1)[0] ?? ""}${failed.length ? ` [${failed.join("; ")}]` : ""}`);
    }
    if (hasJob(state)) for (const k of doneKeys(state)) recorded.add(k);
  }
  totals.unexpected.push(`${label}: gave up after 40 runs`);
  return false;
}

async function round(emu: Emulator, random: () => number, seed: number, rate: number): Promise<void> {
  const host = emulatorHostOf(emu.env);
  const proxy = await startFaultProxy({ target: `http://${host}`, seed, rate, stallMs: 3500 });
  const base = tempDir(`soak-${emu.scheme}`);
  try {
    const src = path.join(base, "src");
    const back = path.join(base, "back");
    const total = makeMixed(src, { count: 200 + Math.floor(random() * 200), big: 1 + Math.floor(random() * 2), seed });
    const bucket = await emu.createBucket();
    const env = (state: string) => ({ ...envThroughProxy(emu.env, host, proxy), MIGRATE_STATE_DIR: state, MIGRATE_RETRY_BASE_MS: "10" });
    const upState = path.join(base, "state-up");
    const downState = path.join(base, "state-down");
    const up = await leg(`${emu.name} up`, [src, bucket, ...FLAGS], env(upState), upState, random, total);
    const down = up && (await leg(`${emu.name} down`, [bucket, back, ...FLAGS], env(downState), downState, random, total));
    if (down) {
      const want = treeDigest(src);
      const got = treeDigest(back);
      for (const [k, v] of want) if (got.get(k) !== v) totals.lost++;
      totals.objects += want.size;
    }
    for (const k of FAULT_KINDS) totals.faults[k] += proxy.stats.faults[k];
    totals.rounds++;
  } finally {
    await proxy.close();
    fs.rmSync(base, { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  process.stdout.write(`soak: ${args.minutes} min, seed ${args.seed}, fault rate ${args.rate}, services ${args.services.join(",")}\n`);
  const starters: Record<string, () => Promise<Emulator | undefined>> = { s3: startMinio, gcs: startFakeGcs, azure: startAzurite };
  const emus: Emulator[] = [];
  try {
    for (const s of args.services) {
      const e = await starters[s]?.();
      if (e) emus.push(e);
    }
    if (!emus.length) {
      process.stderr.write("soak: no emulator available\n");
      return 2;
    }
    const random = prng(args.seed);
    const deadline = Date.now() + args.minutes * 60_000;
    for (let i = 0; Date.now() < deadline; i++) {
      const emu = emus[i % emus.length];
      await round(emu, random, args.seed + i, args.rate);
      process.stdout.write(summary(`after round ${i + 1} (${emu.name})`) + "\n");
    }
  } finally {
    await Promise.all(emus.map((e) => e.stop()));
  }
  process.stdout.write(summary("done") + "\n");
  return totals.lost === 0 && totals.twice === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(2);
  },
);
