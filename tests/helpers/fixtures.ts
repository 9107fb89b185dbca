import fs from "node:fs";
import path from "node:path";
import { seededBytes } from "./streams.js";

/** Names that trip up naive code: spaces, unicode (NFC and NFD), URL-special characters. */
export const ODD_NAMES = [
  "with space.txt",
  "caf\u00e9.txt",
  "cafe\u0301.txt",
  "日本語.txt",
  "emoji 🚀.bin",
  "100% done.txt",
  "a+b=c.txt",
  "hash#tag.txt",
  "q?a&b@c:d.txt",
  ".hidden",
  "trailing.",
];

/** Write a tree: nested folders, zero-byte files, odd names; returns the number of files. */
export function makeTree(root: string, opts: { files?: number; seed?: number; bigFileSize?: number } = {}): number {
  const files = opts.files ?? 60;
  const seed = opts.seed ?? 7;
  let n = 0;
  const write = (rel: string, data: Buffer) => {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, data);
    n++;
  };
  for (const name of ODD_NAMES) write(`odd/${name}`, Buffer.from(`content of ${name}\n`));
  write("empty/zero.bin", Buffer.alloc(0));
  write("deep/a/b/c/d/e/f.txt", Buffer.from("deep\n"));
  for (let i = 0; n < files; i++) {
    write(`dir${i % 7}/sub${i % 3}/file-${i}.dat`, seededBytes((i * 977) % 20_000, seed + i));
  }
  if (opts.bigFileSize) write("big/large.bin", seededBytes(opts.bigFileSize, seed + 99));
  return n;
}

/** Many small files quickly (for crash tests). */
export function makeManySmall(root: string, count: number, size = 512): void {
  for (let i = 0; i < count; i++) {
    const p = path.join(root, `d${i % 20}`, `f${String(i).padStart(6, "0")}.txt`);
    if (i < 20) fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, seededBytes(size, i + 1));
  }
}
