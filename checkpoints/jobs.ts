/**
 * Where job checkpoints live, how a source/destination pair maps to its job, and the lock that
 * keeps a second process off a running job.
 *
 * Layout: <state-dir>/jobs/<id>.sqlite (+ -wal/-shm), <id>.lock while a process owns it (and,
 * for an instant while it is taken or removed, <id>.lock.<pid>-<hex> or <id>.lock.gone-<pid>-<hex>).
 * A job id is derived from the pair, so running the same pair again finds its job.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import crypto from "node:crypto";
import { MigrateError } from "../src/errors.js";
import { CheckpointUnusable, SqliteCheckpoint, peekJob } from "./sqlite.js";
import type { JobRecord } from "./types.js";

export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MIGRATE_STATE_DIR) return path.resolve(env.MIGRATE_STATE_DIR);
  const base = env.XDG_STATE_HOME || path.join(os.homedir(), ".local", "state");
  return path.join(base, "cloudmigrate");
}

export function jobIdFor(sourceId: string, destinationId: string): string {
  return crypto.createHash("sha256").update(`${sourceId}\n${destinationId}`).digest("hex").slice(0, 12);
}

export interface JobListing {
  id: string;
  file: string;
  job?: JobRecord;
  /** Why the file could not be read. */
  problem?: string;
}

export class JobDirectory {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = path.join(stateDir, "jobs");
  }

  fileOf(id: string): string {
    return path.join(this.dir, `${id}.sqlite`);
  }

  exists(id: string): boolean {
    return fs.existsSync(this.fileOf(id));
  }

  list(): JobListing[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return [];
    }
    const out: JobListing[] = [];
    for (const name of names.filter((n) => n.endsWith(".sqlite")).sort()) {
      const id = name.slice(0, -".sqlite".length);
      const file = path.join(this.dir, name);
      try {
        out.push({ id, file, job: peekJob(file) });
      } catch (err) {
        out.push({ id, file, problem: (err as Error).message });
      }
    }
    return out;
  }

  /**
   * The most recently active job that has not finished cleanly. When there is none but some
   * checkpoint cannot be read, that is said (it may be the job the user means), not passed over.
   */
  latestUnfinished(): JobRecord | undefined {
    const all = this.list();
    const latest = all
      .map((l) => l.job)
      .filter((j): j is JobRecord => j !== undefined && j.status !== "done")
      .sort((a, b) => b.updatedAt - a.updatedAt)[0];
    const unreadable = all.find((l) => l.problem);
    if (!latest && unreadable) throw new MigrateError("ConfigInvalid", unreadable.problem!, { scope: "run" });
    return latest;
  }

  /** Find a job by id or unique id prefix. */
  resolve(idOrPrefix: string): string {
    const matches = this.list().filter((l) => l.id.startsWith(idOrPrefix));
    if (matches.length === 1) return matches[0].id;
    if (matches.length === 0) throw new MigrateError("ConfigInvalid", `no job ${idOrPrefix} in ${this.dir}`, { scope: "run" });
    throw new MigrateError("ConfigInvalid", `job id ${idOrPrefix} is ambiguous: ${matches.map((m) => m.id).join(", ")}`, { scope: "run" });
  }

  open(id: string): SqliteCheckpoint {
    try {
      return SqliteCheckpoint.open(this.fileOf(id));
    } catch (err) {
      if (err instanceof CheckpointUnusable) throw new MigrateError("ConfigInvalid", err.message, { scope: "run" });
      throw err;
    }
  }

  create(job: Parameters<typeof SqliteCheckpoint.create>[1]): SqliteCheckpoint {
    fs.mkdirSync(this.dir, { recursive: true });
    return SqliteCheckpoint.create(this.fileOf(job.id), job);
  }

  /** Delete a finished job's files (a new run over the same pair replaces it). */
  remove(id: string): void {
    for (const suffix of ["", "-wal", "-shm"]) fs.rmSync(this.fileOf(id) + suffix, { force: true });
  }

  /** Move a job's files aside (never delete them): `--fresh` keeps the old record for inspection. */
  setAside(id: string): string | undefined {
    const file = this.fileOf(id);
    if (!fs.existsSync(file)) return undefined;
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    const aside = `${file}.replaced-${stamp}`;
    for (const suffix of ["", "-wal", "-shm"]) {
      if (fs.existsSync(file + suffix)) fs.renameSync(file + suffix, aside + suffix);
    }
    return aside;
  }

  /**
   * Take the job's lock, or refuse if a live process holds it. A lock left by a dead process
   * (kill -9, power loss) is taken over. Returns the release function.
   *
   * The lock file appears with its owner's pid already in it (written under a name of its own,
   * then hard-linked into place), so no one ever reads an empty lock and takes it for a dead
   * one's. A stale lock is removed only if it is still the file judged stale (see removeIfSame),
   * so two processes taking over the same stale lock cannot remove each other's new one.
   */
  lock(id: string): () => void {
    fs.mkdirSync(this.dir, { recursive: true });
    const lockFile = path.join(this.dir, `${id}.lock`);
    const mine = ownName(lockFile, "");
    fs.writeFileSync(mine, `${process.pid}\n`);
    try {
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          return releaseOnce(lockFile, place(mine, lockFile));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        }
        const held = readLock(lockFile);
        if (!held) continue; // released meanwhile
        if (held.pid && held.pid !== process.pid && isAlive(held.pid)) {
          throw new MigrateError(
            "ConditionNotMatch",
            `job ${id} is already running in process ${held.pid}; wait for it or stop it first`,
            { scope: "run" },
          );
        }
        removeIfSame(lockFile, held.ino); // stale: its owner is gone
      }
    } finally {
      fs.rmSync(mine, { force: true });
    }
    throw new MigrateError("Unexpected", `could not take the lock for job ${id}`, { scope: "run" });
  }
}

/** A name beside `lockFile` that no other process (or call) uses: `<lock>.<tag><pid>-<hex>`. */
const ownName = (lockFile: string, tag: string): string => `${lockFile}.${tag}${process.pid}-${crypto.randomBytes(4).toString("hex")}`;

/** Errors of a filesystem that has no hard links. */
const NO_LINKS = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS"]);

/** Put `mine` in place as `lockFile` (EEXIST if there is one); the lock's inode. */
function place(mine: string, lockFile: string): number {
  try {
    fs.linkSync(mine, lockFile);
    return fs.statSync(mine).ino;
  } catch (err) {
    if (!NO_LINKS.has((err as NodeJS.ErrnoException).code ?? "")) throw err;
  }
  // No hard links here: create it exclusively, then fill it (empty for an instant, as before).
  fs.copyFileSync(mine, lockFile, fs.constants.COPYFILE_EXCL);
  return fs.statSync(lockFile).ino;
}

/** The pid in a lock file (0 if unreadable) and its inode; undefined if there is none. */
function readLock(lockFile: string): { pid: number; ino: number } | undefined {
  try {
    const ino = fs.statSync(lockFile).ino;
    return { pid: Number(fs.readFileSync(lockFile, "utf8").trim()) || 0, ino };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** Remove the lock file taken with inode `ino`, if it is still in place; never throws. */
function releaseOnce(lockFile: string, ino: number): () => void {
  let released = false;
  return () => {
    if (released) return;
    released = true;
    try {
      removeIfSame(lockFile, ino);
    } catch {
      /* left behind: the next run takes it over as stale */
    }
  };
}

/**
 * Remove `lockFile` if it is the file with inode `ino`. It is first renamed to a name of this
 * process's own (one atomic step that only one process can make for a given file); if what was
 * moved is another file, a lock someone took in the meantime, it is linked back. A third
 * process that took the lock in the instant between would make that fail; the moved lock's
 * owner then runs unguarded. Exported for tests.
 */
export function removeIfSame(lockFile: string, ino: number): void {
  const aside = ownName(lockFile, "gone-");
  try {
    fs.renameSync(lockFile, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  try {
    if (fs.statSync(aside).ino !== ino) {
      try {
        fs.linkSync(aside, lockFile);
      } catch {
        /* see above */
      }
    }
  } finally {
    fs.rmSync(aside, { force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
