/**
 * SQLite checkpoint store: one database file per job, WAL journal, synchronous=NORMAL.
 *
 * Durability: in WAL mode every committed transaction survives a process crash (kill -9).
 * On power loss NORMAL may lose the last few commits; those objects are simply copied again,
 * which is safe, so we do not pay an fsync per object.
 */
import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import type {
  Action,
  CheckpointStore,
  CommittedPart,
  Counts,
  JobOptions,
  JobRecord,
  JobStatus,
  ObjectRecord,
  ObjectState,
  PlanRow,
  UploadRecord,
  WorkItem,
} from "./types.js";
import { isWork } from "./types.js";

export const SCHEMA_VERSION = 2;
/** Schema changes from each older version, applied when a file is opened for writing. */
const UPGRADES: Record<number, string> = {
  // 2: an upload records the kind of checksum its parts carry (1's uploads all used MD5).
  1: "ALTER TABLE uploads ADD COLUMN part_checksum TEXT;",
};
export const APP_ID = "cloudmigrate";
/** Rows recorded done by one statement at most (see completeMany); a power of two. */
const COMPLETE_GROUP = 256;
/** Planned rows held for claim at most (beyond this, claims read them from the table). */
const FRESH_MAX = 8192;

/** A checkpoint file we must not use; the message says why and what to do. */
export class CheckpointUnusable extends Error {}

/**
 * No index on objects.state: claims read forward from a cursor in id order, so a run reads the
 * table once at most, while an index on state cost every planned row an insert and every
 * completed row a move (10,000 rows: completions 38 → 25 ms). Files made before keep theirs;
 * it changes no result.
 */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS job (
  id TEXT PRIMARY KEY, source TEXT NOT NULL, destination TEXT NOT NULL, options TEXT NOT NULL,
  status TEXT NOT NULL, plan_complete INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, runs INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS objects (
  id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, action TEXT NOT NULL, reason TEXT NOT NULL,
  size INTEGER NOT NULL, mtime INTEGER, md5 TEXT,
  state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, error TEXT,
  bytes_done INTEGER NOT NULL DEFAULT 0, parts_done INTEGER NOT NULL DEFAULT 0,
  parts_total INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS uploads (
  key TEXT PRIMARY KEY, upload_id TEXT NOT NULL, part_size INTEGER NOT NULL,
  size INTEGER NOT NULL, mtime INTEGER, hashed_parts INTEGER NOT NULL DEFAULT 0, hash_state BLOB,
  part_checksum TEXT);
CREATE TABLE IF NOT EXISTS parts (
  key TEXT NOT NULL, part_number INTEGER NOT NULL, size INTEGER NOT NULL, md5 TEXT NOT NULL,
  etag TEXT NOT NULL, PRIMARY KEY (key, part_number));
`;

interface JobRow {
  id: string;
  source: string;
  destination: string;
  options: string;
  status: JobStatus;
  plan_complete: number;
  created_at: number;
  updated_at: number;
  runs: number;
}

interface ObjectRow {
  id: number;
  key: string;
  action: Action;
  reason: string;
  size: number;
  mtime: number | null;
  md5: string | null;
  state: ObjectState;
  attempts: number;
  error: string | null;
  bytes_done: number;
  parts_done: number;
  parts_total: number;
}

/** The columns `claim` selects, in order. */
type ClaimedRow = [id: number, key: string, action: Action, size: number, mtime: number | null, md5: string | null, attempts: number];

function toRecord(r: ObjectRow): ObjectRecord {
  return {
    id: r.id,
    key: r.key,
    action: r.action,
    reason: r.reason,
    size: r.size,
    mtime: r.mtime ?? undefined,
    md5: r.md5 ?? undefined,
    state: r.state,
    attempts: r.attempts,
    error: r.error ?? undefined,
    bytesDone: r.bytes_done,
    partsDone: r.parts_done,
    partsTotal: r.parts_total,
  };
}

/** Read a job record from a file without taking it over (for `jobs` and lookups); damage shows. */
export function peekJob(file: string): JobRecord {
  const sidecars = ["-wal", "-shm"].filter((x) => !fs.existsSync(file + x));
  let db: Database.Database | undefined;
  try {
    db = openChecked(file, true, true);
    return readJob(db);
  } finally {
    db?.close();
    removeSidecarsWeMade(file, sidecars);
  }
}

/**
 * A read-only open of a WAL database may create its -wal/-shm files. When neither existed before,
 * no other connection had the file open, so the ones our look made can go: a file we only looked
 * at (or refused) is left as we found it.
 */
function removeSidecarsWeMade(file: string, absentBefore: string[]): void {
  if (absentBefore.length !== 2) return;
  for (const x of absentBefore) fs.rmSync(file + x, { force: true });
}

/** Suffix of a job file still being built by `create` (not a job: the listing ignores it). */
const CREATING = ".creating-";

/** Drop files a killed `create` left for this job (the caller holds the job's lock). */
function removeUnfinishedCreations(file: string): void {
  const dir = path.dirname(file);
  const prefix = path.basename(file) + CREATING;
  for (const name of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    if (name.startsWith(prefix)) fs.rmSync(path.join(dir, name), { force: true });
  }
}

/** Make a rename in `dir` durable (best effort: some filesystems cannot fsync a directory). */
function syncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, "r");
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // Not durable across power loss then; a lost job file only means the pair is planned again.
  }
}

function unusable(file: string, why: string): CheckpointUnusable {
  return new CheckpointUnusable(
    `checkpoint ${file} ${why}; it was left untouched. Run with --fresh to start this job over (the old file is kept beside it).`,
  );
}

/**
 * Open and validate: a SQLite file of ours, of a schema we can read; with `thorough`, every page
 * is read too. Validation runs on a read-only connection, so a file we refuse is left exactly as
 * it was (a read-write close would fold its WAL into it).
 */
function openChecked(file: string, readonly: boolean, thorough = false): Database.Database {
  let db: Database.Database;
  try {
    db = new Database(file, { readonly, fileMustExist: true });
  } catch (err) {
    throw unusable(file, `cannot be opened (${(err as Error).message})`);
  }
  try {
    const hasMeta = db
      .prepare("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'")
      .get() as { name: string } | undefined;
    if (!hasMeta) throw unusable(file, "is not a cloudmigrate checkpoint");
    const meta = new Map(
      (db.prepare("SELECT k, v FROM meta").all() as { k: string; v: string }[]).map((r) => [r.k, r.v]),
    );
    if (meta.get("app") !== APP_ID) throw unusable(file, "is not a cloudmigrate checkpoint");
    const version = Number(meta.get("schema_version"));
    if (!Number.isInteger(version)) throw unusable(file, "has no schema version");
    if (version > SCHEMA_VERSION) {
      throw unusable(file, `was written by a newer cloudmigrate (schema ${version}; this one reads ${SCHEMA_VERSION}): upgrade cloudmigrate to resume it`);
    }
    // Read every page now, so a truncated or damaged file fails here, not half-way through a run
    // (a plain count(*) is answered from an index and would miss damaged table pages).
    if (thorough) {
      const check = db.pragma("quick_check", { simple: true });
      if (check !== "ok") throw new Error(String(check).replace(/\s+/g, " ").trim().slice(0, 200));
    }
    readJob(db);
    return db;
  } catch (err) {
    db.close();
    if (err instanceof CheckpointUnusable) throw err;
    throw unusable(file, `is damaged (${(err as Error).message})`);
  }
}

/** Bring a file written by an older cloudmigrate to this schema, in one transaction. */
function upgrade(db: Database.Database): void {
  const version = Number((db.prepare("SELECT v FROM meta WHERE k = 'schema_version'").get() as { v: string }).v);
  if (version >= SCHEMA_VERSION) return;
  db.transaction(() => {
    for (let v = version; v < SCHEMA_VERSION; v++) db.exec(UPGRADES[v]);
    db.prepare("UPDATE meta SET v = ? WHERE k = 'schema_version'").run(String(SCHEMA_VERSION));
  })();
}

function readJob(db: Database.Database): JobRecord {
  const r = db.prepare("SELECT * FROM job").get() as JobRow | undefined;
  if (!r) throw new Error("no job record");
  return {
    id: r.id,
    source: r.source,
    destination: r.destination,
    options: JSON.parse(r.options) as JobOptions,
    status: r.status,
    planComplete: r.plan_complete === 1,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    runs: r.runs,
  };
}

export class SqliteCheckpoint implements CheckpointStore {
  private readonly db: Database.Database;
  /** The last row claim handed out: later claims take rows after it. */
  private cursor = 0;
  /**
   * While `tracking`, the pending rows after the cursor are exactly `fresh`: the rows this store
   * planned since a claim found the table empty beyond the cursor. A claim then takes them from
   * here instead of reading back what was just written (most of a claim's cost).
   */
  private tracking = false;
  private fresh: WorkItem[] = [];
  job: JobRecord;

  private readonly st: ReturnType<SqliteCheckpoint["prepare"]>;

  private constructor(db: Database.Database) {
    this.db = db;
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("busy_timeout = 5000");
    this.st = this.prepare();
    this.job = readJob(db);
  }

  /**
   * Create a new job file (the file must not exist). The file appears whole or not at all: it is
   * built under a temporary name (schema and job record in one transaction) and renamed into
   * place, so a kill at any instant never leaves a job file that `open` would refuse.
   */
  static create(file: string, job: Omit<JobRecord, "createdAt" | "updatedAt" | "runs" | "status" | "planComplete">): SqliteCheckpoint {
    removeUnfinishedCreations(file);
    const tmp = `${file}${CREATING}${process.pid}`;
    try {
      // Rollback journal while building: closing leaves the one file to rename.
      const db = new Database(tmp);
      try {
        const now = Date.now();
        db.transaction(() => {
          db.exec(SCHEMA);
          db.prepare("INSERT INTO meta (k, v) VALUES ('app', ?), ('schema_version', ?)").run(APP_ID, String(SCHEMA_VERSION));
          db.prepare(
            "INSERT INTO job (id, source, destination, options, status, created_at, updated_at) VALUES (?, ?, ?, ?, 'planning', ?, ?)",
          ).run(job.id, job.source, job.destination, JSON.stringify(job.options), now, now);
        })();
      } finally {
        db.close();
      }
      // Sidecars under the final name belong to no file now; SQLite would replay a stale WAL.
      for (const x of ["-wal", "-shm"]) fs.rmSync(file + x, { force: true });
      fs.renameSync(tmp, file);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      fs.rmSync(`${tmp}-journal`, { force: true });
      throw err;
    }
    syncDir(path.dirname(file));
    return new SqliteCheckpoint(new Database(file, { fileMustExist: true }));
  }

  /** Open an existing job file, refusing damaged, foreign or newer files. */
  static open(file: string): SqliteCheckpoint {
    // A read-only connection may create -wal/-shm files; a refused file is left as found.
    const sidecars = ["-wal", "-shm"].filter((x) => !fs.existsSync(file + x));
    try {
      openChecked(file, true, true).close();
    } catch (err) {
      removeSidecarsWeMade(file, sidecars);
      throw err;
    }
    const db = openChecked(file, false);
    upgrade(db);
    return new SqliteCheckpoint(db);
  }

  private prepare() {
    const db = this.db;
    return {
      // Positional parameters and raw rows: planning and claiming run once per object, and
      // named parameters and row objects cost about half of their SQLite time (10,000 rows:
      // insert 45 → 28 ms, claim 32 → 14 ms).
      insert: db.prepare(
        `INSERT OR IGNORE INTO objects (key, action, reason, size, mtime, md5, state, error)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      claim: db
        .prepare("SELECT id, key, action, size, mtime, md5, attempts FROM objects WHERE state = 'pending' AND id > ? ORDER BY id LIMIT ?")
        .raw(),
      complete: db.prepare(
        "UPDATE objects SET state = 'done', error = NULL, attempts = attempts + ?, bytes_done = ? WHERE id = ?",
      ),
      fail: db.prepare("UPDATE objects SET state = 'failed', error = ?, attempts = attempts + ? WHERE id = ?"),
      progress: db.prepare("UPDATE objects SET bytes_done = ?, parts_done = ?, parts_total = ? WHERE id = ?"),
      touch: db.prepare("UPDATE job SET updated_at = ?"),
      getUpload: db.prepare("SELECT * FROM uploads WHERE key = ?"),
      getParts: db.prepare("SELECT part_number, size, md5, etag FROM parts WHERE key = ? ORDER BY part_number"),
      saveUpload: db.prepare(
        "INSERT OR REPLACE INTO uploads (key, upload_id, part_size, size, mtime, part_checksum) VALUES (?, ?, ?, ?, ?, ?)",
      ),
      savePart: db.prepare("INSERT OR REPLACE INTO parts (key, part_number, size, md5, etag) VALUES (?, ?, ?, ?, ?)"),
      deleteUpload: db.prepare("DELETE FROM uploads WHERE key = ?"),
      saveHash: db.prepare("UPDATE uploads SET hashed_parts = ?, hash_state = ? WHERE key = ?"),
      deleteParts: db.prepare("DELETE FROM parts WHERE key = ?"),
    };
  }

  addPlanRows(rows: PlanRow[]): void {
    const insert = this.st.insert;
    const added: WorkItem[] = [];
    const track = this.tracking;
    this.db.transaction(() => {
      for (const r of rows) {
        const state = r.error ? "failed" : isWork(r.action) ? "pending" : "done";
        const done = insert.run(r.key, r.action, r.reason, r.size, r.mtime ?? null, r.md5 ?? null, state, r.error ?? null);
        if (track && state === "pending" && done.changes === 1) {
          added.push({ id: Number(done.lastInsertRowid), key: r.key, action: r.action, size: r.size, mtime: r.mtime, md5: r.md5, attempts: 0 });
        }
      }
    })();
    // Committed: claim may hand these out without reading them back.
    if (!track) return;
    if (this.fresh.length + added.length > FRESH_MAX) this.untrack();
    else for (const item of added) this.fresh.push(item);
  }

  /** Claims read from the table again (from the cursor), until one finds nothing beyond what it took. */
  private untrack(): void {
    this.tracking = false;
    this.fresh = [];
  }

  finishPlan(): void {
    this.db.prepare("UPDATE job SET plan_complete = 1, status = 'copying', updated_at = ?").run(Date.now());
    this.job = readJob(this.db);
  }

  resetPlan(): void {
    this.db.transaction(() => {
      this.db.exec("DELETE FROM objects; DELETE FROM uploads; DELETE FROM parts;");
      this.db.prepare("UPDATE job SET plan_complete = 0, status = 'planning', updated_at = ?").run(Date.now());
    })();
    this.cursor = 0;
    this.untrack();
    this.job = readJob(this.db);
  }

  lastPlannedKey(): string | undefined {
    const r = this.db.prepare("SELECT key FROM objects ORDER BY id DESC LIMIT 1").get() as { key: string } | undefined;
    return r?.key;
  }

  requeueFailed(): void {
    this.db.prepare("UPDATE objects SET state = 'pending' WHERE state = 'failed'").run();
    this.cursor = 0;
    this.untrack();
  }

  /** Marks the start of a run: counts it, and keeps the job's status current. */
  startRun(): void {
    this.db.prepare("UPDATE job SET runs = runs + 1, updated_at = ?").run(Date.now());
    this.job = readJob(this.db);
  }

  claim(limit: number): WorkItem[] {
    if (this.tracking) {
      const items = this.fresh.splice(0, limit);
      if (items.length) this.cursor = items[items.length - 1].id;
      return items;
    }
    const rows = this.st.claim.all(this.cursor, limit) as ClaimedRow[];
    if (rows.length) this.cursor = rows[rows.length - 1][0];
    // None left beyond the cursor: from now on the pending rows beyond it are the ones planned next.
    if (rows.length < limit) this.tracking = true;
    return rows.map(([id, key, action, size, mtime, md5, attempts]) => ({
      id,
      key,
      action,
      size,
      mtime: mtime ?? undefined,
      md5: md5 ?? undefined,
      attempts,
    }));
  }

  complete(id: number, bytes: number, attempts = 1): void {
    this.st.complete.run(attempts, bytes, id);
  }

  completeMany(done: { id: number; bytes: number; attempts?: number; size?: number }[]): void {
    const st = this.st.complete;
    const plain: number[] = [];
    this.db.transaction(() => {
      for (const d of done) {
        if ((d.attempts ?? 1) === 1 && d.bytes === d.size) plain.push(d.id);
        else st.run(d.attempts ?? 1, d.bytes, d.id);
      }
      for (let i = 0; i < plain.length; i += COMPLETE_GROUP) {
        const ids = plain.slice(i, i + COMPLETE_GROUP);
        // Statements for power-of-two counts only, the list filled up with its last id.
        const n = 2 ** Math.ceil(Math.log2(ids.length));
        while (ids.length < n) ids.push(ids[ids.length - 1]);
        this.completeGroup(n).run(ids);
      }
    })();
  }

  private readonly completeGroups = new Map<number, Database.Statement>();

  /** The statement recording `n` ids done in one try with their planned size (per-row statements cost about 40 % more). */
  private completeGroup(n: number): Database.Statement {
    let st = this.completeGroups.get(n);
    if (!st) {
      const list = new Array<string>(n).fill("?").join(",");
      st = this.db.prepare(`UPDATE objects SET state = 'done', error = NULL, attempts = attempts + 1, bytes_done = size WHERE id IN (${list})`);
      this.completeGroups.set(n, st);
    }
    return st;
  }

  fail(id: number, error: string, attempts = 1): void {
    this.st.fail.run(error, attempts, id);
  }

  progress(id: number, bytesDone: number, partsDone: number, partsTotal: number): void {
    this.st.progress.run(bytesDone, partsDone, partsTotal, id);
  }

  counts(): Counts {
    const zero = () => ({ objects: 0, bytes: 0 });
    const byAction = { copy: zero(), update: zero(), skip: zero(), extra: zero(), delete: zero() };
    const byState = { pending: zero(), done: zero(), failed: zero() };
    let pendingBytes = 0;
    const rows = this.db
      .prepare("SELECT action, state, count(*) AS n, coalesce(sum(size), 0) AS b FROM objects GROUP BY action, state")
      .all() as { action: Action; state: ObjectState; n: number; b: number }[];
    for (const r of rows) {
      byAction[r.action].objects += r.n;
      byAction[r.action].bytes += r.b;
      byState[r.state].objects += r.n;
      byState[r.state].bytes += r.b;
      if (r.state === "pending" && (r.action === "copy" || r.action === "update")) pendingBytes += r.b;
    }
    return { byAction, byState, pendingBytes };
  }

  *rows(): IterableIterator<ObjectRecord> {
    // iterate() keeps a read cursor open; the store must not be written while it runs.
    for (const r of this.db.prepare("SELECT * FROM objects ORDER BY key").iterate() as IterableIterator<ObjectRow>) {
      yield toRecord(r);
    }
  }

  setStatus(status: JobStatus): void {
    this.db.prepare("UPDATE job SET status = ?, updated_at = ?").run(status, Date.now());
    this.job = readJob(this.db);
  }

  getUpload(key: string): UploadRecord | undefined {
    const u = this.st.getUpload.get(key) as
      | {
          key: string;
          upload_id: string;
          part_size: number;
          size: number;
          mtime: number | null;
          hashed_parts: number;
          hash_state: Buffer | null;
          part_checksum?: string | null;
        }
      | undefined;
    if (!u) return undefined;
    const parts = (this.st.getParts.all(key) as { part_number: number; size: number; md5: string; etag: string }[]).map(
      (p) => ({ partNumber: p.part_number, size: p.size, checksum: p.md5, etag: p.etag }),
    );
    return {
      key: u.key,
      uploadId: u.upload_id,
      partSize: u.part_size,
      size: u.size,
      mtime: u.mtime ?? undefined,
      parts,
      hashedParts: u.hashed_parts,
      hashState: u.hash_state ?? undefined,
      partChecksum: u.part_checksum === "crc32c" ? "crc32c" : "md5",
    };
  }

  saveHashState(key: string, hashedParts: number, state: Uint8Array): void {
    this.st.saveHash.run(hashedParts, Buffer.from(state), key);
  }

  saveUpload(u: Omit<UploadRecord, "parts" | "hashedParts" | "hashState">): void {
    this.db.transaction(() => {
      this.st.deleteParts.run(u.key);
      this.st.saveUpload.run(u.key, u.uploadId, u.partSize, u.size, u.mtime ?? null, u.partChecksum);
    })();
  }

  savePart(key: string, p: CommittedPart): void {
    this.st.savePart.run(key, p.partNumber, p.size, p.checksum, p.etag);
  }

  deleteUpload(key: string): void {
    this.db.transaction(() => {
      this.st.deleteUpload.run(key);
      this.st.deleteParts.run(key);
    })();
  }

  uploads(): UploadRecord[] {
    const keys = this.db.prepare("SELECT key FROM uploads ORDER BY key").all() as { key: string }[];
    return keys.map((k) => this.getUpload(k.key)).filter((u): u is UploadRecord => u !== undefined);
  }

  close(): void {
    this.db.close();
  }
}
