/**
 * A synthetic adapter for the planning benchmarks: `count` objects generated on the fly in key
 * order, no I/O. Object i has key `syntheticKey(i)`, `size` bytes and a fixed mtime; `present`
 * selects which indexes exist (a destination with 99 % of them: `(i) => i % 100 !== 0`).
 * Reads yield zeros; writes are drained and dropped. Used only by the benchmark.
 */
import { Readable } from "node:stream";
import type { Adapter, ByteRange, Capabilities, ObjectInfo, ObjectStream, WriteResult } from "../adapters/types.js";
import { MigrateError } from "../src/errors.js";

const MTIME = Date.UTC(2024, 0, 1);
const PAGE = 1000;

/** Keys sort in index order: a fixed-width decimal under 100-object folders. */
export function syntheticKey(i: number): string {
  const n = String(i).padStart(9, "0");
  return `s${n.slice(0, 7)}/o${n}`;
}

export interface SyntheticSpec {
  count: number;
  size: number;
  present?: (i: number) => boolean;
}

const capabilities: Capabilities = Object.freeze({
  readRange: true,
  listMd5: false,
  writeReportsMd5: false,
  writeChecksMd5: false,
  crc32c: false,
  preservesMtime: true,
  mtimePrecisionMs: 1,
  maxKeyBytes: 1024,
  metadata: false,
});

export class SyntheticAdapter implements Adapter {
  readonly display: string;
  readonly capabilities = capabilities;

  constructor(private readonly spec: SyntheticSpec) {
    this.display = `synthetic://${spec.count}`;
  }

  private info(i: number): ObjectInfo {
    return { key: syntheticKey(i), size: this.spec.size, mtime: MTIME };
  }

  private indexOf(key: string): number | undefined {
    const m = /^s\d{7}\/o(\d{9})$/.exec(key);
    if (!m) return undefined;
    const i = Number(m[1]);
    return i < this.spec.count && (this.spec.present?.(i) ?? true) ? i : undefined;
  }

  async *list(prefix = ""): AsyncIterable<ObjectInfo> {
    const { count, present } = this.spec;
    const page: ObjectInfo[] = [];
    for (let i = 0; i < count; i++) {
      if (present && !present(i)) continue;
      const info = this.info(i);
      if (prefix && !info.key.startsWith(prefix + "/")) continue;
      page.push(info);
      if (page.length === PAGE) {
        yield* page;
        page.length = 0;
      }
    }
    yield* page;
  }

  async stat(key: string): Promise<ObjectInfo> {
    const i = this.indexOf(key);
    if (i === undefined) throw new MigrateError("NotFound", `${key}: not found`);
    return this.info(i);
  }

  async read(key: string, range?: ByteRange): Promise<ObjectStream> {
    const info = await this.stat(key);
    const len = range ? range.end - range.start + 1 : info.size;
    const s: ObjectStream = Readable.from(len > 0 ? [Buffer.alloc(len)] : []);
    s.info = info;
    return s;
  }

  async write(_key: string, body: Readable): Promise<WriteResult> {
    let size = 0;
    for await (const chunk of body as AsyncIterable<Buffer>) size += chunk.length;
    return { size };
  }

  async delete(): Promise<void> {}

  async check(): Promise<void> {}
}
