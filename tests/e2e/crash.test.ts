/**
 * Crash: SIGKILL a migration part-way, run it again. The destination must end byte-identical,
 * and no object the checkpoint had recorded as done may be copied again.
 */
import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { expect, it } from "vitest";
import { objectEvents, parseEvents, runCli, startCli, summaryOf, tempDir, treeDigest } from "../helpers/cli.js";
import { makeManySmall } from "../helpers/fixtures.js";

function doneKeys(stateDir: string): Set<string> {
  const dir = path.join(stateDir, "jobs");
  const file = fs.readdirSync(dir).find((f) => f.endsWith(".sqlite"));
  const db = new Database(path.join(dir, file!), { readonly: true });
  try {
    return new Set((db.prepare("SELECT key FROM objects WHERE state = 'done'").all() as { key: string }[]).map((r) => r.key));
  } finally {
    db.close();
  }
}

it("SIGKILL part-way through 2,500 files, then run again: identical, nothing done is sent twice", async () => {
  const base = tempDir("crash");
  const src = path.join(base, "src");
  const dst = path.join(base, "dst");
  const state = path.join(base, "state");
  const total = 2_500;
  makeManySmall(src, total, 700);
  const env = { MIGRATE_STATE_DIR: state };

  // First run: kill -9 once a few hundred objects are reported done.
  const child = startCli([src, dst, "--json", "--concurrency", "4"], { env });
  let out = "";
  const killedAfter = await new Promise<number>((resolve) => {
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const n = (out.match(/"event":"object"/g) ?? []).length;
      if (n >= 400 && child.exitCode === null && !child.killed) {
        child.kill("SIGKILL");
        resolve(n);
      }
    });
    child.on("close", () => resolve(-1));
  });
  await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.on("close", r)));
  expect(killedAfter, "the run finished before it could be killed").toBeGreaterThan(0);
  expect(child.signalCode).toBe("SIGKILL");

  const reportedDone = parseEvents(out.slice(0, out.lastIndexOf("\n")))
    .filter((e) => e.event === "object" && e.state === "done")
    .map((e) => String(e.key));
  const done = doneKeys(state);
  // Every completion is durable before it is reported.
  for (const k of reportedDone) expect(done.has(k)).toBe(true);
  expect(done.size).toBeGreaterThanOrEqual(400);
  expect(done.size).toBeLessThan(total);

  const second = await runCli([src, dst, "--json"], { env });
  expect(second.code).toBe(0);
  expect(second.stderr).toMatch(/Resuming job/);
  const recopied = objectEvents(second, "done").filter((e) => done.has(String(e.key)));
  expect(recopied).toEqual([]);
  expect(summaryOf(second).copied).toBe(total - done.size);
  expect(treeDigest(dst)).toEqual(treeDigest(src)); // also: no temporary files left behind
});
