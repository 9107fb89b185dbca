import fs from "node:fs";
import { spawn } from "node:child_process";
import path from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { SqliteCheckpoint, CheckpointUnusable, SCHEMA_VERSION } from "../../checkpoints/sqlite.js";
import type { PlanRow, WorkItem } from "../../checkpoints/types.js";
import { JobDirectory, removeIfSame } from "../../checkpoints/jobs.js";
import { tempDir } from "../helpers/cli.js";
import { MigrateError } from "../../src/errors.js";

const options = { include: [], exclude: [], compare: "default" as const, delete: false };

function newStore() {
  const dir = tempDir("ckpt");
  const file = path.join(dir, "job.sqlite");
  return { dir, file, store: SqliteCheckpoint.create(file, { id: "j1", source: "/a", destination: "/b", options }) };
}

describe("sqlite checkpoint", () => {
  it("records the plan, hands out work in batches, and keeps outcomes across reopen", () => {
    const { file, store } = newStore();
    store.addPlanRows([
      { key: "a", action: "copy", reason: "missing at destination", size: 1 },
      { key: "b", action: "skip", reason: "same", size: 2 },
      { key: "c", action: "update", reason: "size 1 → 2", size: 3 },
      { key: "d", action: "copy", reason: "cannot", size: 4, error: "cannot exist at destination" },
    ]);
    store.addPlanRows([{ key: "a", action: "update", reason: "ignored: already planned", size: 9 }]);
    store.finishPlan();
    expect(store.lastPlannedKey()).toBe("d");
    const first = store.claim(1);
    expect(first.map((w) => w.key)).toEqual(["a"]);
    expect(store.claim(10).map((w) => w.key)).toEqual(["c"]);
    expect(store.claim(10)).toEqual([]);
    store.complete(first[0].id, 1);
    store.close();

    const again = SqliteCheckpoint.open(file);
    const counts = again.counts();
    expect(counts.byState).toMatchObject({ done: { objects: 2 }, pending: { objects: 1 }, failed: { objects: 1 } });
    expect(counts.byAction.copy).toEqual({ objects: 2, bytes: 5 });
    again.requeueFailed();
    expect(again.claim(10).map((w) => w.key)).toEqual(["c", "d"]);
    const rows = [...again.rows()];
    expect(rows.map((r) => [r.key, r.state])).toEqual([["a", "done"], ["b", "done"], ["c", "pending"], ["d", "pending"]]);
    again.close();
  });

  it("claims taken while rows are still being planned hand out every pending row once, in order, as stored", () => {
    // Random plan batches (some keys planned twice, some rows not work, some refused) between
    // random claims and failures, past the number of planned rows a store holds for claims.
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    for (let round = 0; round < 3; round++) {
      const { file, store } = newStore();
      const claimed: WorkItem[] = [];
      let next = 0;
      const claim = () => {
        const got = store.claim(1 + rand(700));
        claimed.push(...got);
        if (got.length && rand(5) === 0) store.fail(got[0].id, "boom");
        return got;
      };
      while (next < 30_000) {
        const n = 1 + rand(3000);
        const rows: PlanRow[] = [];
        for (let i = 0; i < n; i++, next++) {
          const key = `k${String(next).padStart(6, "0")}`;
          const kind = rand(10);
          rows.push(
            kind === 0
              ? { key, action: "skip", reason: "same", size: 1 }
              : kind === 1
                ? { key, action: "copy", reason: "refused", size: 1, error: "cannot exist" }
                : { key, action: kind === 2 ? "delete" : "copy", reason: "r", size: next, mtime: kind === 3 ? undefined : next * 10, md5: kind === 4 ? "ab" : undefined },
          );
          if (rand(50) === 0) rows.push({ key, action: "update", reason: "planned again: ignored", size: 0 });
        }
        store.addPlanRows(rows);
        // Often all the way (the claims then keep up with the plan), else a few or none.
        if (rand(2) === 0) while (claim().length);
        else for (let c = rand(3); c > 0; c--) claim();
      }
      while (claim().length);
      store.close();
      // Every row planned as work, once, in id order, with the fields as stored; nothing else.
      const db = new Database(file, { readonly: true });
      const want = db
        .prepare("SELECT id, key, action, size, mtime, md5, error FROM objects WHERE action IN ('copy', 'update', 'delete') AND (error IS NULL OR error = 'boom') ORDER BY id")
        .all() as { id: number; key: string; action: string; size: number; mtime: number | null; md5: string | null; error: string | null }[];
      db.close();
      expect(want.length).toBeGreaterThan(20_000);
      expect(claimed.filter((w) => w.attempts !== 0)).toEqual([]);
      expect(claimed).toEqual(want.map(({ error: _, ...r }) => ({ ...r, mtime: r.mtime ?? undefined, md5: r.md5 ?? undefined, attempts: 0 })));
    }
  });

  it("completeMany records each row's bytes and tries, alone or in groups, and touches no other row", () => {
    const { file, store } = newStore();
    const rows: PlanRow[] = Array.from({ length: 700 }, (_, i) => ({ key: `k${String(i).padStart(4, "0")}`, action: "copy", reason: "r", size: i * 10 }));
    store.addPlanRows(rows);
    const items = store.claim(1000);
    store.fail(items[5].id, "boom");
    store.requeueFailed();
    const done = [
      // 301 rows done in one try with their planned size: two groups, the second filled up.
      ...items.slice(0, 301).map((w) => ({ id: w.id, bytes: w.size, size: w.size })),
      { id: items[400].id, bytes: 7, size: items[400].size }, // fewer bytes than planned
      { id: items[401].id, bytes: items[401].size, size: items[401].size, attempts: 3 },
      { id: items[402].id, bytes: 99 }, // no planned size given
    ];
    store.completeMany(done);
    store.close();
    const db = new Database(file, { readonly: true });
    const got = new Map(
      (db.prepare("SELECT id, state, bytes_done, attempts, error FROM objects").all() as { id: number; state: string; bytes_done: number; attempts: number; error: string | null }[]).map((r) => [r.id, r]),
    );
    db.close();
    for (const [i, w] of items.entries()) {
      const r = got.get(w.id)!;
      if (i < 301) expect(r).toEqual({ id: w.id, state: "done", bytes_done: w.size, attempts: i === 5 ? 2 : 1, error: null });
      else if (i === 400) expect(r).toMatchObject({ state: "done", bytes_done: 7, attempts: 1 });
      else if (i === 401) expect(r).toMatchObject({ state: "done", bytes_done: w.size, attempts: 3 });
      else if (i === 402) expect(r).toMatchObject({ state: "done", bytes_done: 99, attempts: 1 });
      else expect(r).toEqual({ id: w.id, state: "pending", bytes_done: 0, attempts: 0, error: null });
    }
  });

  it("after failed rows are made pending again, claims start over from the first row", () => {
    const { store } = newStore();
    store.addPlanRows([{ key: "a", action: "copy", reason: "r", size: 1 }]);
    const [a] = store.claim(10);
    store.addPlanRows([{ key: "b", action: "copy", reason: "r", size: 1 }]);
    store.fail(a.id, "boom");
    store.requeueFailed();
    expect(store.claim(10).map((w) => w.key)).toEqual(["a", "b"]);
    store.addPlanRows([{ key: "c", action: "copy", reason: "r", size: 1 }]);
    expect(store.claim(10).map((w) => w.key)).toEqual(["c"]);
    store.close();
  });

  it("records multipart uploads and their committed parts", () => {
    const { store } = newStore();
    store.saveUpload({ key: "big", uploadId: "u1", partSize: 8, size: 20, mtime: 5, partChecksum: "crc32c" });
    store.savePart("big", { partNumber: 2, size: 8, checksum: "m2", etag: "e2" });
    store.savePart("big", { partNumber: 1, size: 8, checksum: "m1", etag: "e1" });
    expect(store.getUpload("big")).toEqual({
      key: "big", uploadId: "u1", partSize: 8, size: 20, mtime: 5, partChecksum: "crc32c",
      parts: [{ partNumber: 1, size: 8, checksum: "m1", etag: "e1" }, { partNumber: 2, size: 8, checksum: "m2", etag: "e2" }],
      hashedParts: 0,
      hashState: undefined,
    });
    store.saveHashState("big", 1, new Uint8Array([1, 2, 3]));
    expect(store.getUpload("big")).toMatchObject({ hashedParts: 1, hashState: Buffer.from([1, 2, 3]) });
    store.deleteUpload("big");
    expect(store.getUpload("big")).toBeUndefined();
    store.close();
  });

  it("upgrades a schema-1 file on open: its uploads are taken as carrying MD5 parts", () => {
    const { file, store } = newStore();
    store.close();
    // Make it as schema 1 wrote it: no part_checksum column.
    const db = new Database(file);
    db.exec("DROP TABLE uploads; CREATE TABLE uploads (key TEXT PRIMARY KEY, upload_id TEXT NOT NULL, part_size INTEGER NOT NULL, size INTEGER NOT NULL, mtime INTEGER, hashed_parts INTEGER NOT NULL DEFAULT 0, hash_state BLOB);");
    db.prepare("INSERT INTO uploads (key, upload_id, part_size, size) VALUES ('big', 'u1', 8, 20)").run();
    db.prepare("UPDATE meta SET v = '1' WHERE k = 'schema_version'").run();
    db.close();

    const again = SqliteCheckpoint.open(file);
    expect(again.getUpload("big")).toMatchObject({ uploadId: "u1", partChecksum: "md5", parts: [] });
    again.saveUpload({ key: "next", uploadId: "u2", partSize: 8, size: 20, partChecksum: "crc32c" });
    expect(again.getUpload("next")?.partChecksum).toBe("crc32c");
    again.close();
    const check = new Database(file, { readonly: true });
    expect((check.prepare("SELECT v FROM meta WHERE k = 'schema_version'").get() as { v: string }).v).toBe(String(SCHEMA_VERSION));
    check.close();
  });

  it("refuses a newer schema, a foreign database, and a damaged file — leaving them untouched", () => {
    const { file, store } = newStore();
    store.close();
    const db = new Database(file);
    db.prepare("UPDATE meta SET v = ? WHERE k = 'schema_version'").run(String(SCHEMA_VERSION + 1));
    db.close();
    expect(() => SqliteCheckpoint.open(file)).toThrow(/newer cloudmigrate.*--fresh/);

    const foreign = path.join(path.dirname(file), "foreign.sqlite");
    const f = new Database(foreign);
    f.exec("CREATE TABLE t (x)");
    f.close();
    expect(() => SqliteCheckpoint.open(foreign)).toThrow(/not a cloudmigrate checkpoint/);

    const junk = path.join(path.dirname(file), "junk.sqlite");
    fs.writeFileSync(junk, "this is not sqlite at all, just text ".repeat(200));
    const before = fs.readFileSync(junk);
    expect(() => SqliteCheckpoint.open(junk)).toThrow(CheckpointUnusable);
    expect(fs.readFileSync(junk).equals(before)).toBe(true);
  });

  it("a creation that fails half-way leaves no job file, and the next one starts clean", () => {
    const dir = tempDir("ckpt-create");
    const file = path.join(dir, "job.sqlite");
    // The job record cannot be written (JSON has no BigInt): the schema is already made by then.
    const bad = { ...options, include: [1n] as unknown as string[] };
    expect(() => SqliteCheckpoint.create(file, { id: "j1", source: "/a", destination: "/b", options: bad })).toThrow(/BigInt/);
    expect(fs.readdirSync(dir)).toEqual([]);

    // What a kill mid-creation leaves: a half-built file under the temporary name. And a WAL left
    // beside the final name by an earlier job, whose frames must not be replayed into the new one.
    fs.writeFileSync(`${file}.creating-99999`, "half");
    const old = SqliteCheckpoint.create(path.join(dir, "old.sqlite"), { id: "j0", source: "/a", destination: "/b", options });
    old.addPlanRows([{ key: "stale", action: "copy", reason: "missing at destination", size: 1 }]);
    fs.copyFileSync(path.join(dir, "old.sqlite-wal"), `${file}-wal`);
    old.close();

    const store = SqliteCheckpoint.create(file, { id: "j1", source: "/a", destination: "/b", options });
    expect(store.job.id).toBe("j1");
    expect([...store.rows()]).toEqual([]);
    store.close();
    expect(fs.readdirSync(dir).sort()).toEqual(["job.sqlite", "old.sqlite"]);
    const again = SqliteCheckpoint.open(file);
    expect(again.job.id).toBe("j1");
    again.close();
  });

  it("refuses a truncated checkpoint", () => {
    const { file, store } = newStore();
    store.addPlanRows(Array.from({ length: 5000 }, (_, i) => ({ key: `k${i}`, action: "copy" as const, reason: "r", size: i })));
    store.close();
    const size = fs.statSync(file).size;
    fs.truncateSync(file, Math.floor(size / 3));
    expect(() => SqliteCheckpoint.open(file)).toThrow(/damaged|cannot be opened/);
  });
});

describe("job directory", () => {
  it("a second process on the same job is refused; a dead owner's lock is taken over", () => {
    const dir = tempDir("jobs");
    const jobs = new JobDirectory(dir);
    const release = jobs.lock("abc");
    // Pretend another live process holds it: our parent's pid.
    fs.writeFileSync(path.join(jobs.dir, "abc.lock"), `${process.ppid}\n`);
    expect(() => jobs.lock("abc")).toThrow(MigrateError);
    expect(() => jobs.lock("abc")).toThrow(/already running in process/);
    // A dead owner (no such pid) leaves a stale lock that is taken over.
    fs.writeFileSync(path.join(jobs.dir, "abc.lock"), "999999999\n");
    const again = jobs.lock("abc");
    again();
    release();
  });

  it("a lock file is never seen without its owner's pid", async () => {
    const jobs = new JobDirectory(tempDir("jobs"));
    fs.mkdirSync(jobs.dir, { recursive: true });
    const lockFile = path.join(jobs.dir, "race.lock");
    // Another process reads the lock file as fast as it can while this one takes and releases it.
    const reader = spawn(
      process.execPath,
      [
        "-e",
        `const fs = require("fs"); let empty = 0, full = 0; process.stdout.write("ready\\n");
         for (const end = Date.now() + 1500; Date.now() < end; ) {
           try { fs.readFileSync(process.argv[1], "utf8").trim() ? full++ : empty++; } catch {}
         }
         process.stdout.write(JSON.stringify({ empty, full }) + "\\n");`,
        lockFile,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    reader.stdout.on("data", (d: Buffer) => (out += d.toString()));
    await new Promise<void>((resolve) => reader.stdout.once("data", () => resolve()));
    let cycles = 0;
    for (const end = Date.now() + 1000; Date.now() < end; cycles++) jobs.lock("race")();
    await new Promise((resolve) => reader.once("exit", resolve));
    const seen = JSON.parse(out.trim().split("\n").pop()!) as { empty: number; full: number };
    expect(cycles).toBeGreaterThan(100);
    expect(seen.full).toBeGreaterThan(0); // the reader did catch the lock held
    expect(seen.empty).toBe(0);
    expect(fs.readdirSync(jobs.dir)).toEqual([]); // no lock, and none of its transient names, left
  });

  it("a stale lock is removed only while it is still the file judged stale", () => {
    const jobs = new JobDirectory(tempDir("jobs"));
    fs.mkdirSync(jobs.dir, { recursive: true });
    const lockFile = path.join(jobs.dir, "abc.lock");
    fs.writeFileSync(lockFile, "999999999\n");
    const stale = fs.statSync(lockFile).ino;
    // Another process takes the lock over before this one removes the stale file: its new lock
    // (a new file, so a new inode) must survive this one's removal of the stale one.
    fs.writeFileSync(lockFile + ".new", `${process.ppid}\n`);
    fs.renameSync(lockFile + ".new", lockFile);
    const fresh = fs.statSync(lockFile).ino;
    expect(fresh).not.toBe(stale);
    removeIfSame(lockFile, stale);
    expect(fs.readFileSync(lockFile, "utf8")).toBe(`${process.ppid}\n`);
    expect(fs.statSync(lockFile).ino).toBe(fresh);
    expect(() => jobs.lock("abc")).toThrow(/already running in process/);
    removeIfSame(lockFile, fresh);
    expect(fs.readdirSync(jobs.dir)).toEqual([]);
  });
});
