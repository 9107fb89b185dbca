import { Readable } from "node:stream";
import crypto from "node:crypto";

export function bodyOf(data: Buffer | string): Readable {
  return Readable.from([Buffer.isBuffer(data) ? data : Buffer.from(data)]);
}

export async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as string));
  return Buffer.concat(chunks);
}

export function md5(data: Buffer | string): string {
  return crypto.createHash("md5").update(data).digest("hex");
}

export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** Deterministic pseudo-random bytes (fast, seeded), for fixtures. */
export function seededBytes(size: number, seed: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf.writeUInt32LE(x >>> 0, i);
  }
  for (; i < size; i++) buf[i] = (x = (x * 1103515245 + 12345) >>> 0) & 0xff;
  return buf;
}
