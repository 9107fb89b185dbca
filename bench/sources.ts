/**
 * Source data on the local disk: `count` files of `size` random (incompressible) bytes, spread
 * over folders of at most 100 files ("d000/f00000"), so listings recurse as real trees do.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { Workload } from "./options.js";

export function keyOf(i: number, count: number): string {
  const width = Math.max(5, String(count - 1).length);
  const dir = Math.floor(i / 100);
  return count > 100 ? `d${String(dir).padStart(3, "0")}/f${String(i).padStart(width, "0")}` : `f${String(i).padStart(width, "0")}`;
}

/** Write the workload's files under `dir` (created). Big files are written in 8 MiB chunks. */
export function writeSource(dir: string, w: Workload): void {
  const chunk = 8 * 1024 * 1024;
  for (let i = 0; i < w.count; i++) {
    const file = path.join(dir, ...keyOf(i, w.count).split("/"));
    fs.mkdirSync(path.dirname(file), { recursive: true });
    if (w.size <= chunk) {
      fs.writeFileSync(file, crypto.randomBytes(w.size));
      continue;
    }
    const fd = fs.openSync(file, "w");
    try {
      // One random chunk, varied per write by a counter in its first bytes: fast, and no two
      // chunks are alike (so no store can deduplicate them).
      const buf = crypto.randomBytes(chunk);
      for (let off = 0, n = 0; off < w.size; off += chunk, n++) {
        buf.writeUInt32BE(n, 0);
        buf.writeUInt32BE(i, 4);
        fs.writeSync(fd, buf, 0, Math.min(chunk, w.size - off));
      }
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** Files and bytes under `dir`. */
export function treeTotals(dir: string): { count: number; bytes: number } {
  let count = 0;
  let bytes = 0;
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, e.name);
      if (e.isDirectory()) walk(full);
      else if (e.isFile()) {
        count++;
        bytes += fs.statSync(full).size;
      }
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return { count, bytes };
}
