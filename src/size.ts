/** Parse "8M", "64MiB", "1G", "512k", "1048576" into bytes (K/M/G/T are binary multiples). */
export function parseSize(v: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(v);
  if (!m) throw new Error(`not a size: ${v}`);
  const mult = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2].toLowerCase() as "" | "k" | "m" | "g" | "t"];
  const n = Math.floor(Number(m[1]) * mult);
  if (!Number.isFinite(n) || n < 1) throw new Error(`not a size: ${v}`);
  return n;
}
