/**
 * A pass-through stream that counts bytes and computes MD5 (and CRC32C when asked) of what
 * flows through it, so verification costs no second read.
 */
import crypto from "node:crypto";
import { createRequire } from "node:module";
import { Transform, type TransformCallback } from "node:stream";
import { STREAM_BUFFER } from "./memory.js";

type Crc32c = (input: Buffer, initial: number) => number;
let nativeCrc32c: Crc32c | undefined;
/**
 * CRC32C of `input` continuing from `initial` (hardware-accelerated, @node-rs/crc32). The native
 * module loads on first use: 12-17 ms of every start (and of every worker thread's) that routes
 * without CRC32C, such as file to file, do not pay.
 */
export function crc32c(input: Buffer, initial: number): number {
  nativeCrc32c ??= (createRequire(import.meta.url)("@node-rs/crc32") as { crc32c: Crc32c }).crc32c;
  return nativeCrc32c(input, initial);
}

/** Row `i` of the operator is what bit `i` of a CRC becomes; applying it XORs the rows of set bits. */
function gf2Apply(op: Uint32Array, vec: number): number {
  let sum = 0;
  for (let i = 0; vec !== 0; vec >>>= 1, i++) if (vec & 1) sum ^= op[i];
  return sum >>> 0;
}

/** `out` = `op` applied twice (the operator for twice as many zero bits). */
function gf2Square(out: Uint32Array, op: Uint32Array): void {
  for (let i = 0; i < 32; i++) out[i] = gf2Apply(op, op[i]);
}

/**
 * The CRC32C of A followed by B, from `crcA`, `crcB` and B's length in bytes, without the bytes:
 * `crcA` advanced over `lengthB` zero bytes, XOR `crcB` (zlib's crc32_combine, for the
 * Castagnoli polynomial). Parts hashed apart, in any order, give the whole object's CRC32C.
 */
export function crc32cCombine(crcA: number, crcB: number, lengthB: number): number {
  if (lengthB <= 0) return crcA >>> 0; // an empty B has CRC 0
  const even = new Uint32Array(32);
  const odd = new Uint32Array(32);
  odd[0] = 0x82f63b78; // one zero bit: the reflected polynomial
  for (let i = 1, row = 1; i < 32; i++, row <<= 1) odd[i] = row;
  gf2Square(even, odd); // two zero bits
  gf2Square(odd, even); // four
  let crc = crcA >>> 0;
  let n = lengthB;
  for (;;) {
    gf2Square(even, odd); // first pass: one zero byte, then doubling
    if (n % 2 === 1) crc = gf2Apply(even, crc);
    n = Math.floor(n / 2);
    if (n === 0) break;
    gf2Square(odd, even);
    if (n % 2 === 1) crc = gf2Apply(odd, crc);
    n = Math.floor(n / 2);
    if (n === 0) break;
  }
  return (crc ^ crcB) >>> 0;
}

/** The whole object's base64 CRC32C from its parts' base64 CRC32Cs and sizes, in order. */
export function combinedCrc32cBase64(parts: readonly { crc32c: string; size: number }[]): string {
  let crc = 0;
  for (const p of parts) crc = crc32cCombine(crc, Buffer.from(p.crc32c, "base64").readUInt32BE(0), p.size);
  return crcToBase64(crc);
}

export class HashingStream extends Transform {
  bytes = 0;
  private readonly md5?: crypto.Hash;
  private crc: number | undefined;

  /** `md5: false` only counts (and CRCs): for bodies whose MD5 is checked elsewhere. */
  constructor(
    opts: { md5?: boolean; crc32c?: boolean } = {},
    private readonly onBytes?: (n: number) => void,
  ) {
    super({ highWaterMark: STREAM_BUFFER });
    if (opts.md5 !== false) this.md5 = crypto.createHash("md5");
    if (opts.crc32c) this.crc = 0;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    this.md5?.update(chunk);
    if (this.crc !== undefined) this.crc = crc32c(chunk, this.crc);
    this.onBytes?.(chunk.length);
    cb(null, chunk);
  }

  /** Hex MD5; call once, after the stream has ended. Undefined when built with `md5: false`. */
  md5Hex(): string | undefined {
    return this.md5?.digest("hex");
  }

  /** Base64 big-endian CRC32C, as GCS and S3 report it; undefined unless asked for. */
  crc32cBase64(): string | undefined {
    return this.crc === undefined ? undefined : crcToBase64(this.crc);
  }
}

/** Base64 big-endian CRC32C of a buffer, as GCS and S3 report it. */
export function crc32cBase64(buf: Buffer): string {
  return crcToBase64(crc32c(buf, 0));
}

/** A CRC32C value as GCS and S3 write it: 4 bytes big-endian, base64. */
export function crcToBase64(crc: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(crc >>> 0);
  return b.toString("base64");
}

export function md5Hex(buf: Uint8Array): string {
  return crypto.createHash("md5").update(buf).digest("hex");
}

/** Hex MD5 of hex part MD5s, as binary, in order: S3's multipart ETag without its "-N". */
export function md5OfPartMd5s(partMd5s: readonly string[]): string {
  const h = crypto.createHash("md5");
  for (const m of partMd5s) h.update(Buffer.from(m, "hex"));
  return h.digest("hex");
}
