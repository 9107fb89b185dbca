/** End-to-end through the built CLI on temp dirs: what a user runs, checked byte for byte. */
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { objectEvents, runCli, startCli, summaryOf, tempDir, treeDigest } from "../helpers/cli.js";
import { makeTree } from "../helpers/fixtures.js";
import { readReportRows } from "../../src/report.js";

function setup(files = 80) {
  const base = tempDir("e2e");
  const src = path.join(base, "src");
  const dst = path.join(base, "dst");
  const state = path.join(base, "state");
  makeTree(src, { files });
  return { base, src, dst, state, env: { MIGRATE_STATE_DIR: state } };
}

describe("migrate between local folders", () => {
  it("copies a tree byte-identically, then a second run copies nothing", async () => {
    const t = setup();
    const r1 = await runCli([t.src, t.dst, "--json"], { env: t.env });
    expect(r1.stderr).not.toMatch(/error/i);
    expect(r1.code).toBe(0);
    expect(treeDigest(t.dst)).toEqual(treeDigest(t.src));
    expect(summaryOf(r1).copied).toBe(80);

    const r2 = await runCli([t.src, t.dst, "--json"], { env: t.env });
    expect(r2.code).toBe(0);
    expect(summaryOf(r2).copied).toBe(0);
    expect(summaryOf(r2).unchanged).toBe(80);
    expect(objectEvents(r2)).toEqual([]);
  });

  it("copies a big file in one go, counting its bytes once", async () => {
    const t = setup(3);
    // 48 MiB: big enough for the destination to report its progress while it is written.
    const big = path.join(t.src, "big.bin");
    fs.writeFileSync(big, "");
    fs.truncateSync(big, 48 * 1024 * 1024 - 5);
    fs.appendFileSync(big, "tail!");
    const files = fs.readdirSync(t.src, { recursive: true, withFileTypes: true }).filter((d) => d.isFile());
    const total = files.reduce((a, d) => a + fs.statSync(path.join(d.parentPath, d.name)).size, 0);
    const r = await runCli([t.src, t.dst, "--json"], { env: t.env });
    expect(r.code).toBe(0);
    expect(treeDigest(t.dst)).toEqual(treeDigest(t.src));
    expect(summaryOf(r)).toMatchObject({ copied: files.length, copiedBytes: total, bytesSent: total });
  });

  it("keeps mtimes, and picks up changed and new files", async () => {
    const t = setup(30);
    expect((await runCli([t.src, t.dst], { env: t.env })).code).toBe(0);
    const f = "dir0/sub0/file-0.dat";
    expect(fs.statSync(path.join(t.dst, f)).mtimeMs).toBeCloseTo(fs.statSync(path.join(t.src, f)).mtimeMs, -1);
    fs.appendFileSync(path.join(t.src, f), "more");
    fs.writeFileSync(path.join(t.src, "new.txt"), "new");
    const r = await runCli([t.src, t.dst, "--json"], { env: t.env });
    expect(r.code).toBe(0);
    const keys = objectEvents(r, "done").map((e) => [e.key, e.action]);
    expect(keys.sort()).toEqual([[f, "update"], ["new.txt", "copy"]]);
    expect(treeDigest(t.dst)).toEqual(treeDigest(t.src));
  });

  it("the dry-run report lists exactly the keys and actions the run then performs", async () => {
    const t = setup(40);
    // Give the destination a mix: one same, one different, one extra.
    fs.mkdirSync(path.join(t.dst, "odd"), { recursive: true });
    fs.copyFileSync(path.join(t.src, "odd/with space.txt"), path.join(t.dst, "odd/with space.txt"));
    const st = fs.statSync(path.join(t.src, "odd/with space.txt"));
    fs.utimesSync(path.join(t.dst, "odd/with space.txt"), st.atime, st.mtime);
    fs.writeFileSync(path.join(t.dst, "odd/.hidden"), "different size");
    fs.writeFileSync(path.join(t.dst, "only-here.txt"), "extra");
    const before = treeDigest(t.dst);

    for (const ext of ["csv", "json", "ndjson"]) {
      const plan = path.join(t.base, `plan.${ext}`);
      const d = await runCli([t.src, t.dst, "--dry-run", "--delete", "--report", plan], { env: t.env });
      expect(d.code).toBe(1); // differences found
      expect(fs.existsSync(plan)).toBe(true);
    }
    expect(treeDigest(t.dst)).toEqual(before); // a dry run touches nothing
    const csv = fs.readFileSync(path.join(t.base, "plan.csv"), "utf8");
    expect(csv.split("\n")[0]).toBe("symbol,action,key,size,reason,state,error,attempts");
    expect(csv).toContain("-,delete,only-here.txt,5,only at destination,planned,,0");

    const planned = readReportRows(path.join(t.base, "plan.ndjson"));
    const byKey = new Map(planned.map((r) => [r.key, r]));
    expect(byKey.get("odd/with space.txt")?.action).toBe("skip");
    expect(byKey.get("odd/.hidden")?.action).toBe("update");
    expect(byKey.get("odd/.hidden")?.reason).toBe("size 19 → 14");
    expect(byKey.get("only-here.txt")?.symbol).toBe("-");
    expect(byKey.get("empty/zero.bin")).toMatchObject({ symbol: "+", action: "copy", reason: "missing at destination" });

    const run = await runCli([t.src, t.dst, "--delete", "--json", "--report", path.join(t.base, "run.json")], { env: t.env });
    expect(run.code).toBe(0);
    const performed = objectEvents(run, "done").map((e) => `${e.action} ${e.key}`).sort();
    const promised = planned.filter((r) => ["copy", "update", "delete"].includes(r.action)).map((r) => `${r.action} ${r.key}`).sort();
    expect(performed).toEqual(promised);
    const runRows = readReportRows(path.join(t.base, "run.json"));
    expect(runRows.map((r) => [r.key, r.action])).toEqual(planned.map((r) => [r.key, r.action]));
    expect(runRows.every((r) => r.state === "done")).toBe(true);
    expect(treeDigest(t.dst)).toEqual(treeDigest(t.src));
  });

  it("--delete removes extras only when given", async () => {
    const t = setup(10);
    fs.mkdirSync(t.dst, { recursive: true });
    fs.writeFileSync(path.join(t.dst, "extra.txt"), "x");
    expect((await runCli([t.src, t.dst], { env: t.env })).code).toBe(0);
    expect(fs.existsSync(path.join(t.dst, "extra.txt"))).toBe(true);
    const r = await runCli([t.src, t.dst, "--delete", "--json"], { env: t.env });
    expect(r.code).toBe(0);
    expect(summaryOf(r).deleted).toBe(1);
    expect(fs.existsSync(path.join(t.dst, "extra.txt"))).toBe(false);
  });

  it("diff exits 0 when the same, 1 when different, 2 on error", async () => {
    const t = setup(20);
    expect((await runCli(["diff", t.src, t.dst], { env: t.env })).code).toBe(1);
    expect((await runCli([t.src, t.dst], { env: t.env })).code).toBe(0);
    expect((await runCli(["diff", t.src, t.dst], { env: t.env })).code).toBe(0);
    expect((await runCli(["diff", t.src, t.dst, "--checksum"], { env: t.env })).code).toBe(0);
    fs.writeFileSync(path.join(t.dst, "dir1/sub1/file-1.dat"), Buffer.alloc(fs.statSync(path.join(t.src, "dir1/sub1/file-1.dat")).size, 1));
    const st = fs.statSync(path.join(t.src, "dir1/sub1/file-1.dat"));
    fs.utimesSync(path.join(t.dst, "dir1/sub1/file-1.dat"), st.atime, st.mtime);
    expect((await runCli(["diff", t.src, t.dst], { env: t.env })).code).toBe(0); // same size and time
    const c = await runCli(["diff", t.src, t.dst, "--checksum", "--report", path.join(t.base, "c.ndjson")], { env: t.env });
    expect(c.code).toBe(1);
    expect(readReportRows(path.join(t.base, "c.ndjson")).find((r) => r.key === "dir1/sub1/file-1.dat")?.reason).toBe("md5 differs");
    expect((await runCli(["diff", path.join(t.base, "nope"), t.dst], { env: t.env })).code).toBe(2);
  });

  it("--include / --exclude filter keys on both sides", async () => {
    const t = setup(30);
    const r = await runCli([t.src, t.dst, "--include", "*.txt", "--exclude", "odd/**", "--json"], { env: t.env });
    expect(r.code).toBe(0);
    const keys = [...treeDigest(t.dst).keys()].sort();
    expect(keys).toEqual(["deep/a/b/c/d/e/f.txt"]);
  });

  it("status and jobs describe the job", async () => {
    const t = setup(10);
    await runCli([t.src, t.dst], { env: t.env });
    const jobs = await runCli(["jobs"], { env: t.env });
    expect(jobs.code).toBe(0);
    expect(jobs.stdout).toContain("done");
    expect(jobs.stdout).toContain(t.src);
    const st = await runCli(["status", "--json"], { env: t.env });
    expect(st.code).toBe(0);
    const ev = st.events.find((e) => e.event === "status") as { counts: { byState: { done: { objects: number } } } };
    expect(ev.counts.byState.done.objects).toBe(13); // the fixture's minimum
  });
});

describe("bad input: one line, the documented exit code, nothing lost", () => {
  it("a missing source → exit 2 naming it", async () => {
    const t = setup(1);
    const r = await runCli([path.join(t.base, "missing"), t.dst], { env: t.env });
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain(path.join(t.base, "missing"));
    expect(fs.existsSync(t.dst)).toBe(false);
  });

  it("--debug adds a stack trace that names the TypeScript sources (the CLI runs from a bundle)", async () => {
    const t = setup(1);
    const r = await runCli([path.join(t.base, "missing"), t.dst, "--debug"], { env: t.env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: source .*missing: no such directory$/im);
    expect(r.stderr).toMatch(/at .*\/adapters\/fs\.ts:\d+:\d+/);
    expect(r.stderr).not.toMatch(/dist\/bundle/);
  });

  it("an unknown scheme → exit 2", async () => {
    const r = await runCli(["ftp://host/x", "/tmp/whatever"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown scheme/);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("source equal to or inside the destination → exit 2", async () => {
    const t = setup(1);
    expect((await runCli([t.src, t.src], { env: t.env })).code).toBe(2);
    const r = await runCli([t.src, path.join(t.src, "inner")], { env: t.env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/overlap/);
  });

  it("a reader that goes away (`| head`) ends the output, not the run", async () => {
    /** Run with stdout closed by its reader before the first line; stderr and exit code kept. */
    const closedStdout = (args: string[], env?: Record<string, string>) =>
      new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
        const child = startCli(args, { env });
        child.stdout!.destroy();
        let stderr = "";
        child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
        child.on("error", reject);
        child.on("close", (code) => resolve({ code, stderr }));
      });
    const help = await closedStdout(["--help"]);
    expect(help).toEqual({ code: 0, stderr: "" });

    const t = setup(300);
    const run = await closedStdout([t.src, t.dst, "--json"], t.env);
    expect(run.stderr).not.toMatch(/EPIPE|Error:|\n\s+at /);
    expect(run.code).toBe(0);
    expect(treeDigest(t.dst)).toEqual(treeDigest(t.src));
    const again = await runCli([t.src, t.dst, "--json"], { env: t.env });
    expect(summaryOf(again)).toMatchObject({ copied: 0, unchanged: 300 });
  });

  it("bad flags → exit 2 with a one-line message", async () => {
    const t = setup(1);
    const r = await runCli([t.src, t.dst, "--concurrency", "zero"], { env: t.env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--concurrency/);
    expect((await runCli([t.src, t.dst, "--report", "x.pdf"], { env: t.env })).code).toBe(2);
    expect((await runCli([t.src, t.dst, "--checksum", "--size-only"], { env: t.env })).code).toBe(2);
  });

  it("an object that cannot be written fails alone (exit 1); resume finishes once it can", async () => {
    const t = setup(20);
    // A file where the source has a folder: everything under odd/ cannot be placed.
    fs.mkdirSync(t.dst, { recursive: true });
    fs.writeFileSync(path.join(t.dst, "odd"), "in the way");
    const r = await runCli([t.src, t.dst, "--json"], { env: t.env });
    expect(r.code).toBe(1);
    const failed = objectEvents(r, "failed");
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.every((e) => String(e.key).startsWith("odd/"))).toBe(true);
    expect(String(failed[0].error)).toMatch(/parent folder of it is a file/);
    expect(r.stderr).toMatch(/migrate resume/);
    const st = await runCli(["status"], { env: t.env });
    expect(st.stdout).toContain("! odd/");

    fs.rmSync(path.join(t.dst, "odd"));
    const again = await runCli(["resume", "--json"], { env: t.env });
    expect(again.code).toBe(0);
    expect(objectEvents(again, "done").map((e) => e.key).sort()).toEqual(failed.map((e) => e.key).sort());
    expect(treeDigest(t.dst)).toEqual(treeDigest(t.src));
  });

  it("an unwritable destination file fails that object; resume succeeds once writable", async (ctx) => {
    // Permissions do not bind root, so as root the CLI runs as 'nobody'.
    const asRoot = process.getuid?.() === 0;
    const t = setup(30);
    fs.mkdirSync(path.join(t.dst, "dir0"), { recursive: true });
    const locked = path.join(t.dst, "dir0");
    const ids = asRoot ? { uid: 65534, gid: 65534 } : {};
    if (asRoot) {
      for (const p of [t.base, t.src, t.dst]) fs.chmodSync(p, 0o777);
      fs.mkdirSync(t.state, { mode: 0o777 });
      fs.chmodSync(t.state, 0o777);
      const probe = await runCli(["--version"], { ...ids });
      if (probe.code !== 0) ctx.skip("cannot run as another user here");
    }
    fs.chmodSync(locked, 0o555);
    const r = await runCli([t.src, t.dst, "--json"], { env: t.env, ...ids });
    expect(r.code).toBe(1);
    const failed = objectEvents(r, "failed");
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.every((e) => String(e.key).startsWith("dir0/"))).toBe(true);
    expect(String(failed[0].error)).toMatch(/PermissionDenied/);
    fs.chmodSync(locked, 0o777);
    const again = await runCli(["resume"], { env: t.env, ...ids });
    expect(again.code).toBe(0);
    expect(treeDigest(t.dst)).toEqual(treeDigest(t.src));
  });
});
