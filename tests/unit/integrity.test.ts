/**
 * A source that delivers fewer or different bytes than it announces must end in a retry and a
 * verified object — never in a `done` row with wrong bytes. The source here is a real
 * filesystem adapter wrapped to announce honest MD5s and then corrupt or cut the first reads.
 */
import fs from "node:fs";
import path from "node:path";
import { Transform } from "node:stream";
import { describe, expect, it } from "vitest";
import { FsAdapter } from "../../adapters/fs.js";
import { parseLocation } from "../../adapters/index.js";
import type { Adapter, ObjectInfo } from "../../adapters/types.js";
import type { SqliteCheckpoint } from "../../checkpoints/sqlite.js";
import { Copier, type CopyEvent } from "../../src/copier.js";
import { plan } from "../../src/planner.js";
import { tempDir } from "../helpers/cli.js";
import { scratchStore } from "../helpers/copy.js";
import { MigrateError } from "../../src/errors.js";
import { crc32cBase64 } from "../../src/hashing.js";
import { md5, seededBytes } from "../helpers/streams.js";

type Fault = "flip" | "truncate";

/** The fs adapter, announcing true MD5s, whose first `faults` reads go wrong. */
function faultySource(dir: string, fault: Fault, faults: number): Adapter & { faultsLeft: number } {
  const inner = new FsAdapter(parseLocation(dir));
  const md5Of = (key: string) => md5(fs.readFileSync(path.join(dir, key)));
  const withMd5 = (o: ObjectInfo): ObjectInfo => ({ ...o, md5: md5Of(o.key) });
  const self = {
    faultsLeft: faults,
    display: "faulty",
    capabilities: { ...inner.capabilities, listMd5: true },
    async *list(prefix?: string) {
      for await (const o of inner.list(prefix)) yield withMd5(o);
    },
    stat: async (key: string) => withMd5(await inner.stat(key)),
    read: async (key: string, range?: { start: number; end: number }) => {
      const stream = await inner.read(key, range);
      if (self.faultsLeft <= 0) return stream;
      self.faultsLeft--;
      let seen = 0;
      const broken = new Transform({
        transform(chunk: Buffer, _e, cb) {
          if (fault === "flip") {
            const c = Buffer.from(chunk);
            if (seen === 0 && c.length) c[Math.floor(c.length / 2)] ^= 0xff;
            seen += c.length;
            return cb(null, c);
          }
          // truncate: drop everything after the first half of the first chunk
          if (seen++ === 0) return cb(null, chunk.subarray(0, Math.floor(chunk.length / 2)));
          cb();
        },
      });
      return stream.pipe(broken);
    },
    write: inner.write.bind(inner),
    delete: inner.delete.bind(inner),
    check: inner.check.bind(inner),
  };
  return self;
}

async function migrateWith(source: Adapter, dstDir: string, multipart: boolean, dressDst: (dst: FsAdapter) => Adapter = (d) => d, onStore: (s: SqliteCheckpoint) => void = () => undefined) {
  const dst = dressDst(new FsAdapter(parseLocation(dstDir)));
  const store = scratchStore(tempDir("integrity-ckpt"), "faulty", dstDir);
  onStore(store);
  await plan({ source, destination: dst, store, options: store.job.options });
  const events: CopyEvent[] = [];
  const copier = new Copier(source, dst, store, {
    concurrency: 4,
    retry: { attempts: 5, baseDelayMs: 1, maxDelayMs: 5 },
    multipart: { threshold: multipart ? 1024 * 1024 : Number.MAX_SAFE_INTEGER, partSize: 1024 * 1024, partConcurrency: 2, maxMemory: 64 * 1024 * 1024 },
    onEvent: (e) => events.push(e),
  });
  const result = await copier.run();
  const rows = [...store.rows()];
  store.close();
  return { result, rows, events };
}

describe("corrupted or truncated source streams", () => {
  for (const fault of ["flip", "truncate"] as Fault[]) {
    for (const multipart of [false, true]) {
      it(`${fault}, ${multipart ? "in parts" : "single stream"}: retried, then verified`, async () => {
        const src = tempDir("integrity-src");
        const dstDir = tempDir("integrity-dst");
        const data = seededBytes(5 * 1024 * 1024 + 321, 9);
        fs.writeFileSync(path.join(src, "obj.bin"), data);
        const source = faultySource(src, fault, 2);
        const { result, rows, events } = await migrateWith(source, dstDir, multipart);
        expect(source.faultsLeft).toBe(0); // the faults really happened
        expect(events.filter((e) => e.type === "retry").length).toBeGreaterThanOrEqual(1);
        expect(result.failed).toBe(0);
        expect(rows.map((r) => [r.key, r.state])).toEqual([["obj.bin", "done"]]);
        expect(fs.readFileSync(path.join(dstDir, "obj.bin")).equals(data)).toBe(true);
      });
    }
  }

  it("a source that never reads right ends failed, never done, and leaves nothing under the name", async () => {
    const src = tempDir("integrity-src");
    const dstDir = tempDir("integrity-dst");
    fs.writeFileSync(path.join(src, "obj.bin"), seededBytes(100_000, 3));
    const { result, rows } = await migrateWith(faultySource(src, "truncate", 1000), dstDir, false);
    expect(result.failed).toBe(1);
    expect(rows[0].state).toBe("failed");
    expect(rows[0].error).toMatch(/Integrity/);
    expect(fs.existsSync(path.join(dstDir, "obj.bin"))).toBe(false);
  });
});

describe("a source that states its whole CRC32C and MD5 (as GCS does), into parts that carry CRC32Cs", () => {
  /** A folder whose parts go with CRC32Cs, checked on arrival as S3 and GCS do; `md5s` gets each completion's whole MD5. */
  const crc32cParts = (md5s: (string | undefined)[]) => (dst: FsAdapter): Adapter => {
    const steps = dst.multipart;
    return Object.assign(Object.create(dst) as FsAdapter, {
      capabilities: { ...dst.capabilities, multipart: { ...dst.capabilities.multipart!, partChecksum: "crc32c" as const } },
      multipart: {
        ...steps,
        uploadPart: async (key: string, id: string, n: number, body: Buffer, crc: string) => {
          if (crc !== crc32cBase64(body)) throw new MigrateError("Integrity", `part ${n} does not match its CRC32C`, { temporary: true });
          await steps.uploadPart(key, id, n, body, md5(body));
          return `etag-${n}`;
        },
        completeUpload: async (...args: Parameters<typeof steps.completeUpload>) => (md5s.push(args[4]), steps.completeUpload(...args)),
      },
    });
  };

  it("bytes read wrong are caught by the parts' CRC32Cs combined, then copied again; no MD5 is chained", async () => {
    const src = tempDir("integrity-src");
    const dstDir = tempDir("integrity-dst");
    const data = seededBytes(5 * 1024 * 1024 + 321, 11);
    fs.writeFileSync(path.join(src, "obj.bin"), data);
    const flipped = faultySource(src, "flip", 2);
    const crc = crc32cBase64(data);
    const source = Object.assign(flipped, {
      capabilities: { ...flipped.capabilities, crc32c: true },
      list: async function* (prefix?: string) {
        for await (const o of faultySource(src, "flip", 0).list(prefix)) yield { ...o, crc32c: crc };
      },
      stat: async (key: string) => ({ ...(await faultySource(src, "flip", 0).stat(key)), crc32c: crc }),
    });
    const md5s: (string | undefined)[] = [];
    let hashStates = 0;
    const { result, rows, events } = await migrateWith(source, dstDir, true, crc32cParts(md5s), (store) => {
      const save = store.saveHashState.bind(store);
      store.saveHashState = (...args) => (hashStates++, save(...args));
    });
    expect(source.faultsLeft).toBe(0); // the faults really happened
    expect(events.some((e) => e.type === "retry" && /CRC32C of bytes read/.test(e.error))).toBe(true);
    expect(result.failed).toBe(0);
    expect(rows.map((r) => [r.key, r.state])).toEqual([["obj.bin", "done"]]);
    expect(fs.readFileSync(path.join(dstDir, "obj.bin")).equals(data)).toBe(true);
    expect(hashStates).toBe(0);
    expect(md5s.at(-1)).toBe(md5(data));
  });
});

/**
 * A 3 MiB local file to copy into a folder in 1 MiB parts, planned; `wrap` dresses the
 * destination (every multipart abort is recorded in `aborted`).
 */
async function partsJob(seed: number, wrap: (dst: FsAdapter, steps: FsAdapter["multipart"], aborted: string[]) => Partial<Adapter["multipart"]> = () => ({})) {
  const src = tempDir("integrity-src");
  const dstDir = tempDir("integrity-dst");
  const data = seededBytes(3 * 1024 * 1024 + seed, seed);
  fs.writeFileSync(path.join(src, "obj.bin"), data);
  const dst = new FsAdapter(parseLocation(dstDir));
  const steps = dst.multipart;
  const aborted: string[] = [];
  const destination: Adapter = Object.assign(Object.create(dst) as FsAdapter, {
    multipart: {
      ...steps,
      abortUpload: async (key: string, id: string) => (aborted.push(id), steps.abortUpload(key, id)),
      ...wrap(dst, steps, aborted),
    },
  });
  const store = scratchStore(tempDir("integrity-ckpt"), src, dstDir);
  const source = new FsAdapter(parseLocation(src));
  await plan({ source, destination, store, options: store.job.options });
  const run = () =>
    new Copier(source, destination, store, {
      concurrency: 2,
      retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 },
      multipart: { threshold: 1024 * 1024, partSize: 1024 * 1024, partConcurrency: 2, maxMemory: 16 * 1024 * 1024 },
    }).run();
  const arrived = () => fs.readFileSync(path.join(dstDir, "obj.bin")).equals(data);
  return { data, source, steps, store, aborted, run, arrived };
}

describe("an upload recorded with parts of another checksum kind (an older cloudmigrate)", () => {
  it("is abandoned and started again, not continued with mixed parts", async () => {
    const { data, source, steps, store, aborted, run, arrived } = await partsJob(5);
    // A run before this one started the upload and committed part 1 with a CRC32C, a kind the
    // filesystem does not use (it takes MD5 parts).
    const info = await source.stat("obj.bin");
    const old = await steps.startUpload("obj.bin", info, 1024 * 1024);
    const first = data.subarray(0, 1024 * 1024);
    const etag = await steps.uploadPart("obj.bin", old, 1, first, md5(first));
    store.saveUpload({ key: "obj.bin", uploadId: old, partSize: 1024 * 1024, size: info.size, mtime: info.mtime, partChecksum: "crc32c" });
    store.savePart("obj.bin", { partNumber: 1, size: first.length, checksum: "AAAAAA==", etag });

    const result = await run();
    expect(result.failed).toBe(0);
    expect(aborted).toEqual([old]);
    expect(store.uploads()).toEqual([]);
    store.close();
    expect(arrived()).toBe(true);
  });
});

describe("an upload whose whole-object MD5 state an older cloudmigrate saved (hash-wasm's form)", () => {
  it("is continued: its committed parts are read again to hash, not sent again, and the MD5 is right", async () => {
    const sent: number[] = [];
    const md5s: (string | undefined)[] = [];
    const { data, source, steps, store, run, arrived } = await partsJob(9, (_dst, steps) => ({
      uploadPart: async (...args: Parameters<typeof steps.uploadPart>) => (sent.push(args[2]), steps.uploadPart(...args)),
      completeUpload: async (...args: Parameters<typeof steps.completeUpload>) => (md5s.push(args[4]), steps.completeUpload(...args)),
    }));
    const info = await source.stat("obj.bin");
    const id = await steps.startUpload("obj.bin", info, 1024 * 1024);
    store.saveUpload({ key: "obj.bin", uploadId: id, partSize: 1024 * 1024, size: info.size, mtime: info.mtime, partChecksum: "md5" });
    for (const n of [1, 2]) {
      const part = data.subarray((n - 1) * 1024 * 1024, n * 1024 * 1024);
      const sum = md5(part);
      store.savePart("obj.bin", { partNumber: n, size: part.length, checksum: sum, etag: await steps.uploadPart("obj.bin", id, n, part, sum) });
    }
    store.saveHashState("obj.bin", 2, Uint8Array.from([0x2b, 0x1e, 0x07, 0x51, ...new Array(340).fill(7)]));
    sent.length = 0;

    const result = await run();
    expect(result.failed).toBe(0);
    expect(sent.sort()).toEqual([3, 4]);
    expect(md5s).toEqual([md5(data)]);
    store.close();
    expect(arrived()).toBe(true);
  });
});

describe("an upload the service can no longer complete", () => {
  it("is abandoned and started again, ending verified", async () => {
    let refusals = 1;
    // The service says a part we recorded is gone (as MinIO did when a stalled duplicate landed).
    const { store, aborted, run, arrived } = await partsJob(7, (_dst, steps) => ({
      completeUpload: async (...args: Parameters<typeof steps.completeUpload>) => {
        if (refusals-- > 0) throw new MigrateError("ConditionNotMatch", "InvalidPart: one or more parts could not be found");
        return steps.completeUpload(...args);
      },
    }));
    const result = await run();
    expect(result.failed).toBe(0);
    expect(aborted).toHaveLength(1);
    expect(store.uploads()).toEqual([]);
    store.close();
    expect(arrived()).toBe(true);
  });
});

describe("a part that cannot be read", () => {
  it("fails its object (parts waiting for their hash turn do not hang), and no upload is left", async () => {
    const src = tempDir("integrity-src");
    const dstDir = tempDir("integrity-dst");
    fs.writeFileSync(path.join(src, "obj.bin"), seededBytes(4 * 1024 * 1024, 5));
    const inner = new FsAdapter(parseLocation(src));
    let refused = 0;
    const source: Adapter = {
      display: "first part unreadable",
      capabilities: inner.capabilities,
      list: (p) => inner.list(p),
      stat: (k) => inner.stat(k),
      read: async (key, range) => {
        if (range?.start === 0) {
          refused++;
          // Later parts finish their reads first and wait for part 1's hash turn.
          await new Promise((r) => setTimeout(r, 50));
          throw new MigrateError("PermissionDenied", `${key}: refused`);
        }
        return inner.read(key, range);
      },
      write: (...a) => inner.write(...a),
      delete: (k) => inner.delete(k),
      check: (r) => inner.check(r),
    };
    const { result, rows } = await migrateWith(source, dstDir, true);
    expect(refused).toBeGreaterThanOrEqual(1);
    expect(result.failed).toBe(1);
    expect(rows[0].state).toBe("failed");
    expect(rows[0].error).toMatch(/refused/);
    expect(fs.readdirSync(dstDir)).toEqual([]); // the upload's temporary file was abandoned
  }, 20_000);
});

describe("a streamed body without an MD5, into a destination that reports a CRC32C of what it stored", () => {
  // Over 16 MiB: streamed to the destination, not read whole first.
  const data = seededBytes(17 * 1024 * 1024 + 3, 11);

  /** The fs destination dressed as a service that takes streams and reports `report(stored bytes)`. */
  const reporting = (report: (stored: Buffer) => { crc32c?: string; md5?: string }) => (d: FsAdapter): Adapter =>
    Object.assign(Object.create(d) as Adapter, {
      writeFromFile: undefined,
      capabilities: { ...d.capabilities, crc32c: true, writeReportsMd5: true },
      async write(...args: Parameters<Adapter["write"]>) {
        const r = await d.write(...args);
        return { ...r, ...report(fs.readFileSync(d.localPath!(args[0]))) };
      },
    });

  async function copy(report: (stored: Buffer) => { crc32c?: string; md5?: string }) {
    const src = tempDir("crc-src");
    const dstDir = tempDir("crc-dst");
    fs.writeFileSync(path.join(src, "obj.bin"), data);
    const run = await migrateWith(new FsAdapter(parseLocation(src)), dstDir, false, reporting(report));
    return { ...run, arrived: fs.existsSync(path.join(dstDir, "obj.bin")) ? fs.readFileSync(path.join(dstDir, "obj.bin")) : undefined };
  }

  it("is checked by that CRC32C alone: no MD5 is made to compare with the one reported", async () => {
    // An MD5 that matches nothing: comparing one would fail the copy.
    const { result, rows, arrived } = await copy((stored) => ({ crc32c: crc32cBase64(stored), md5: "0".repeat(32) }));
    expect(result.failed).toBe(0);
    expect(rows.map((r) => [r.key, r.state])).toEqual([["obj.bin", "done"]]);
    expect(arrived?.equals(data)).toBe(true);
  });

  it("a CRC32C that differs from the bytes sent fails the object and leaves nothing under the name", async () => {
    const { result, rows, arrived } = await copy(() => ({ crc32c: crc32cBase64(Buffer.from("other bytes")) }));
    expect(result.failed).toBe(1);
    expect(rows[0].error).toMatch(/Integrity.*crc32c .* differs from sent/);
    expect(arrived).toBeUndefined();
  });

  it("no CRC32C reported: nothing checked the bytes, so the object fails and nothing stays under the name", async () => {
    const { result, rows, arrived } = await copy((stored) => ({ md5: md5(stored) }));
    expect(result.failed).toBe(1);
    expect(rows[0].error).toMatch(/reported no crc32c/);
    expect(arrived).toBeUndefined();
  });
});
