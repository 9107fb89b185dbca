/**
 * MD5's block function as a WebAssembly module, emitted here rather than shipped as a binary:
 *
 *  - `x4(state, p0, p1, p2, p3, n)`: four MD5s at once in 128-bit SIMD lanes, each advancing over
 *    `n` 64-byte blocks read from its own pointer (pointers may be equal). `state` holds 4 v128:
 *    A, B, C, D, each with one 32-bit word per lane. On this project's 2-core box it hashes about
 *    2.6× the bytes per second of OpenSSL's single MD5 when all four lanes are busy.
 *  - `x1(state, p, n)`: one MD5 over `n` blocks (state: A, B, C, D as four i32), as fast as
 *    OpenSSL's when only one stream needs hashing (a lone SIMD lane runs at a quarter of x4).
 *
 * Padding, lengths and scheduling are md5-lanes.ts's; this is only the compression function
 * (RFC 1321 §3.4), unrolled.
 */

/** Memory layout: the x4 state (4 × 16 bytes), then the x1 state (16 bytes), then data. */
export const X4_STATE = 0;
export const X1_STATE = 64;
export const DATA_START = 128;

export interface Md5Wasm {
  memory: WebAssembly.Memory;
  x4(state: number, p0: number, p1: number, p2: number, p3: number, blocks: number): void;
  x1(state: number, p: number, blocks: number): void;
}

const K = Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) >>> 0);
const SHIFTS = [
  [7, 12, 17, 22],
  [5, 9, 14, 20],
  [4, 11, 16, 23],
  [6, 10, 15, 21],
];
const wordOf = (i: number): number => [i, (5 * i + 1) % 16, (3 * i + 5) % 16, (7 * i) % 16][i >> 4];

const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
};
const sleb = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) return [...out, b];
    out.push(b | 0x80);
  }
};
const section = (id: number, bytes: number[]): number[] => [id, ...uleb(bytes.length), ...bytes];
const name = (s: string): number[] => [...uleb(s.length), ...Buffer.from(s, "latin1")];

const I32 = 0x7f;
const V128 = 0x7b;

/** One function body being written: locals, and the opcodes this module needs. */
class Body {
  readonly code: number[] = [];
  get = (i: number) => this.code.push(0x20, ...uleb(i));
  set = (i: number) => this.code.push(0x21, ...uleb(i));
  tee = (i: number) => this.code.push(0x22, ...uleb(i));
  i32 = (v: number) => this.code.push(0x41, ...sleb(v | 0));
  op = (...bytes: number[]) => this.code.push(...bytes);
  simd = (op: number, ...imm: number[]) => this.code.push(0xfd, ...uleb(op), ...imm);
  load32 = (offset: number) => this.code.push(0x28, 2, ...uleb(offset));
  v128Const(word: number): void {
    const b = Buffer.alloc(16);
    for (let l = 0; l < 4; l++) b.writeUInt32LE(word, 4 * l);
    this.simd(0x0c, ...b);
  }
  /** `for (; n != 0; n--) { body }` */
  loopWhile(n: number, body: () => void): void {
    this.op(0x02, 0x40, 0x03, 0x40); // block, loop
    this.get(n);
    this.op(0x45, 0x0d, 1); // i32.eqz, br_if out
    body();
    this.get(n);
    this.i32(1);
    this.op(0x6b); // i32.sub
    this.set(n);
    this.op(0x0c, 0, 0x0b, 0x0b); // br loop, end, end
  }
  encode(locals: [count: number, type: number][]): number[] {
    const b = [...uleb(locals.length), ...locals.flatMap(([n, t]) => [...uleb(n), t]), ...this.code, 0x0b];
    return [...uleb(b.length), ...b];
  }
}

/**
 * The 64 steps over locals: `a = b + rotl(a + f(b, c, d) + K[i] + M[g], s)`. The sum is ordered so
 * that only f's last operation, one add, the rotation and the final add wait on the newest word b.
 */
function steps(f: Body, regs0: number[], message: (g: number) => void, ops: StepOps): void {
  let regs = regs0;
  for (let i = 0; i < 64; i++) {
    const [a, b, c, d] = regs;
    const round = i >> 4;
    const s = SHIFTS[round][i % 4];
    f.get(b);
    message(wordOf(i));
    ops.constant(K[i]);
    ops.add();
    f.get(a);
    ops.add();
    if (round === 0) ops.f(b, c, d);
    else if (round === 1) {
      f.get(c); // G = (b & d) | (c & ~d), the second half added first
      f.get(d);
      ops.andNot();
      ops.add();
      f.get(b);
      f.get(d);
      ops.and();
    } else if (round === 2) {
      f.get(c);
      f.get(d);
      ops.xor();
      f.get(b);
      ops.xor();
    } else {
      f.get(c); // I = c ^ (b | ~d)
      f.get(b);
      f.get(d);
      ops.not();
      ops.or();
      ops.xor();
    }
    ops.add();
    ops.rotl(s);
    ops.add();
    f.set(a);
    regs = [d, a, b, c];
  }
}

interface StepOps {
  constant(k: number): void;
  add(): void;
  and(): void;
  andNot(): void;
  or(): void;
  xor(): void;
  not(): void;
  f(b: number, c: number, d: number): void;
  rotl(s: number): void;
}

function x4Body(): number[] {
  // params 0 state, 1-4 p0-p3, 5 n; v128 locals: 6-9 A-D, 10-13 saved, 14-29 M, 30 rotation temp
  const f = new Body();
  const [A, SAVED, M, T] = [6, 10, 14, 30];
  const ops: StepOps = {
    constant: (k) => f.v128Const(k),
    add: () => f.simd(0xae), // i32x4.add
    and: () => f.simd(0x4e),
    andNot: () => f.simd(0x4f),
    or: () => f.simd(0x50),
    xor: () => f.simd(0x51),
    not: () => f.simd(0x4d),
    f: (b, c, d) => {
      f.get(c);
      f.get(d);
      f.get(b);
      f.simd(0x52); // v128.bitselect: (c & b) | (d & ~b)
    },
    rotl: (s) => {
      f.tee(T);
      f.i32(s);
      f.simd(0xab); // i32x4.shl
      f.get(T);
      f.i32(32 - s);
      f.simd(0xad); // i32x4.shr_u
      f.simd(0x50);
    },
  };
  for (let r = 0; r < 4; r++) {
    f.get(0);
    f.simd(0x00, 4, ...uleb(16 * r)); // v128.load
    f.set(A + r);
  }
  f.loopWhile(5, () => {
    for (let j = 0; j < 16; j++) {
      f.get(1);
      f.load32(4 * j);
      f.simd(0x11); // i32x4.splat
      for (let lane = 1; lane < 4; lane++) {
        f.get(1 + lane);
        f.load32(4 * j);
        f.simd(0x1c, lane); // i32x4.replace_lane
      }
      f.set(M + j);
    }
    for (let r = 0; r < 4; r++) {
      f.get(A + r);
      f.set(SAVED + r);
    }
    steps(f, [A, A + 1, A + 2, A + 3], (g) => f.get(M + g), ops);
    for (let r = 0; r < 4; r++) {
      f.get(A + r);
      f.get(SAVED + r);
      ops.add();
      f.set(A + r);
    }
    for (let p = 1; p <= 4; p++) {
      f.get(p);
      f.i32(64);
      f.op(0x6a);
      f.set(p);
    }
  });
  for (let r = 0; r < 4; r++) {
    f.get(0);
    f.get(A + r);
    f.simd(0x0b, 4, ...uleb(16 * r)); // v128.store
  }
  return f.encode([[25, V128]]);
}

function x1Body(): number[] {
  // params 0 state, 1 p, 2 n; i32 locals: 3-6 A-D, 7-10 saved
  const f = new Body();
  const [A, SAVED] = [3, 7];
  const ops: StepOps = {
    constant: (k) => f.i32(k),
    add: () => f.op(0x6a),
    and: () => f.op(0x71),
    andNot: () => {
      f.i32(-1);
      f.op(0x73, 0x71); // ~d, then &
    },
    or: () => f.op(0x72),
    xor: () => f.op(0x73),
    not: () => {
      f.i32(-1);
      f.op(0x73);
    },
    f: (b, c, d) => {
      f.get(d); // F = d ^ (b & (c ^ d))
      f.get(c);
      f.get(d);
      f.op(0x73);
      f.get(b);
      f.op(0x71, 0x73);
    },
    rotl: (s) => {
      f.i32(s);
      f.op(0x77); // i32.rotl
    },
  };
  for (let r = 0; r < 4; r++) {
    f.get(0);
    f.load32(4 * r);
    f.set(A + r);
  }
  f.loopWhile(2, () => {
    for (let r = 0; r < 4; r++) {
      f.get(A + r);
      f.set(SAVED + r);
    }
    steps(
      f,
      [A, A + 1, A + 2, A + 3],
      (g) => {
        f.get(1);
        f.load32(4 * g);
      },
      ops,
    );
    for (let r = 0; r < 4; r++) {
      f.get(A + r);
      f.get(SAVED + r);
      ops.add();
      f.set(A + r);
    }
    f.get(1);
    f.i32(64);
    f.op(0x6a);
    f.set(1);
  });
  for (let r = 0; r < 4; r++) {
    f.get(0);
    f.get(A + r);
    f.op(0x36, 2, ...uleb(4 * r)); // i32.store
  }
  return f.encode([[8, I32]]);
}

/** The module's bytes. */
export function md5WasmBytes(): Uint8Array<ArrayBuffer> {
  const types = [2, 0x60, 6, I32, I32, I32, I32, I32, I32, 0, 0x60, 3, I32, I32, I32, 0];
  const x4 = x4Body();
  const x1 = x1Body();
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, types),
    ...section(3, [2, 0, 1]),
    ...section(5, [1, 0, 1]), // one memory, at least 1 page; grown by the caller
    ...section(7, [3, ...name("x4"), 0, 0, ...name("x1"), 0, 1, ...name("memory"), 2, 0]),
    ...section(10, [2, ...x4, ...x1]),
  ]);
}

let compiled: WebAssembly.Module | undefined;

/** A fresh instance with at least `bytes` of memory. Throws where WebAssembly SIMD is missing. */
export function instantiateMd5Wasm(bytes: number): Md5Wasm {
  compiled ??= new WebAssembly.Module(md5WasmBytes());
  const instance = new WebAssembly.Instance(compiled, {});
  const exports = instance.exports as unknown as Md5Wasm;
  const pages = Math.ceil(bytes / 65536);
  const have = exports.memory.buffer.byteLength / 65536;
  if (pages > have) exports.memory.grow(pages - have);
  return exports;
}
