/**
 * The local-to-local floor: a folder tree copied with nothing but node:fs on worker threads. It
 * is what the fs→fs route would cost with no checkpoint, no plan, no comparison with the
 * destination and no report: each file is written as the filesystem adapter writes one (under a
 * temporary name in its folder, the source's mtime set, then renamed into place), so the gap
 * between it and cloudmigrate is the engine's own overhead, and the gap between it and rclone
 * is the kernel's per-file work. Run as its own process so it is measured like the tools.
 *
 *   node dist/bench/bare-fs.js SRC_DIR DST_DIR THREADS
 *
 * Lists SRC first (readdir, and a stat per file for its size and mtime, as both tools do), gives
 * each of THREADS worker threads a run of consecutive files, and prints one JSON line:
 * {"files": N, "bytes": B}.
 */
import fs from "node:fs";
import path from "node:path";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { dropCached } from "../adapters/fs-cache.js";

interface FileJob {
  rel: string;
  size: number;
  mtimeMs: number;
}

const CHUNK = 1024 * 1024;

function list(root: string): FileJob[] {
  const out: FileJob[] = [];
  const walk = (dir: string, prefix: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const rel = prefix + e.name;
      if (e.isDirectory()) walk(path.join(dir, e.name), rel + "/");
      else if (e.isFile()) {
        const st = fs.statSync(path.join(dir, e.name));
        out.push({ rel, size: st.size, mtimeMs: st.mtimeMs });
      }
    }
  };
  walk(root, "");
  return out;
}

/**
 * Copy each file: read, write under a temporary name (making its folder if missing), mtime,
 * rename; the source's pages then leave the page cache, as cloudmigrate and rclone drop them.
 */
function copyAll(src: string, dst: string, files: FileJob[]): number {
  const buf = Buffer.allocUnsafe(CHUNK);
  let bytes = 0;
  for (const f of files) {
    const final = path.join(dst, f.rel);
    const tmp = path.join(path.dirname(final), `.bare-tmp-${path.basename(final)}`);
    const input = fs.openSync(path.join(src, f.rel), "r");
    let out: number;
    try {
      out = fs.openSync(tmp, "w");
    } catch {
      fs.mkdirSync(path.dirname(tmp), { recursive: true });
      out = fs.openSync(tmp, "w");
    }
    for (let pos = 0; ; ) {
      const n = fs.readSync(input, buf, 0, CHUNK, pos);
      if (n === 0) break;
      for (let done = 0; done < n; ) done += fs.writeSync(out, buf, done, n - done, pos + done);
      pos += n;
      bytes += n;
      if (pos >= f.size) break;
    }
    fs.futimesSync(out, f.mtimeMs / 1000, f.mtimeMs / 1000);
    fs.closeSync(out);
    dropCached(input);
    fs.closeSync(input);
    fs.renameSync(tmp, final);
  }
  return bytes;
}

async function main(): Promise<void> {
  const [src, dst, threadsArg] = process.argv.slice(2);
  const threads = Number(threadsArg);
  if (!src || !dst || !Number.isInteger(threads) || threads < 1) {
    throw new Error("usage: bare-fs.js SRC_DIR DST_DIR THREADS");
  }
  const files = list(src);
  // Runs of consecutive files (so whole folders) per thread: threads writing into the same
  // folder contend for it in the kernel, and the engine avoids that too (see callPinned).
  const per = Math.ceil(files.length / threads);
  const shares = Array.from({ length: threads }, (_, i) => files.slice(i * per, (i + 1) * per));
  const copied = await Promise.all(
    shares.map(
      (share) =>
        new Promise<number>((resolve, reject) => {
          const w = new Worker(new URL(import.meta.url), { workerData: { src, dst, files: share } });
          w.once("message", (n: number) => resolve(n));
          w.once("error", reject);
        }),
    ),
  );
  process.stdout.write(JSON.stringify({ files: files.length, bytes: copied.reduce((a, b) => a + b, 0) }) + "\n");
}

if (isMainThread) {
  main().catch((err: unknown) => {
    process.stderr.write(`bare-fs: ${(err as Error).message}\n`);
    process.exit(1);
  });
} else {
  const { src, dst, files } = workerData as { src: string; dst: string; files: FileJob[] };
  parentPort!.postMessage(copyAll(src, dst, files));
}
