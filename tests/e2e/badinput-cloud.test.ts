/**
 * Bad input, with the emulators where a service is involved: each gets one clear line, the
 * documented exit code, and loses nothing.
 *
 * - bad credentials, a missing bucket/container, no permission to write → exit 2 once, not one
 *   failure per object, quickly;
 * - malformed URLs → exit 2, one line;
 * - a corrupt, truncated, foreign or newer-schema checkpoint → exit 2 with the --fresh hint, the
 *   file left byte-for-byte untouched; --fresh then works and keeps the old file aside;
 * - a second process on a running job → exit 2 "already running";
 * - a destination folder that turns read-only mid-run → those objects failed (not done), resume
 *   finishes once it is writable again;
 * - a key the destination cannot hold → that object fails with its reason in the report.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { ContainerSASPermissions, StorageSharedKeyCredential, generateBlobSASQueryParameters } from "@azure/storage-blob";
import { afterAll, describe, expect, it } from "vitest";
import { startMinio } from "../emulators/minio.js";
import { startFakeGcs } from "../emulators/fakegcs.js";
import { DEV_ACCOUNT, DEV_KEY, startAzurite, type AzuriteEmulator } from "../emulators/azurite.js";
import type { Emulator } from "../emulators/types.js";
import { emulatorHostOf, envThroughProxy, startFaultProxy } from "../chaos/proxy.js";
import { checkpointStates, explain, jobFile, objectEvents, runCli, seededBytes, spawnCli, tempDir, treeDigest, type Run } from "../chaos/harness.js";
import { readReportRows } from "../../src/report.js";

const [minio, fakeGcs, azurite] = await Promise.all([startMinio(), startFakeGcs(), startAzurite()]);
afterAll(async () => {
  await Promise.all([minio?.stop(), fakeGcs?.stop(), azurite?.stop()]);
});

const sha = (file: string) => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
const stderrLines = (r: Run) => r.stderr.trim().split("\n").filter(Boolean);

function smallTree(root: string, n: number): void {
  for (let i = 0; i < n; i++) {
    const p = path.join(root, `d${i % 4}`, `f${i}.bin`);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, seededBytes(100 + i, i + 1));
  }
}

/** One line, exit 2, no object touched, quick. */
function expectStopsOnce(r: Run, mention: RegExp): void {
  expect(r.code, explain(r)).toBe(2);
  expect(stderrLines(r), r.stderr).toHaveLength(1);
  expect(r.stderr).toMatch(mention);
  expect(objectEvents(r)).toEqual([]);
  expect(r.ms).toBeLessThan(20_000);
}

const services: [string, Emulator | undefined, boolean][] = [
  ["s3 (minio)", minio, true],
  // fake-gcs-server accepts any credential: only the missing bucket applies.
  ["gcs (fake-gcs-server)", fakeGcs, false],
  ["azure (azurite)", azurite, true],
];

for (const [name, emu, checksCredentials] of services) {
  describe.skipIf(!emu)(`${name}: configuration errors stop the run once (exit 2)`, () => {
    const base = tempDir(`bad-${name.split(" ")[0]}`);
    const src = path.join(base, "src");
    smallTree(src, 40);
    const env = (e: Record<string, string>) => ({ ...e, MIGRATE_STATE_DIR: path.join(base, "state") });

    it.skipIf(!checksCredentials)("bad credentials, as source and as destination", async () => {
      const bucket = await emu!.createBucket();
      const asDst = await runCli([src, bucket, "--json"], { env: env(emu!.badCredentialsEnv) });
      expectStopsOnce(asDst, /denied|credential|authenticat|signature/i);
      const out = path.join(base, "out-badcreds");
      const asSrc = await runCli([bucket, out, "--json"], { env: env(emu!.badCredentialsEnv) });
      expectStopsOnce(asSrc, /denied|credential|authenticat|signature/i);
      expect(fs.existsSync(out)).toBe(false);
    });

    it("a missing bucket or container, as source and as destination", async () => {
      const missing = emu!.missingBucketUrl();
      const asDst = await runCli([src, missing, "--json"], { env: env(emu!.env) });
      expectStopsOnce(asDst, new RegExp(missing.split("/").pop()!));
      const out = path.join(base, "out-missing");
      const asSrc = await runCli([missing, out, "--json"], { env: env(emu!.env) });
      expectStopsOnce(asSrc, new RegExp(missing.split("/").pop()!));
      expect(fs.existsSync(out)).toBe(false);
    });
  });
}

describe.skipIf(!azurite)("azure: no permission to write", () => {
  it("a read-only SAS as destination → exit 2 once, no object marked failed, resume works with a writable one", async () => {
    const emu = azurite as AzuriteEmulator;
    const base = tempDir("bad-ro-sas");
    const src = path.join(base, "src");
    smallTree(src, 40);
    const container = await emu.createBucket();
    const sas = (perms: string) =>
      generateBlobSASQueryParameters(
        {
          containerName: container.split("/").pop()!,
          permissions: ContainerSASPermissions.parse(perms),
          startsOn: new Date(Date.now() - 5 * 60_000),
          expiresOn: new Date(Date.now() + 3600_000),
        },
        new StorageSharedKeyCredential(DEV_ACCOUNT, DEV_KEY),
      ).toString();
    const envWith = (token: string) => ({
      AZURE_STORAGE_CONNECTION_STRING: `BlobEndpoint=${emu.blobEndpoint};`,
      AZURE_STORAGE_SAS_TOKEN: token,
      MIGRATE_STATE_DIR: path.join(base, "state"),
    });
    const r = await runCli([src, container, "--json"], { env: envWith(sas("rl")) });
    expect(r.code, explain(r)).toBe(2);
    expect(stderrLines(r).filter((l) => l.startsWith("error:")), r.stderr).toHaveLength(1);
    expect(r.stderr).toMatch(/PermissionDenied|not authorized|permission/i);
    expect(objectEvents(r, "failed")).toEqual([]);
    expect(r.ms).toBeLessThan(20_000);
    // Nothing lost: no object is recorded failed or done, so resume has everything to do.
    const states = [...checkpointStates(path.join(base, "state")).values()];
    expect(states.filter((s) => s !== "pending")).toEqual([]);
    const again = await runCli(["resume", "--json"], { env: envWith(sas("racwdl")) });
    expect(again.code, explain(again)).toBe(0);
    expect(objectEvents(again, "done")).toHaveLength(40);
  });
});

describe("malformed locations → exit 2, one line", () => {
  const cases: [string, string][] = [
    ["s3://", "/tmp/x"],
    ["az://onlyaccount", "/tmp/x"],
    ["gs:/x", "/tmp/x"],
    ["gs://", "/tmp/x"],
    ["/tmp", "az://acct/"],
    ["/tmp", "s3:///key"],
  ];
  for (const [a, b] of cases) {
    it(`${a} ${b}`, async () => {
      const r = await runCli([a, b], { env: { MIGRATE_STATE_DIR: tempDir("bad-url") } });
      expect(r.code, explain(r)).toBe(2);
      expect(stderrLines(r), r.stderr).toHaveLength(1);
      expect(r.stderr).toMatch(/^error: /);
      expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/); // no stack trace
    });
  }
});

/** A job left unfinished (one object cannot be placed), ready to have its checkpoint damaged. */
async function unfinishedJob(tag: string) {
  const base = tempDir(tag);
  const src = path.join(base, "src");
  const dst = path.join(base, "dst");
  const state = path.join(base, "state");
  // Enough rows that the objects table spans many pages.
  for (let i = 0; i < 600; i++) {
    const p = path.join(src, `d${i % 10}`, `file-with-a-longish-name-${String(i).padStart(5, "0")}.txt`);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, `content ${i}\n`);
  }
  fs.mkdirSync(path.join(src, "blocked"), { recursive: true });
  fs.writeFileSync(path.join(src, "blocked", "x.txt"), "x");
  fs.mkdirSync(dst, { recursive: true });
  fs.writeFileSync(path.join(dst, "blocked"), "a file where a folder is needed");
  const env = { MIGRATE_STATE_DIR: state };
  const r = await runCli([src, dst], { env });
  expect(r.code, explain(r)).toBe(1);
  return { base, src, dst, state, env, file: jobFile(state) };
}

/** Overwrite one whole page in the middle of the `objects` table's data with garbage. */
function damageObjectsPage(file: string): void {
  const db = new Database(file, { readonly: true });
  const pageSize = db.pragma("page_size", { simple: true }) as number;
  // The table b-tree's pages, from its root: interior pages list their children.
  const root = (db.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'objects'").get() as { rootpage: number }).rootpage;
  db.close();
  const buf = fs.readFileSync(file);
  const leaves: number[] = [];
  const walk = (page: number) => {
    const off = (page - 1) * pageSize + (page === 1 ? 100 : 0);
    const type = buf[off];
    if (type === 13) return void leaves.push(page); // table leaf
    if (type !== 5) return; // not a table interior page
    const cells = buf.readUInt16BE(off + 3);
    for (let i = 0; i < cells; i++) walk(buf.readUInt32BE((page - 1) * pageSize + buf.readUInt16BE(off + 12 + 2 * i)));
    walk(buf.readUInt32BE(off + 8));
  };
  walk(root);
  expect(leaves.length).toBeGreaterThan(4);
  const victim = leaves[Math.floor(leaves.length / 2)];
  buf.fill(0x5a, (victim - 1) * pageSize, victim * pageSize);
  fs.writeFileSync(file, buf);
}

const damages: [string, (file: string) => void, RegExp][] = [
  ["a corrupt header", (f) => {
    const b = fs.readFileSync(f);
    b.fill(0x21, 0, 100);
    fs.writeFileSync(f, b);
  }, /damaged|not a database|cannot be opened/],
  ["a corrupt page of object rows", damageObjectsPage, /damaged|malformed/],
  ["a truncated file", (f) => fs.truncateSync(f, Math.floor(fs.statSync(f).size / 2)), /damaged|malformed|truncated/],
  ["a foreign SQLite database", (f) => {
    fs.rmSync(f);
    const db = new Database(f);
    db.exec("CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT); INSERT INTO meta VALUES ('app', 'something-else'); CREATE TABLE notes (x)");
    db.close();
  }, /not a cloudmigrate checkpoint/],
  ["a text file", (f) => fs.writeFileSync(f, "these are not the rows you are looking for\n".repeat(50)), /damaged|not a database|cannot be opened/],
  ["a newer schema", (f) => {
    const db = new Database(f);
    db.prepare("UPDATE meta SET v = '999' WHERE k = 'schema_version'").run();
    db.close();
  }, /newer/],
];

describe("a checkpoint that cannot be used is refused, never overwritten", () => {
  for (const [what, damage, why] of damages) {
    it(what, async () => {
      const j = await unfinishedJob("bad-ckpt");
      // Fold the WAL into the file so the damage is all there is.
      const db = new Database(j.file);
      db.pragma("wal_checkpoint(TRUNCATE)");
      db.close();
      damage(j.file);
      const damaged = sha(j.file);
      const jobsDir = path.dirname(j.file);
      const before = fs.readdirSync(jobsDir).sort();

      for (const args of [[j.src, j.dst], ["resume", path.basename(j.file, ".sqlite")]]) {
        const r = await runCli(args, { env: j.env });
        expect(r.code, `${args.join(" ")}: ${explain(r)}`).toBe(2);
        expect(r.stderr).toMatch(why);
        expect(r.stderr).toMatch(/--fresh/);
        expect(stderrLines(r), r.stderr).toHaveLength(1);
        expect(sha(j.file), `${args.join(" ")} changed the damaged checkpoint`).toBe(damaged);
      }
      expect(fs.readdirSync(jobsDir).sort()).toEqual(before);
      const jobs = await runCli(["jobs"], { env: j.env });
      expect(jobs.code, explain(jobs)).toBe(0);
      expect(jobs.stdout).toMatch(/unreadable/);

      fs.rmSync(path.join(j.dst, "blocked"));
      const fresh = await runCli([j.src, j.dst, "--fresh"], { env: j.env });
      expect(fresh.code, explain(fresh)).toBe(0);
      expect(treeDigest(j.dst)).toEqual(treeDigest(j.src));
      const aside = fs.readdirSync(jobsDir).filter((f) => !/-(wal|shm)$/.test(f) && f.includes(".replaced-"));
      expect(aside).toHaveLength(1);
      expect(sha(path.join(jobsDir, aside[0]))).toBe(damaged);
    });
  }
});

describe("an unreadable checkpoint is not passed over", () => {
  it("`resume` and `status` without a job id say the job cannot be read (exit 2), not that there is nothing", async () => {
    const j = await unfinishedJob("bad-ckpt-noarg");
    const db = new Database(j.file);
    db.prepare("UPDATE meta SET v = '999' WHERE k = 'schema_version'").run();
    db.close();
    const damaged = sha(j.file);
    for (const args of [["resume"], ["status"]]) {
      const r = await runCli(args, { env: j.env });
      expect(r.code, `${args[0]}: ${explain(r)}\nstdout: ${r.stdout}`).toBe(2);
      expect(r.stderr).toMatch(/newer/);
      expect(sha(j.file)).toBe(damaged);
    }
  });
});

describe.skipIf(!minio)("two processes on one job", () => {
  it("the second refuses (exit 2, already running); after the first is killed, the job resumes", { timeout: 60_000 }, async () => {
    const host = emulatorHostOf(minio!.env);
    // Uploads are held 3 s at the proxy, so the first run is still going when the second starts.
    const proxy = await startFaultProxy({ target: `http://${host}`, latencyMs: (r) => (r.method === "PUT" ? 3000 : 0) });
    try {
      const base = tempDir("bad-twice");
      const src = path.join(base, "src");
      smallTree(src, 30);
      const bucket = await minio!.createBucket();
      const env = { ...envThroughProxy(minio!.env, host, proxy), MIGRATE_STATE_DIR: path.join(base, "state") };
      const first = spawnCli([src, bucket, "--json"], { env });
      const firstClosed = new Promise<void>((r) => first.on("close", () => r()));
      const deadline = Date.now() + 20_000;
      while (!proxy.log.some((e) => e.method === "PUT")) {
        if (Date.now() > deadline) throw new Error("the first run never started uploading");
        await new Promise((r) => setTimeout(r, 50));
      }
      const second = await runCli([src, bucket, "--json"], { env });
      expect(second.code, explain(second)).toBe(2);
      expect(second.stderr).toMatch(/already running/);
      expect(stderrLines(second)).toHaveLength(1);
      expect(objectEvents(second)).toEqual([]);
      const resume = await runCli(["resume"], { env });
      expect(resume.code, explain(resume)).toBe(2);
      expect(resume.stderr).toMatch(/already running/);

      first.kill("SIGKILL");
      await firstClosed;
      proxy.configure({ latencyMs: 0 });
      const third = await runCli([src, bucket, "--json"], { env });
      expect(third.code, explain(third)).toBe(0);
      const diff = await runCli(["diff", src, bucket], { env: { ...minio!.env, MIGRATE_STATE_DIR: path.join(base, "state") } });
      expect(diff.code, explain(diff)).toBe(0);
    } finally {
      await proxy.close();
    }
  });
});

describe("a destination that turns read-only mid-run", () => {
  it("objects that cannot be written are failed, not done; resume finishes once writable", { timeout: 60_000 }, async (ctx) => {
    // Permissions do not bind root, so as root the CLI runs as 'nobody' (as in fs-cli.test.ts).
    const asRoot = process.getuid?.() === 0;
    const ids = asRoot ? { uid: 65534, gid: 65534 } : {};
    const base = tempDir("bad-ro");
    const src = path.join(base, "src");
    const dst = path.join(base, "dst");
    const state = path.join(base, "state");
    // "a/" is copied first (keys in order), "z/" last: "z" turns read-only while "a" is copied.
    for (let i = 0; i < 1500; i++) {
      const p = path.join(src, i < 1200 ? "a" : "z", `f${String(i).padStart(5, "0")}.txt`);
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.writeFileSync(p, `bytes of ${i}\n`);
    }
    fs.mkdirSync(path.join(dst, "z"), { recursive: true });
    fs.mkdirSync(state, { recursive: true });
    if (asRoot) {
      for (const p of [base, src, dst, path.join(dst, "z"), state]) fs.chmodSync(p, 0o777);
      const probe = await runCli(["--version"], ids);
      if (probe.code !== 0) ctx.skip("cannot run as another user here");
    }
    const env = { MIGRATE_STATE_DIR: state };
    let locked = false;
    const r = await runCli([src, dst, "--json", "--concurrency", "4"], {
      env,
      ...ids,
      onStdout: (out) => {
        if (!locked && (out.match(/"event":"object"/g) ?? []).length >= 100) {
          locked = true;
          fs.chmodSync(path.join(dst, "z"), 0o555);
        }
      },
    });
    expect(locked, "the run ended before the folder could be locked").toBe(true);
    expect(r.code, explain(r)).toBe(1);
    const failed = objectEvents(r, "failed").map((e) => String(e.key));
    expect(failed.length).toBe(300);
    expect(failed.every((k) => k.startsWith("z/"))).toBe(true);
    expect(String(objectEvents(r, "failed")[0].error)).toMatch(/PermissionDenied|EACCES|permission/i);
    // Failed, not done; and nothing half-written left in the locked folder.
    const states = checkpointStates(state);
    for (const k of failed) expect(states.get(k)).toBe("failed");
    expect(fs.readdirSync(path.join(dst, "z"))).toEqual([]);
    for (const [k, s] of states) if (s === "done") expect(fs.existsSync(path.join(dst, k)), k).toBe(true);

    fs.chmodSync(path.join(dst, "z"), 0o777);
    const again = await runCli(["resume", "--json"], { env, ...ids });
    expect(again.code, explain(again)).toBe(0);
    expect(objectEvents(again, "done").map((e) => String(e.key)).sort()).toEqual([...failed].sort());
    expect(treeDigest(dst)).toEqual(treeDigest(src));
  });
});

describe.skipIf(!azurite)("a key the destination cannot hold", () => {
  it("fails that object with its reason in the report; the rest is copied", async () => {
    const base = tempDir("bad-key");
    const src = path.join(base, "src");
    smallTree(src, 10);
    fs.writeFileSync(path.join(src, "d0", "trailing-dot."), "Azure would drop the dot");
    const container = await azurite!.createBucket();
    const report = path.join(base, "report.ndjson");
    const r = await runCli([src, container, "--json", "--report", report], { env: { ...azurite!.env, MIGRATE_STATE_DIR: path.join(base, "state") } });
    expect(r.code, explain(r)).toBe(1);
    expect(objectEvents(r, "done")).toHaveLength(10);
    expect(objectEvents(r, "failed").map((e) => e.key)).toEqual(["d0/trailing-dot."]);
    const row = readReportRows(report).find((x) => x.key === "d0/trailing-dot.");
    expect(row?.state).toBe("failed");
    expect(`${row?.reason} ${row?.error}`).toMatch(/trailing dot/i);
  });
});
