/**
 * Many MD5s at once on one thread: the hashes asked for while others are running share the
 * SIMD lanes, a slice of each at a time. MD5 is a chain of dependent steps, so more lanes in a
 * register cost almost nothing more: four 8 MiB parts cost about what 1.5 cost one after
 * another with OpenSSL, and eight about what four do. Four lanes: the native addon's md5x4
 * (x86-64; it reads the bytes where they are), else md5-wasm.ts's (bytes copied into its
 * memory). Five to eight: the addon's md5x8 (CPUs with AVX2). A hash alone runs on the
 * WebAssembly `x1` (OpenSSL's speed).
 *
 * Between slices the scheduler yields to the event loop, so hashes asked for meanwhile (a worker
 * thread's messages) join the free lanes.
 *
 * A saved state (`encodeMd5State`) is what the checkpoint keeps of a whole-object MD5 advanced
 * part by part: the four words, the length so far and the bytes past the last whole block.
 */
import { DATA_START, X1_STATE, X4_STATE, instantiateMd5Wasm, type Md5Wasm } from "./md5-wasm.js";
import { fsNative } from "./native.js";

/** Bytes of each lane hashed per call; 8 lanes' slices stay in a core's L2 cache. */
const SLICE = 128 * 1024;
/** Lanes of the x4s (md5x4, WebAssembly); md5x8 has twice as many. */
const LANES = 4;
/** MD5s a default Md5Lanes (the hashing thread's) hashes side by side at most: 8 with md5x8, else 4. */
export const MD5_LANES = fsNative.md5x8 ? 2 * LANES : LANES;
const INITIAL = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
/** "MD5L" and a version byte: states written by older versions (hash-wasm's) are not ours. */
const MAGIC = [0x4d, 0x44, 0x35, 0x4c, 1];
const HEADER = MAGIC.length + 16 + 8;

export interface Md5State {
  /** A, B, C, D after the whole blocks hashed so far. */
  words: number[];
  /** Bytes taken in, whole blocks and tail. */
  length: number;
  /** The bytes past the last whole block (under 64). */
  tail: Uint8Array;
}

export const freshMd5State = (): Md5State => ({ words: [...INITIAL], length: 0, tail: new Uint8Array(0) });

export function encodeMd5State(s: Md5State): Uint8Array {
  const out = new Uint8Array(HEADER + s.tail.length);
  out.set(MAGIC);
  const view = new DataView(out.buffer);
  s.words.forEach((w, i) => view.setUint32(MAGIC.length + 4 * i, w, true));
  view.setBigUint64(MAGIC.length + 16, BigInt(s.length), true);
  out.set(s.tail, HEADER);
  return out;
}

/** The state in `bytes`, or undefined if they are not a state this version wrote. */
export function decodeMd5State(bytes: Uint8Array): Md5State | undefined {
  if (bytes.length < HEADER || bytes.length >= HEADER + 64 || MAGIC.some((b, i) => bytes[i] !== b)) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const words = [0, 1, 2, 3].map((i) => view.getUint32(MAGIC.length + 4 * i, true));
  const length = Number(view.getBigUint64(MAGIC.length + 16, true));
  const tail = bytes.slice(HEADER);
  return length % 64 === tail.length ? { words, length, tail } : undefined;
}

/** MD5's padding after `length` bytes: 0x80, zeros to 56 mod 64, the bit length (little-endian). */
function padding(length: number): Uint8Array {
  const size = 64 - ((length + 8) % 64) + 8;
  const pad = new Uint8Array(size);
  pad[0] = 0x80;
  const view = new DataView(pad.buffer);
  view.setUint32(size - 8, (length * 8) >>> 0, true);
  view.setUint32(size - 4, Math.floor(length / 2 ** 29), true);
  return pad;
}

const hexOf = (words: number[]): string => {
  const out = Buffer.alloc(16);
  words.forEach((w, i) => out.writeUInt32LE(w, 4 * i));
  return out.toString("hex");
};

type FsNativeX4 = NonNullable<typeof fsNative.md5x4>;
type FsNativeX8 = NonNullable<typeof fsNative.md5x8>;

interface Job {
  words: number[];
  /** The bytes to take in, in order; all but the last whole-block remainder get hashed. */
  segments: Uint8Array[];
  segment: number;
  offset: number;
  left: number;
  done(words: number[], tail: Uint8Array): void;
}

export class Md5Lanes {
  private readonly wasm: Md5Wasm = instantiateMd5Wasm(DATA_START + LANES * SLICE);
  private readonly memory = new Uint8Array(this.wasm.memory.buffer);
  private readonly words = new Uint32Array(this.wasm.memory.buffer);
  private readonly queue: Job[] = [];
  private readonly lanes: Job[] = [];
  private running = false;
  private readonly nativeX4: FsNativeX4 | undefined;
  private readonly nativeX8: FsNativeX8 | undefined;
  /** Hashes run side by side at most: 8 with md5x8, else 4. */
  private readonly laneCount: number;
  /** The native x4's and x8's states, and each lane's room for bytes that straddle two segments. */
  private readonly state4 = new Uint32Array(16);
  private readonly state8 = new Uint32Array(32);
  private readonly scratch: Uint8Array[] = [];

  /**
   * `x4`: "wasm" keeps x4 in WebAssembly even where the addon has it, "sse2" the addon's SSE2
   * code even where the CPU has AVX-512. `x8`: "off" stays at four lanes, "avx2" runs the AVX2
   * code even where the CPU has AVX-512 (tests run them all).
   */
  constructor(opts: { x4?: "best" | "sse2" | "wasm"; x8?: "best" | "avx2" | "off" } = {}) {
    const x4 = fsNative.md5x4;
    this.nativeX4 = !x4 || opts.x4 === "wasm" ? undefined : opts.x4 === "sse2" ? (st, p0, p1, p2, p3, n) => x4(st, p0, p1, p2, p3, n, true) : x4;
    const x8 = fsNative.md5x8;
    this.nativeX8 = !x8 || opts.x8 === "off" ? undefined : opts.x8 === "avx2" ? (st, p0, p1, p2, p3, p4, p5, p6, p7, n) => x8(st, p0, p1, p2, p3, p4, p5, p6, p7, n, true) : x8;
    this.laneCount = this.nativeX8 ? 2 * LANES : LANES;
  }

  /** MD5 (hex) of `data`. */
  md5(data: Uint8Array): Promise<string> {
    return new Promise((resolve) => this.submit(INITIAL, [data, padding(data.length)], (words) => resolve(hexOf(words))));
  }

  /** `state` advanced over `data`. */
  update(state: Md5State, data: Uint8Array): Promise<Md5State> {
    const length = state.length + data.length;
    return new Promise((resolve) => this.submit(state.words, [state.tail, data], (words, tail) => resolve({ words, length, tail })));
  }

  /** The MD5 (hex) of everything `state` took in. Synchronous: one or two blocks. */
  finish(state: Md5State): string {
    const pad = padding(state.length);
    const blocks = new Uint8Array(state.tail.length + pad.length);
    blocks.set(state.tail);
    blocks.set(pad, state.tail.length);
    this.memory.set(blocks, DATA_START);
    this.words.set(state.words, X1_STATE / 4);
    this.wasm.x1(X1_STATE, DATA_START, blocks.length / 64);
    return hexOf([...this.words.subarray(X1_STATE / 4, X1_STATE / 4 + 4)]);
  }

  private submit(words: number[], segments: Uint8Array[], done: Job["done"]): void {
    const job: Job = { words: [...words], segments, segment: 0, offset: 0, left: segments.reduce((n, s) => n + s.length, 0), done };
    if (job.left < 64) this.complete(job);
    else {
      this.queue.push(job);
      if (!this.running) void this.run();
    }
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      for (;;) {
        while (this.lanes.length < this.laneCount && this.queue.length) this.lanes.push(this.queue.shift()!);
        if (!this.lanes.length) return;
        this.step();
        // Let hashes asked for meanwhile arrive and take free lanes.
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      this.running = false;
    }
  }

  /** One call: the same number of whole blocks from every busy lane, at most a slice each. */
  private step(): void {
    const lanes = this.lanes;
    const blocks = Math.min(...lanes.map((j) => Math.min(SLICE, j.left) >> 6));
    const bytes = blocks * 64;
    const x8 = lanes.length > LANES ? this.nativeX8 : undefined;
    const x4 = lanes.length > 1 ? this.nativeX4 : undefined;
    if (x8) {
      const st = this.state8;
      this.nativeStep(st, bytes, (v) => x8(st, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], blocks));
    } else if (x4) {
      const st = this.state4;
      this.nativeStep(st, bytes, (v) => x4(st, v[0], v[1], v[2], v[3], blocks));
    } else {
      lanes.forEach((job, l) => this.take(job, this.memory, DATA_START + l * SLICE, bytes));
      this.wasmStep(lanes, blocks);
    }
    for (let l = lanes.length - 1; l >= 0; l--) {
      if (lanes[l].left < 64) this.complete(lanes.splice(l, 1)[0]);
    }
  }

  /**
   * One call of a native x4 or x8 whose state `st` holds every lane's words (word × width +
   * lane): each busy lane's words go in and come back out; `call` gets a view of `bytes` per
   * lane, idle lanes hashing lane 0's bytes again (their results are dropped).
   */
  private nativeStep(st: Uint32Array, bytes: number, call: (views: Uint8Array[]) => void): void {
    const width = st.length / 4;
    const views = this.lanes.map((job, l) => this.view(job, bytes, l));
    while (views.length < width) views.push(views[0]);
    this.lanes.forEach((job, l) => job.words.forEach((w, r) => (st[width * r + l] = w)));
    call(views);
    this.lanes.forEach((job, l) => (job.words = [0, 1, 2, 3].map((r) => st[width * r + l])));
  }

  /** The WebAssembly x1 or x4 over `blocks` of each lane's bytes, already in its memory. */
  private wasmStep(lanes: Job[], blocks: number): void {
    if (lanes.length === 1) {
      this.words.set(lanes[0].words, X1_STATE / 4);
      this.wasm.x1(X1_STATE, DATA_START, blocks);
      lanes[0].words = [...this.words.subarray(X1_STATE / 4, X1_STATE / 4 + 4)];
    } else {
      const base = X4_STATE / 4;
      lanes.forEach((job, l) => job.words.forEach((w, r) => (this.words[base + 4 * r + l] = w)));
      // Idle lanes hash lane 0's bytes again; their results are dropped.
      const at = (l: number) => DATA_START + (l < lanes.length ? l : 0) * SLICE;
      this.wasm.x4(X4_STATE, at(0), at(1), at(2), at(3), blocks);
      lanes.forEach((job, l) => (job.words = [0, 1, 2, 3].map((r) => this.words[base + 4 * r + l])));
    }
  }

  /** The job's next `bytes`: where they lie if in one segment, else copied into lane `l`'s room. */
  private view(job: Job, bytes: number, l: number): Uint8Array {
    // An empty tail (a state on a block boundary) is no reason to copy.
    while (job.offset === job.segments[job.segment].length) {
      job.segment++;
      job.offset = 0;
    }
    const seg = job.segments[job.segment];
    if (seg.length - job.offset < bytes) {
      const room = (this.scratch[l] ??= new Uint8Array(SLICE));
      this.take(job, room, 0, bytes);
      return room.subarray(0, bytes);
    }
    const out = seg.subarray(job.offset, job.offset + bytes);
    this.advance(job, bytes);
    job.left -= bytes;
    return out;
  }

  /** Past `n` bytes of the job's current segment (at most what is left of it). */
  private advance(job: Job, n: number): void {
    job.offset += n;
    if (job.offset === job.segments[job.segment].length) {
      job.segment++;
      job.offset = 0;
    }
  }

  /** Copy the job's next `bytes` into `into` at `at`. */
  private take(job: Job, into: Uint8Array, at: number, bytes: number): void {
    let need = bytes;
    while (need > 0) {
      const seg = job.segments[job.segment];
      const n = Math.min(need, seg.length - job.offset);
      into.set(seg.subarray(job.offset, job.offset + n), at + bytes - need);
      need -= n;
      this.advance(job, n);
    }
    job.left -= bytes;
  }

  private complete(job: Job): void {
    const tail = new Uint8Array(job.left);
    let at = 0;
    for (let s = job.segment, o = job.offset; at < tail.length; s++, o = 0) {
      const part = job.segments[s].subarray(o);
      tail.set(part, at);
      at += part.length;
    }
    job.done(job.words, tail);
  }
}
