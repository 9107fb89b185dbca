/**
 * Worker thread for the filesystem adapter: each call is a whole sequence of synchronous file
 * calls (open, read, close), so one small file costs one message instead of four or five
 * thread-pool round trips on the main thread. Errors keep their errno code for the adapter.
 * A source range read for the last time is dropped from the page cache (see fs-cache).
 */
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { serve, toErrorShape, type Handled, type WorkerErrorShape } from "../src/worker-pool.js";
import { crc32c, crcToBase64, md5Hex } from "../src/hashing.js";
import { tempNameFor } from "./fs-names.js";
import { TEMP_SIZE_IS_PROGRESS, finishCopy, storeWritten, type CopyProgress } from "./fs-progress.js";
import { inItsFolder } from "./fs-folders.js";
import { dropCached } from "./fs-cache.js";

export interface DirEntry {
  name: string;
  dir: boolean;
  size: number;
  mtimeMs: number;
}

export type SmallRead = { buf: Uint8Array } | { big: true };

function readAll(fd: number, buf: Uint8Array, position: number): number {
  let got = 0;
  while (got < buf.length) {
    const n = fs.readSync(fd, buf, got, buf.length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

function readSmall(file: string, max: number, start?: number, length?: number): SmallRead {
  const fd = fs.openSync(file, "r");
  try {
    const size = length ?? fs.fstatSync(fd).size;
    if (size > max) return { big: true };
    const buf = Buffer.allocUnsafeSlow(size);
    const got = readAll(fd, buf, start ?? 0);
    dropCached(fd, start ?? 0, got);
    return { buf: got === size ? buf : buf.subarray(0, got) };
  } finally {
    fs.closeSync(fd);
  }
}

/** The size of digestFile's reads. */
const DIGEST_STEP = 4 * 1024 * 1024;

/**
 * Read `file` once in steps of up to 4 MiB: its MD5 (hex) and, with `partSize`, the base64
 * CRC32C of each `partSize`-byte part (reads stop at part boundaries, so a step is in one part).
 * Each step is read on libuv's pool while the one before is hashed: read and hash one after the
 * other, 1 GiB took 1.72-1.76 s here, against 1.60 s, and 1.40 s for the MD5 alone.
 * Its pages stay cached: a copy reads the file again after this pass.
 */
async function digestFile(file: string, partSize?: number): Promise<{ md5: string; partCrc32c: string[] }> {
  const fh = await fs.promises.open(file, "r");
  const step = partSize ?? Infinity;
  const bufs = [Buffer.allocUnsafe(Math.min(DIGEST_STEP, step)), Buffer.allocUnsafe(Math.min(DIGEST_STEP, step))];
  const readAt = (buf: Buffer, pos: number) => fh.read(buf, 0, Math.min(buf.length, step - (pos % step)), pos);
  let next = readAt(bufs[0], 0);
  try {
    const hash = crypto.createHash("md5");
    const partCrc32c: string[] = [];
    let crc = 0;
    let pos = 0;
    for (let i = 0; ; i ^= 1) {
      const { bytesRead: n } = await next;
      if (n === 0) break;
      const chunk = bufs[i].subarray(0, n);
      pos += n;
      next = readAt(bufs[i ^ 1], pos);
      hash.update(chunk);
      if (partSize === undefined) continue;
      crc = crc32c(chunk, crc);
      if (pos % partSize === 0) {
        partCrc32c.push(crcToBase64(crc));
        crc = 0;
      }
    }
    if (partSize !== undefined && (pos % partSize > 0 || partCrc32c.length === 0)) partCrc32c.push(crcToBase64(crc));
    return { md5: hash.digest("hex"), partCrc32c };
  } finally {
    await next.catch(() => undefined);
    await fh.close();
  }
}

function writeAll(fd: number, data: Uint8Array, position: number): void {
  for (let done = 0; done < data.length; ) done += fs.writeSync(fd, data, done, data.length - done, position + done);
}

/** Open `tmp` for writing, creating its folder if it is missing. */
const openTemp = (tmp: string): number => inItsFolder(tmp, () => fs.openSync(tmp, "w"));

/**
 * copyOne's read buffer, one per thread and reused: a fresh one per small file cost its
 * allocation (14 ms of a thread's profile for 10,000 files) and its collection. Only copyOne
 * uses it, and a thread runs one call at a time.
 */
const COPY_CHUNK = 1024 * 1024;
const copyBuffer = Buffer.allocUnsafeSlow(COPY_CHUNK);

/**
 * Files at least this big whose bytes need no hash are copied by the kernel (libuv's copyfile:
 * copy_file_range, else sendfile): no bytes pass through this thread. A 1 GiB fs→fs run on this
 * VM's ext4 (caches dropped, source read back in, 6 alternated runs): 0.62-0.73 s and 0.43-0.49 s
 * of system CPU, against 0.95-3.91 s and 0.77-3.41 s read and written in 1 MiB chunks.
 */
const KERNEL_COPY_MIN = COPY_CHUNK;
/** Mode of a file we create with open() (0666 less the umask); copyfile would give the source's. */
const FILE_MODE = 0o666 & ~process.umask();

export interface CopiedFile {
  size: number;
  complete: boolean;
  md5?: string;
}
/** copyOne's arguments, in order. */
export type CopyArgs = [src: string, final: string, expect: number, mtimeMs: number | undefined, md5: boolean, progress?: CopyProgress];
export type CopiedOrFailed = { ok: CopiedFile } | { error: WorkerErrorShape };

/**
 * Copy `src` to final's temporary name (hashing the bytes if `md5`), set the mtime, rename to
 * `final`. `complete: false` (nothing left behind) when `src` did not hold `expect` bytes.
 * `progress`: the bytes written so far, stored after every chunk, or TEMP_SIZE_IS_PROGRESS while
 * the kernel copies (a big file whose bytes are not hashed); finished before the rename.
 */
function copyOne(src: string, final: string, expect: number, mtimeMs: number | undefined, md5: boolean, progress?: CopyProgress): CopiedFile {
  if (!md5 && expect >= KERNEL_COPY_MIN) return kernelCopy(src, final, expect, mtimeMs, progress);
  const input = fs.openSync(src, "r");
  try {
    const tmp = tempNameFor(final);
    const out = openTemp(tmp);
    let size = 0;
    const hash = md5 ? crypto.createHash("md5") : undefined;
    try {
      try {
        // A small file in one read of one byte more than expected (a short read is its end, the
        // extra byte would show it grew); a big one in whole chunks, page-aligned.
        const buf = copyBuffer.subarray(0, expect < COPY_CHUNK ? expect + 1 : COPY_CHUNK);
        for (;;) {
          const n = fs.readSync(input, buf, 0, buf.length, size);
          if (n === 0) break;
          const chunk = buf.subarray(0, n);
          hash?.update(chunk);
          writeAll(out, chunk, size);
          size += n;
          if (progress) storeWritten(progress, BigInt(size));
          if (size > expect) break;
          // A short read of a file is its end: no need for the read that would return 0.
          if (size === expect && n < buf.length) break;
        }
        dropCached(input); // before the rename: the caller's progress reports end with it
        if (size === expect && mtimeMs !== undefined) fs.futimesSync(out, mtimeMs / 1000, mtimeMs / 1000);
      } finally {
        fs.closeSync(out);
      }
      if (size !== expect) {
        fs.rmSync(tmp, { force: true });
        return { size, complete: false };
      }
      if (progress) finishCopy(progress);
      fs.renameSync(tmp, final);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw err;
    }
    return { size, complete: true, md5: hash?.digest("hex") };
  } finally {
    fs.closeSync(input);
  }
}

/** dropCached for a file this thread does not hold open (the kernel copied it). */
function dropCachedFile(file: string): void {
  let fd: number;
  try {
    fd = fs.openSync(file, "r");
  } catch {
    return; // gone since: nothing of it to keep
  }
  try {
    dropCached(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * copyOne by the kernel. The temporary file is removed first, so neither an old one's bytes nor
 * its presence (the copy creates exclusively) can pass for this copy's. A missing source is the
 * error copyOne gives (ENOENT on `src`), with no folder made for it.
 */
function kernelCopy(src: string, final: string, expect: number, mtimeMs: number | undefined, progress?: CopyProgress): CopiedFile {
  const tmp = tempNameFor(final);
  try {
    fs.unlinkSync(tmp);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  if (progress) storeWritten(progress, TEMP_SIZE_IS_PROGRESS);
  try {
    // copyfile's ENOENT names the source whichever side is missing: a missing source gets no folder.
    inItsFolder(tmp, () => fs.copyFileSync(src, tmp, fs.constants.COPYFILE_EXCL), () => !fs.existsSync(src));
    const size = fs.statSync(tmp).size;
    if (size !== expect) {
      fs.rmSync(tmp, { force: true });
      return { size, complete: false };
    }
    dropCachedFile(src); // before the rename: the caller's progress reports end with it
    fs.chmodSync(tmp, FILE_MODE);
    if (mtimeMs !== undefined) fs.utimesSync(tmp, mtimeMs / 1000, mtimeMs / 1000);
    if (progress) finishCopy(progress);
    fs.renameSync(tmp, final);
    return { size, complete: true };
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/** The file's stat (links followed); undefined when it is gone or a link leads nowhere (ENOENT, ELOOP). */
function statOrSkip(file: string): fs.Stats | undefined {
  try {
    return fs.statSync(file, { throwIfNoEntry: false });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ELOOP") return undefined;
    throw err;
  }
}

serve({
  /** Entries of `dir` that are files (links to files followed) or folders; `skip` prefix left out. */
  listDir(dir: string, skip: string): Handled {
    let dirents: fs.Dirent[];
    try {
      dirents = fs.readdirSync(dir, { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") return { value: [] };
      throw err;
    }
    const out: DirEntry[] = [];
    for (const d of dirents) {
      if (d.name.startsWith(skip)) continue;
      if (d.isDirectory()) {
        out.push({ name: d.name, dir: true, size: 0, mtimeMs: 0 });
        continue;
      }
      // Links are followed to files only: a linked folder could loop, so it is not descended.
      if (!d.isFile() && !d.isSymbolicLink()) continue; // sockets, fifos, devices
      const st = statOrSkip(path.join(dir, d.name));
      if (!st || !st.isFile()) continue; // vanished while listing, a link to nothing or to a non-file
      out.push({ name: d.name, dir: false, size: st.size, mtimeMs: st.mtimeMs });
    }
    return { value: out };
  },

  /** The file's bytes (or `length` bytes from `start`) if at most `max` bytes; else `big`. */
  readSmall(file: string, max: number, start?: number, length?: number): Handled {
    const got = readSmall(file, max, start, length);
    return { value: got, transfer: "buf" in got ? [got.buf.buffer as ArrayBuffer] : undefined };
  },

  /** The whole file (and its MD5 if `md5`) if at most `max` bytes; else `big`. */
  readWhole(file: string, max: number, md5: boolean): Handled {
    const got = readSmall(file, max);
    if (!("buf" in got)) return { value: got };
    return { value: { buf: got.buf, md5: md5 ? md5Hex(got.buf) : undefined }, transfer: [got.buf.buffer as ArrayBuffer] };
  },

  /** readSmall for each whole file; a file that cannot be read is `failed` (the caller reads it again). */
  readMany(files: string[], max: number): Handled {
    const out: (SmallRead | { failed: true })[] = [];
    const transfer: ArrayBuffer[] = [];
    for (const f of files) {
      try {
        const got = readSmall(f, max);
        if ("buf" in got) transfer.push(got.buf.buffer as ArrayBuffer);
        out.push(got);
      } catch {
        out.push({ failed: true });
      }
    }
    return { value: out, transfer };
  },

  /**
   * Write `data` to `tmp` (creating its folder if missing), set its mtime, and rename it to
   * `final`. On failure the temporary file is removed. With `md5`, bytes that do not have it
   * are not written: the answer is then the MD5 they have.
   */
  writeSmall(tmp: string, final: string, data: Uint8Array, mtimeMs?: number, md5?: string): Handled {
    if (md5) {
      const actual = md5Hex(data);
      if (actual !== md5) return { value: actual };
    }
    const fd = openTemp(tmp);
    try {
      try {
        writeAll(fd, data, 0);
        if (mtimeMs !== undefined) fs.futimesSync(fd, mtimeMs / 1000, mtimeMs / 1000);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, final);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw err;
    }
    return { value: md5 };
  },

  /** Fill `target` (shared memory) from `start`; the count read. */
  readInto(file: string, start: number, target: Uint8Array): Handled {
    const fd = fs.openSync(file, "r");
    try {
      const got = readAll(fd, target, start);
      dropCached(fd, start, got);
      return { value: got };
    } finally {
      fs.closeSync(fd);
    }
  },

  /**
   * Write a part at `offset` into an existing file if `data` has MD5 `md5`; the MD5 it has.
   * ENOENT when the file is gone.
   */
  writePart(file: string, offset: number, data: Uint8Array, md5: string): Handled {
    const actual = md5Hex(data);
    if (actual !== md5) return { value: actual };
    const fd = fs.openSync(file, "r+");
    try {
      writeAll(fd, data, offset);
    } finally {
      fs.closeSync(fd);
    }
    return { value: actual };
  },

  /** One file: see copyOne. */
  copyFile(...args: CopyArgs): Handled {
    return { value: copyOne(...args) };
  },

  /** copyOne for each entry, in order; an entry that fails gives its error instead. */
  copyFiles(entries: CopyArgs[]): Handled {
    return {
      value: entries.map((args): CopiedOrFailed => {
        try {
          return { ok: copyOne(...args) };
        } catch (err) {
          return { error: toErrorShape(err) };
        }
      }),
    };
  },

  /** MD5 of the whole file and base64 CRC32C of each `partSize`-byte part, in one read. */
  async digestFile(file: string, partSize: number): Promise<Handled> {
    return { value: await digestFile(file, partSize) };
  },

  /** Hex MD5 of the whole file. */
  async md5File(file: string): Promise<Handled> {
    return { value: (await digestFile(file)).md5 };
  },
});
