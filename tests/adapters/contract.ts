/**
 * The adapter contract suite: one call per adapter, run against a real service (an emulator
 * or a temp dir). Tests are chosen from the adapter's capabilities: what an adapter lacks is
 * skipped, never faked. Like rclone's fstests and OpenDAL's behaviour tests.
 *
 *   adapterContract("s3", async () => ({ open: (prefix) => ..., badCredentials, missingBucket, stop }))
 */
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Adapter, AdapterOptions, Location, ObjectInfo, WriteOptions } from "../../adapters/types.js";
import { FsAdapter } from "../../adapters/fs.js";
import { planAndCopy } from "../helpers/copy.js";
import { tempDir } from "../helpers/temp.js";
import { parseLocation } from "../../adapters/index.js";
import type { Emulator } from "../emulators/types.js";
import { MigrateError } from "../../src/errors.js";
import { compareKeys } from "../../src/keys.js";
import { bodyOf, collect, md5, readAll, seededBytes } from "../helpers/streams.js";
import { crc32cBase64 } from "../../src/hashing.js";
import pLimit from "p-limit";

export interface ContractTarget {
  /** An adapter on the target's test bucket (or dir) at `prefix` (may be ""; no slashes at ends). */
  open(prefix: string): Promise<Adapter>;
  /** An adapter whose credentials the service rejects; absent where the emulator accepts anything. */
  badCredentials?(): Promise<Adapter>;
  /** An adapter on a bucket that does not exist. */
  missingBucket?(): Promise<Adapter>;
  /** A destination root that does not exist is created on first write (a filesystem folder). */
  createsMissingRoot?: boolean;
  stop?(): Promise<void>;
}

function unique(): string {
  return `t-${crypto.randomBytes(4).toString("hex")}`;
}

async function put(a: Adapter, key: string, data: Buffer | string, extra: Partial<ObjectInfo> = {}) {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
  return a.write(key, bodyOf(buf), { key, size: buf.length, ...extra });
}

async function expectKind(p: Promise<unknown>, kind: string, scope?: "run"): Promise<MigrateError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected a ${kind} error`).toBeInstanceOf(MigrateError);
  const me = err as MigrateError;
  expect(me.kind).toBe(kind);
  if (scope) expect(me.scope).toBe(scope);
  return me;
}

/** A part's checksum of the kind the adapter's uploadPart takes. */
function partChecksum(a: Adapter, body: Buffer): string {
  return a.capabilities.multipart?.partChecksum === "crc32c" ? crc32cBase64(body) : md5(body);
}

export function adapterContract(name: string, start: () => Promise<ContractTarget | undefined>): void {
  describe(`adapter contract: ${name}`, () => {
    let target: ContractTarget | undefined;
    beforeAll(async () => {
      target = await start();
    }, 120_000);
    afterAll(async () => {
      await target?.stop?.();
    });

    /** A fresh adapter at a unique prefix; skips the test when the service is not available. */
    async function fresh(ctx: { skip: (note?: string) => void }): Promise<Adapter> {
      if (!target) ctx.skip(`${name} emulator not available`);
      return target!.open(unique());
    }

    it("round-trips bytes, and stat/list report the size", async (ctx) => {
      const a = await fresh(ctx);
      const data = seededBytes(100_000, 1);
      const res = await put(a, "file.bin", data);
      expect(res.size).toBe(data.length);
      if (a.capabilities.writeReportsMd5) expect(res.md5).toBe(md5(data));
      // The copier checks streamed bodies by this CRC32C alone when the source has no MD5.
      if (a.capabilities.crc32c) expect(res.crc32c).toBe(crc32cBase64(data));
      expect((await readAll(await a.read("file.bin"))).equals(data)).toBe(true);
      const st = await a.stat("file.bin");
      expect(st.key).toBe("file.bin");
      expect(st.size).toBe(data.length);
      if (a.capabilities.listMd5) expect(st.md5).toBe(md5(data));
      const listed = await collect(a.list());
      expect(listed.map((o) => [o.key, o.size])).toEqual([["file.bin", data.length]]);
      if (a.capabilities.listMd5) expect(listed[0].md5).toBe(md5(data));
    });

    it("stores zero-byte objects", async (ctx) => {
      const a = await fresh(ctx);
      await put(a, "empty", Buffer.alloc(0));
      expect((await a.stat("empty")).size).toBe(0);
      expect((await readAll(await a.read("empty"))).length).toBe(0);
      expect((await collect(a.list())).map((o) => o.key)).toEqual(["empty"]);
    });

    it("overwrites an existing object", async (ctx) => {
      const a = await fresh(ctx);
      await put(a, "k", "first version");
      await put(a, "k", "second");
      expect((await readAll(await a.read("k"))).toString()).toBe("second");
      expect((await a.stat("k")).size).toBe(6);
    });

    it("reads a byte range", async (ctx) => {
      const a = await fresh(ctx);
      if (!a.capabilities.readRange) ctx.skip("no ranged reads");
      const data = seededBytes(10_000, 2);
      await put(a, "r", data);
      expect((await readAll(await a.read("r", { start: 100, end: 199 }))).equals(data.subarray(100, 200))).toBe(true);
      expect((await readAll(await a.read("r", { start: 9_990, end: 9_999 }))).equals(data.subarray(9_990))).toBe(true);
    });

    it("stat, read of a missing key → NotFound; delete of a missing key succeeds", async (ctx) => {
      const a = await fresh(ctx);
      await expectKind(a.stat("nope"), "NotFound");
      await expectKind(
        a.read("nope").then(async (s) => readAll(s)),
        "NotFound",
      );
      await a.delete("nope");
      await put(a, "yes", "x");
      await a.delete("yes");
      await expectKind(a.stat("yes"), "NotFound");
      expect(await collect(a.list())).toEqual([]);
    });

    it("lists nested keys in UTF-8 byte order, and a sub-prefix is a folder", async (ctx) => {
      const a = await fresh(ctx);
      const keys = ["a/x", "a/y/z", "a-b/1", "ab/2", "a.c", "b", "a/y0", "Z", "é/1", "a/" + "😀", "a/\uFFFD"];
      for (const k of keys) await put(a, k, k);
      const listed = (await collect(a.list())).map((o) => o.key);
      expect(listed).toEqual([...keys].sort(compareKeys));
      expect((await collect(a.list("a"))).map((o) => o.key)).toEqual(["a/x", "a/y/z", "a/y0", "a/\uFFFD", "a/😀"].sort(compareKeys));
      expect(await collect(a.list("missing"))).toEqual([]);
      if (a.listPages) {
        const paged = async (prefix?: string) => (await collect(a.listPages!(prefix))).flat().map((o) => o.key);
        expect(await paged()).toEqual([...keys].sort(compareKeys));
        expect(await paged("a")).toEqual(["a/x", "a/y/z", "a/y0", "a/\uFFFD", "a/😀"].sort(compareKeys));
        expect(await paged("missing")).toEqual([]);
      }
    });

    it("a location's prefix is a folder: s3://b/a never lists b/ab/…", async (ctx) => {
      if (!target) ctx.skip(`${name} emulator not available`);
      const base = unique();
      const root = await target!.open(base);
      await put(root, "photos/1", "in");
      await put(root, "photos-old/2", "out");
      await put(root, "photosX", "out");
      const inner = await target!.open(`${base}/photos`);
      expect((await collect(inner.list())).map((o) => o.key)).toEqual(["1"]);
      expect(await collect((await target!.open(`${base}/nothing-here`)).list())).toEqual([]);
    });

    it("paginates listings across > 1,000 keys", async (ctx) => {
      const a = await fresh(ctx);
      const n = 1_234;
      const limit = pLimit(32);
      const keys = Array.from({ length: n }, (_, i) => `p/${String(i).padStart(5, "0")}`);
      await Promise.all(keys.map((k) => limit(() => put(a, k, ""))));
      const listed = (await collect(a.list())).map((o) => o.key);
      expect(listed.length).toBe(n);
      expect(listed).toEqual(keys);
      if (a.listPages) expect((await collect(a.listPages())).flat().map((o) => o.key)).toEqual(keys);
    }, 120_000);

    it("keeps odd keys exactly: spaces, unicode NFC vs NFD, + % # ? & = @ :, dots", async (ctx) => {
      const a = await fresh(ctx);
      const nfc = "caf\u00e9";
      const nfd = "cafe\u0301";
      const keys = [
        "with space.txt",
        ` lead and trail `.trim() + " x",
        nfc,
        nfd,
        "plus+percent%25%hash#q?amp&eq=at@colon:.txt",
        ".hidden",
        "trailing.",
        "dir.with.dots/..leading",
        "日本語/ファイル",
        "emoji 🚀",
      ].filter((k) => !a.keyProblem?.(k));
      for (const k of keys) await put(a, k, `body of ${k}`);
      const listed = (await collect(a.list())).map((o) => o.key);
      expect(listed).toEqual([...keys].sort(compareKeys));
      for (const k of keys) {
        expect((await readAll(await a.read(k))).toString()).toBe(`body of ${k}`);
        expect((await a.stat(k)).key).toBe(k);
      }
    });

    it("stores a key as long as the service allows", async (ctx) => {
      const a = await fresh(ctx);
      const room = a.capabilities.maxKeyBytes - 64; // leave room for the test prefix
      const seg = "k".repeat(200);
      let key = seg;
      while (Buffer.byteLength(key + "/" + seg) <= room) key += "/" + seg;
      if (a.keyProblem?.(key)) ctx.skip(`long key not allowed here: ${a.keyProblem(key)}`);
      await put(a, key, "long");
      expect((await collect(a.list())).map((o) => o.key)).toEqual([key]);
      expect((await readAll(await a.read(key))).toString()).toBe("long");
    });

    it("round-trips content headers, user metadata and the source mtime", async (ctx) => {
      const a = await fresh(ctx);
      if (!a.capabilities.metadata) ctx.skip("no metadata");
      const mtime = Date.UTC(2021, 5, 7, 8, 9, 10, 0);
      await put(a, "m.html", "<p>hi</p>", {
        contentType: "text/html; charset=utf-8",
        cacheControl: "max-age=3600",
        contentEncoding: "identity",
        contentDisposition: 'attachment; filename="m.html"',
        contentLanguage: "en-GB",
        metadata: { color: "blue", owner: "ops" },
        mtime,
      });
      const st = await a.stat("m.html");
      expect(st.contentType).toBe("text/html; charset=utf-8");
      expect(st.cacheControl).toBe("max-age=3600");
      expect(st.contentEncoding).toBe("identity");
      expect(st.contentDisposition).toBe('attachment; filename="m.html"');
      expect(st.contentLanguage).toBe("en-GB");
      expect(st.metadata).toMatchObject({ color: "blue", owner: "ops" });
      expect(Math.abs((st.mtime ?? 0) - mtime)).toBeLessThanOrEqual(a.capabilities.mtimePrecisionMs);
      if (a.capabilities.preservesMtime) {
        const [listed] = await collect(a.list());
        expect(Math.abs((listed.mtime ?? 0) - mtime)).toBeLessThanOrEqual(a.capabilities.mtimePrecisionMs);
      }
    });

    it("round-trips content headers that are not ASCII, or look encoded", async (ctx) => {
      const a = await fresh(ctx);
      if (!a.capabilities.metadata) ctx.skip("no metadata");
      const headers = {
        contentType: "text/plain; name=\"résumé.txt\"",
        contentDisposition: 'attachment; filename="Résumé – 日本語 ✓.pdf"',
        contentLanguage: "=?UTF-8?B?ZW4=?=",
      };
      await put(a, "u.txt", "x", headers);
      expect(await a.stat("u.txt")).toMatchObject(headers);
      const [listed] = await collect(a.list());
      // Where a listing gives content headers at all, it gives them decoded.
      if (listed.contentDisposition !== undefined) expect(listed).toMatchObject(headers);
    });

    it("preserves the source mtime where it can", async (ctx) => {
      const a = await fresh(ctx);
      if (!a.capabilities.preservesMtime) ctx.skip("listing does not report a preserved mtime");
      const mtime = Date.UTC(2020, 0, 2, 3, 4, 5, 678);
      await put(a, "t", "x", { mtime });
      const [listed] = await collect(a.list());
      expect(Math.abs((listed.mtime ?? 0) - mtime)).toBeLessThanOrEqual(a.capabilities.mtimePrecisionMs);
    });

    it("multipart: parts in any order assemble into the object, with its md5 and metadata", async (ctx) => {
      const a = await fresh(ctx);
      if (!a.multipart || !a.capabilities.multipart) ctx.skip("no multipart");
      const partSize = Math.max(a.capabilities.multipart!.minPartSize, 256 * 1024);
      const data = seededBytes(partSize * 2 + 1234, 3);
      const parts = [data.subarray(0, partSize), data.subarray(partSize, 2 * partSize), data.subarray(2 * partSize)];
      const info: ObjectInfo = { key: "big", size: data.length, contentType: "application/x-test", contentDisposition: 'inline; filename="größe.bin"', metadata: { color: "red" }, mtime: Date.UTC(2022, 1, 1) };
      const id = await a.multipart!.startUpload("big", info, partSize);
      const etags: { partNumber: number; etag: string; size: number; checksum: string }[] = [];
      for (const n of [3, 1, 2]) {
        const body = parts[n - 1];
        const checksum = partChecksum(a, body);
        etags.push({ partNumber: n, etag: await a.multipart!.uploadPart("big", id, n, body, checksum), size: body.length, checksum });
      }
      etags.sort((x, y) => x.partNumber - y.partNumber);
      const res = await a.multipart!.completeUpload("big", id, etags, info, md5(data));
      expect(res.size).toBe(data.length);
      expect((await readAll(await a.read("big"))).equals(data)).toBe(true);
      const st = await a.stat("big");
      expect(st.size).toBe(data.length);
      if (a.capabilities.metadata) {
        // Where the service cannot give a multipart object's MD5, we stored it as metadata.
        expect(st.md5).toBe(md5(data));
        expect(st.contentType).toBe("application/x-test");
        expect(st.contentDisposition).toBe('inline; filename="größe.bin"');
        expect(st.metadata).toMatchObject({ color: "red" });
      }
      expect((await collect(a.list())).map((o) => o.key)).toEqual(["big"]);
      await a.multipart!.abortUpload("big", "no-such-upload-" + unique());
    }, 60_000);

    it("write with an md5 the bytes do not have is refused, and nothing appears (small and streamed)", async (ctx) => {
      const a = await fresh(ctx);
      if (!a.capabilities.writeChecksMd5) ctx.skip("the service does not check an md5 on write");
      // 3 MiB in 64 KiB chunks reaches the streaming write paths, not only the buffered ones.
      for (const [key, data] of [["small", seededBytes(1000, 7)], ["streamed", seededBytes(3 * 1024 * 1024, 8)]] as const) {
        const chunks = Array.from({ length: Math.ceil(data.length / 65536) }, (_, i) => data.subarray(i * 65536, (i + 1) * 65536));
        const wrong = md5(Buffer.concat([data, Buffer.from("x")]));
        const err = await expectKind(a.write(key, Readable.from(chunks), { key, size: data.length }, { md5: wrong }), "Integrity");
        expect(err.temporary).toBe(true);
        await expectKind(a.stat(key), "NotFound");
        // Also when the engine hands over the body whole (small objects).
        await expectKind(a.write(key, Readable.from(chunks), { key, size: data.length }, { md5: wrong, whole: data }), "Integrity");
        await expectKind(a.stat(key), "NotFound");
        // The right md5 is accepted.
        const ok = await a.write(key, Readable.from(chunks), { key, size: data.length }, { md5: md5(data) });
        expect(ok.size).toBe(data.length);
      }
      expect((await collect(a.list())).map((o) => o.key)).toEqual(["small", "streamed"]);
    }, 60_000);

    it("a whole body sent with only its CRC32C: checked on arrival and reported back; a wrong one stores nothing", async (ctx) => {
      const a = await fresh(ctx);
      if (!a.capabilities.writeChecksCrc32c) ctx.skip("the service does not check a CRC32C on write");
      for (const [key, data] of [["small", seededBytes(3000, 21)], ["mid", seededBytes(3 * 1024 * 1024 + 1, 22)]] as const) {
        const ok = await a.write(key, bodyOf(data), { key, size: data.length }, { whole: data, crc32c: crc32cBase64(data) });
        expect(ok).toMatchObject({ size: data.length, crc32c: crc32cBase64(data) });
        // The MD5 reported is the service's own, of what it stored.
        if (a.capabilities.writeReportsMd5) expect(ok.md5).toBe(md5(data));
        expect((await readAll(await a.read(key))).equals(data)).toBe(true);
        const wrong = crc32cBase64(Buffer.concat([data, Buffer.from("x")]));
        const err = await expectKind(a.write(`${key}-bad`, bodyOf(data), { key: `${key}-bad`, size: data.length }, { whole: data, crc32c: wrong }), "Integrity");
        expect(err.temporary).toBe(true);
        await expectKind(a.stat(`${key}-bad`), "NotFound");
      }
    }, 60_000);

    it("the copier sends local files (no MD5 to compare) whole with only their CRC32C, and the service's MD5 is what a later comparison sees", async (ctx) => {
      const dst = await fresh(ctx);
      if (!dst.capabilities.writeChecksCrc32c) ctx.skip("the service does not check a CRC32C on write");
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cm-crc-copier-"));
      const files = new Map([["small", seededBytes(2000, 23)], ["mid", seededBytes(3 * 1024 * 1024, 24)]]);
      for (const [k, v] of files) fs.writeFileSync(path.join(dir, k), v);
      const sent: Record<string, { md5?: string; crc32c?: string }> = {};
      const destination: Adapter = Object.assign(Object.create(dst) as Adapter, {
        write: (key: string, body: Readable, source: ObjectInfo, opts?: WriteOptions) => {
          sent[key] = { md5: opts?.md5, crc32c: opts?.crc32c };
          return dst.write(key, body, source, opts);
        },
      });
      const result = await planAndCopy(new FsAdapter(parseLocation(dir)), destination, { dir, urls: [dir, `${name}-crc-copier`], include: ["small", "mid"], concurrency: 2 });
      fs.rmSync(dir, { recursive: true, force: true });
      expect(result.copied).toBe(2);
      for (const [k, v] of files) {
        expect(sent[k]).toEqual({ md5: undefined, crc32c: crc32cBase64(v) });
        expect((await readAll(await dst.read(k))).equals(v)).toBe(true);
        if (dst.capabilities.writeReportsMd5) expect((await dst.stat(k)).md5).toBe(md5(v));
      }
    }, 60_000);

    it("writeFromFile stores a local file (with its MD5 when asked) and mtime; a file of another size stores nothing", async (ctx) => {
      const a = await fresh(ctx);
      if (!a.writeFromFile) ctx.skip("no writeFromFile");
      const dir = tempDir("from-file");
      for (const [name, size] of [["tiny", 10], ["big", 3 * 1024 * 1024 + 5], ["whole-mib", 2 * 1024 * 1024]] as const) {
        const data = seededBytes(size, size);
        const file = path.join(dir, name);
        fs.writeFileSync(file, data);
        const res = await a.writeFromFile!(`sub/${name}`, file, { key: `sub/${name}`, size, mtime: 1_500_000_000_000 }, { md5: true });
        expect(res).toMatchObject({ size, md5: md5(data) });
        expect((await readAll(await a.read(`sub/${name}`))).equals(data)).toBe(true);
        // Not asked: the same bytes, no MD5 computed.
        const plain = await a.writeFromFile!(`plain/${name}`, file, { key: `plain/${name}`, size });
        expect(plain.size).toBe(size);
        expect(plain.md5).toBeUndefined();
        expect((await readAll(await a.read(`plain/${name}`))).equals(data)).toBe(true);
        await a.delete(`plain/${name}`);
        if (a.capabilities.preservesMtime) expect(Math.abs((await a.stat(`sub/${name}`)).mtime! - 1_500_000_000_000)).toBeLessThanOrEqual(a.capabilities.mtimePrecisionMs);
        // The file changed since it was listed: refused, and nothing under the name.
        await expectKind(a.writeFromFile!(`other/${name}`, file, { key: `other/${name}`, size: size + 1 }), "Integrity");
        await expectKind(a.writeFromFile!(`other/${name}`, file, { key: `other/${name}`, size: size - 1 }), "Integrity");
        await expectKind(a.stat(`other/${name}`), "NotFound");
      }
      await expectKind(a.writeFromFile!("gone", path.join(dir, "missing"), { key: "gone", size: 1 }), "NotFound");
      expect((await collect(a.list())).map((o) => o.key)).toEqual(["sub/big", "sub/tiny", "sub/whole-mib"]);
    }, 60_000);

    it("multipart: a part whose checksum does not match its bytes is rejected", async (ctx) => {
      const a = await fresh(ctx);
      if (!a.multipart || !a.capabilities.multipart) ctx.skip("no multipart");
      const body = seededBytes(Math.max(a.capabilities.multipart!.minPartSize, 1024), 4);
      const id = await a.multipart!.startUpload("bad", { key: "bad", size: body.length }, body.length);
      const err = await a.multipart!.uploadPart("bad", id, 1, body, partChecksum(a, Buffer.from("something else"))).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(MigrateError);
      await a.multipart!.abortUpload("bad", id);
    }, 60_000);

    it("a bad credential → PermissionDenied for the whole run, quickly", async (ctx) => {
      if (!target) ctx.skip(`${name} emulator not available`);
      if (!target!.badCredentials) ctx.skip("the service accepts any credential here");
      const a = await target!.badCredentials!();
      await expectKind(a.check("source"), "PermissionDenied", "run");
    }, 30_000);

    it("a missing bucket → ConfigInvalid for the whole run", async (ctx) => {
      if (!target) ctx.skip(`${name} emulator not available`);
      if (!target!.missingBucket) ctx.skip("no bucket to miss");
      const a = await target!.missingBucket!();
      await expectKind(a.check("source"), "ConfigInvalid", "run");
      if (target!.createsMissingRoot) await a.check("destination");
      else await expectKind(a.check("destination"), "ConfigInvalid", "run");
    }, 30_000);

    it("check() passes on a usable location", async (ctx) => {
      const a = await fresh(ctx);
      await a.check("source").catch((e: MigrateError) => {
        // An empty prefix is a usable source; only a missing root is an error.
        throw e;
      });
      await a.check("destination");
    });
  });
}

/**
 * The contract target for an emulated service: a fresh bucket, adapters opened on it (closed at
 * the end), a bad-credential adapter where the emulator rejects credentials, a missing bucket.
 */
export async function emulatorTarget(
  emulator: Emulator | undefined,
  create: (loc: Location, opts: AdapterOptions) => Promise<Adapter>,
  opts: { checksCredentials: boolean },
): Promise<ContractTarget | undefined> {
  if (!emulator) return undefined;
  const bucket = await emulator.createBucket();
  const opened: Adapter[] = [];
  const track = async (url: string, o: AdapterOptions) => {
    const a = await create(parseLocation(url), o);
    opened.push(a);
    return a;
  };
  return {
    open: (prefix) => track(prefix ? `${bucket}/${prefix}` : bucket, emulator.adapterOptions),
    badCredentials: opts.checksCredentials
      ? () => track(bucket, { ...emulator.adapterOptions, env: emulator.badCredentialsEnv })
      : undefined,
    missingBucket: () => track(emulator.missingBucketUrl(), emulator.adapterOptions),
    async stop() {
      for (const a of opened) await a.close?.();
    },
  };
}
