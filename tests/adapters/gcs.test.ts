/**
 * GCS adapter against a real fake-gcs-server: GCS-specific behaviour (gzip objects round-trip
 * byte-identical, compose-based multipart, hidden part folder, error mapping, timeouts).
 * The shared contract suite is joined at the bottom.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import crypto from "node:crypto";
import http from "node:http";
import zlib from "node:zlib";
import { Readable } from "node:stream";
import type { Adapter, ObjectInfo } from "../../adapters/types.js";
import { parseLocation } from "../../adapters/index.js";
import { createGcsAdapter, type GcsAdapter } from "../../adapters/gcs/index.js";
import { mapGcsError, GcsHttpError, parseRetryAfter } from "../../adapters/gcs/errors.js";
import { startFakeGcs } from "../emulators/fakegcs.js";
import type { Emulator } from "../emulators/types.js";
import { crc32cBase64 } from "../../src/hashing.js";
import { adapterContract, emulatorTarget } from "./contract.js";
import { caught } from "../helpers/errors.js";
import { expectPartsReadBack } from "../helpers/copy.js";

const emu: Emulator | undefined = await startFakeGcs();
afterAll(async () => {
  await emu?.stop();
});

// fake-gcs-server accepts any credential, so the bad-credential test is left out (skipped),
// not faked: `badCredentials` is absent. A missing bucket works as on GCS.
adapterContract("gcs (fake-gcs-server)", () => emulatorTarget(emu, createGcsAdapter, { checksCredentials: false }));

async function bytesOf(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const md5hex = (b: Buffer) => crypto.createHash("md5").update(b).digest("hex");

describe("gcs error mapping", () => {
  const ctx = { bucket: "bkt", object: "a/b" };
  it.each([
    [429, "RateLimited", true],
    [503, "RateLimited", true],
    [500, "Unexpected", true],
    [502, "Unexpected", true],
    [504, "Unexpected", true],
    [412, "ConditionNotMatch", false],
    [403, "PermissionDenied", false],
    [404, "NotFound", false],
  ])("status %i → %s (temporary %s)", (status, kind, temporary) => {
    const e = mapGcsError(new GcsHttpError(status, "x", undefined, undefined), ctx);
    expect(e.kind).toBe(kind);
    expect(e.temporary).toBe(temporary);
    expect(e.message).toContain("gs://bkt/a/b");
  });
  it("401 is a run-scoped PermissionDenied", () => {
    const e = mapGcsError(new GcsHttpError(401, "Invalid Credentials", "authError", undefined), ctx);
    expect([e.kind, e.scope]).toEqual(["PermissionDenied", "run"]);
  });
  it("a missing bucket is a run-scoped ConfigInvalid", () => {
    const e = mapGcsError(new GcsHttpError(404, "The specified bucket does not exist.", "notFound", undefined), ctx);
    expect([e.kind, e.scope]).toEqual(["ConfigInvalid", "run"]);
    expect(e.message).toContain("bkt");
  });
  it("honours Retry-After", () => {
    const e = mapGcsError(new GcsHttpError(429, "slow down", "rateLimitExceeded", "7"), ctx);
    expect(e.retryAfterMs).toBe(7000);
    expect(parseRetryAfter(new Date(Date.now() + 60_000).toUTCString())).toBeGreaterThan(50_000);
  });
  it("network resets are temporary", () => {
    const e = mapGcsError(Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }), ctx);
    expect(e.temporary).toBe(true);
  });
});

describe("gcs request timeout", () => {
  it("aborts a request after requestTimeoutMs of silence, as a temporary error", async () => {
    const server = http.createServer(() => {
      /* never answers */
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    try {
      const a = await createGcsAdapter(parseLocation("gs://slow/p"), {
        env: { STORAGE_EMULATOR_HOST: `127.0.0.1:${port}` },
        requestTimeoutMs: 300,
      });
      const t0 = Date.now();
      const e = await caught(a.stat("k"));
      expect(e.temporary).toBe(true);
      expect(Date.now() - t0).toBeLessThan(5000);
      await a.close?.();
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

describe("gcs reads that break off", () => {
  /** A server that sends headers and `sent` of `total` bytes, then stalls or hangs up. */
  async function withServer(mode: "stall" | "cut", fn: (env: Record<string, string>) => Promise<void>) {
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { "content-length": "100", "x-goog-stored-content-encoding": "identity" });
      res.write(Buffer.alloc(10));
      if (mode === "cut") setTimeout(() => res.socket?.destroy(), 20);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    try {
      await fn({ STORAGE_EMULATOR_HOST: `http://127.0.0.1:${port}` });
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  }

  it.each(["stall", "cut"] as const)("a body that %ss fails the stream with a temporary error", async (mode) => {
    await withServer(mode, async (env) => {
      const a = await createGcsAdapter(parseLocation("gs://b/p"), { env, requestTimeoutMs: 300 });
      const r = await a.read("k");
      const e = await caught(bytesOf(r));
      expect(e.temporary).toBe(true);
      expect(e.message).toContain("gs://b/p/k");
      await a.close?.();
    });
  });
});

describe("gcs reads compressed in transit", () => {
  it("un-gzips a response the front end compressed on the fly (stored identity, served gzip)", async () => {
    const plain = Buffer.from("stored uncompressed ".repeat(500));
    const server = http.createServer((_req, res) => {
      const gz = zlib.gzipSync(plain);
      res.writeHead(200, {
        "content-length": String(gz.length),
        "content-encoding": "gzip",
        "x-goog-stored-content-encoding": "identity",
      });
      res.end(gz);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    try {
      const a = await createGcsAdapter(parseLocation("gs://b/p"), { env: { STORAGE_EMULATOR_HOST: `127.0.0.1:${port}` } });
      expect((await bytesOf(await a.read("k"))).equals(plain)).toBe(true);
      expect(await a.readWhole!("k", 100_000)).toBeUndefined(); // compressed on the fly: read() un-gzips it
      await a.close?.();
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

describe("gcs ranged reads into part memory (readInto)", () => {
  type Mode = "exact" | "chunked" | "whole" | "gzip";
  /**
   * A media-download server for `data`: "exact" answers ranges with a length, "chunked" without
   * one, "whole" ignores the range, "gzip" compresses the range on the fly (stored identity).
   * `seen` gets each request's URL and Range.
   */
  async function withServer(data: Buffer, mode: Mode, fn: (a: GcsAdapter, seen: string[]) => Promise<void>) {
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      seen.push(`${req.url} ${req.headers.range}`);
      if (!req.url!.startsWith("/storage/v1/b/b/o/p%2Fk?")) {
        res.writeHead(404, { "content-type": "application/json" });
        return res.end(JSON.stringify({ error: { code: 404, message: "No such object: b/p/gone" } }));
      }
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "")!;
      const [start, end] = mode === "whole" ? [0, data.length - 1] : [Number(m[1]), Math.min(Number(m[2]), data.length - 1)];
      let body = data.subarray(start, end + 1);
      const headers: http.OutgoingHttpHeaders = { "x-goog-stored-content-encoding": "identity" };
      if (mode === "gzip") Object.assign(headers, { "content-encoding": "gzip" }), (body = zlib.gzipSync(body));
      if (mode !== "chunked") headers["content-length"] = body.length;
      if (mode !== "whole") headers["content-range"] = `bytes ${start}-${end}/${data.length}`;
      res.writeHead(mode === "whole" ? 200 : 206, headers);
      res.write(body.subarray(0, 10));
      res.end(body.subarray(10));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    const a = (await createGcsAdapter(parseLocation("gs://b/p"), { env: { STORAGE_EMULATOR_HOST: `127.0.0.1:${port}` } })) as GcsAdapter;
    try {
      await fn(a, seen);
    } finally {
      await a.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  }

  /** Read `data` back as "k" in 100,000-byte parts; checks every part, returns the http-client requests made. */
  async function readParts(a: GcsAdapter, data: Buffer): Promise<number> {
    const sends = vi.spyOn(a.http, "send");
    await expectPartsReadBack(a, "k", data, 100_000);
    return sends.mock.calls.length;
  }

  it("go straight off the socket, with the range and alt=media, the last part short", async () => {
    const data = crypto.randomBytes(250_000);
    await withServer(data, "exact", async (a, seen) => {
      expect(await readParts(a, data)).toBe(0);
      expect(seen).toEqual([0, 100_000, 200_000].map((s) => `/storage/v1/b/b/o/p%2Fk?alt=media bytes=${s}-${s + 99_999}`));
    });
  });

  it("a server that answers chunked is read through the http client, from the first such answer on", async () => {
    const data = crypto.randomBytes(300_000);
    await withServer(data, "chunked", async (a, seen) => {
      expect(await readParts(a, data)).toBe(3);
      expect(seen).toHaveLength(4); // direct (refused), then the client for every part
    });
  });

  it("a range compressed on the fly is read again through the http client and un-gzipped", async () => {
    // A part that compresses well (its answer fits the part memory) and one that does not.
    const data = Buffer.concat([Buffer.alloc(100_000, "compressible "), crypto.randomBytes(100_000)]);
    await withServer(data, "gzip", async (a, seen) => {
      expect(await readParts(a, data)).toBe(2);
      expect(seen).toHaveLength(4); // each part: direct (compressed), then the client
    });
  });

  it("a server that ignores the range is a temporary error past the start; a missing object is NotFound", async () => {
    const data = crypto.randomBytes(150_000);
    await withServer(data, "whole", async (a) => {
      const e = await caught(a.readInto("k", 100_000, Buffer.alloc(100_000)));
      expect(e).toMatchObject({ kind: "Unexpected", temporary: true });
      expect(e.message).toMatch(/gs:\/\/b\/p\/k: server ignored the byte range/);
      // Also when the whole object would fit the memory given.
      await expect(a.readInto("k", 50_000, Buffer.alloc(200_000))).rejects.toMatchObject({ message: expect.stringMatching(/ignored the byte range/) });
      const small = Buffer.alloc(200_000);
      expect(await a.readInto("k", 0, small)).toBe(150_000); // from 0, the whole object is the range
      expect(small.subarray(0, 150_000).equals(data)).toBe(true);
      await expect(a.readInto("gone", 0, Buffer.alloc(10))).rejects.toMatchObject({ kind: "NotFound", message: expect.stringContaining("gs://b/p/gone") });
    });
  });
});

describe("gcs credentials (Application Default Credentials, no emulator)", () => {
  it("an unusable key file is a run-scoped PermissionDenied, without secrets in the message", async () => {
    const a = await createGcsAdapter(parseLocation("gs://some-bucket/p"), {
      env: { GOOGLE_APPLICATION_CREDENTIALS: "/nonexistent/cloudmigrate-key.json" },
    });
    const e = await caught(a.check("source"));
    expect([e.kind, e.scope]).toEqual(["PermissionDenied", "run"]);
    await a.close?.();
  });
});

describe.skipIf(!emu)("gcs adapter on fake-gcs-server", () => {
  let root: string;
  let adapter: Adapter;
  let whole: Adapter;

  beforeAll(async () => {
    root = await emu!.createBucket();
    adapter = await createGcsAdapter(parseLocation(`${root}/base`), emu!.adapterOptions);
    whole = await createGcsAdapter(parseLocation(root), emu!.adapterOptions);
  });
  afterAll(async () => {
    await adapter?.close?.();
    await whole?.close?.();
  });

  it("round-trips bytes, headers, metadata and mtime; reports md5 and crc32c", async () => {
    const body = Buffer.from("hello gcs");
    const src: ObjectInfo = {
      key: "x",
      size: body.length,
      mtime: 1_600_000_000_123,
      contentType: "text/plain",
      cacheControl: "max-age=60",
      contentDisposition: "attachment",
      contentLanguage: "fr",
      metadata: { Color: "blue" },
    };
    const w = await adapter.write("dir/a.txt", Readable.from([body]), src, { md5: md5hex(body) });
    expect(w.size).toBe(body.length);
    expect(w.md5).toBe(md5hex(body));
    expect(w.crc32c).toMatch(/^[A-Za-z0-9+/]{6}==$/);
    const st = await adapter.stat("dir/a.txt");
    expect(st).toMatchObject({
      key: "dir/a.txt",
      size: body.length,
      mtime: src.mtime,
      md5: w.md5,
      crc32c: w.crc32c,
      contentType: "text/plain",
      cacheControl: "max-age=60",
      contentDisposition: "attachment",
      contentLanguage: "fr",
      metadata: { color: "blue" },
    });
    const listed = await all(adapter.list("dir"));
    expect(listed.map((o) => [o.key, o.mtime, o.md5])).toEqual([["dir/a.txt", src.mtime, w.md5]]);
    expect((await bytesOf(await adapter.read("dir/a.txt", { start: 1, end: 4 }))).toString()).toBe("ello");
    // Read whole straight off the socket: the same bytes, and the same info as stat gives.
    const whole = await (adapter as GcsAdapter).readWhole("dir/a.txt", 1000, { md5: true });
    expect(whole?.body.equals(body)).toBe(true);
    expect(whole?.md5).toBe(md5hex(body));
    expect(whole?.info).toEqual(st);
    expect(await (adapter as GcsAdapter).readWhole("dir/a.txt", body.length - 1)).toBeUndefined(); // streamed instead
    expect(await caught((adapter as GcsAdapter).readWhole("nope", 10))).toMatchObject({ kind: "NotFound" });
  });

  it("keeps gzip-encoded objects byte-identical (no decompressive transcoding)", async () => {
    const plain = Buffer.from("compress me ".repeat(1000));
    const gz = zlib.gzipSync(plain);
    const src: ObjectInfo = { key: "g", size: gz.length, contentType: "text/plain", contentEncoding: "gzip" };
    const w = await adapter.write("z.txt.gz", Readable.from([gz]), src);
    expect(w.size).toBe(gz.length);
    const back = await bytesOf(await adapter.read("z.txt.gz"));
    expect(back.equals(gz)).toBe(true);
    expect((await (adapter as GcsAdapter).readWhole("z.txt.gz", 100_000))?.body.equals(gz)).toBe(true);
    const part = await bytesOf(await adapter.read("z.txt.gz", { start: 0, end: 9 }));
    expect(part.equals(gz.subarray(0, 10))).toBe(true);
    expect((await adapter.stat("z.txt.gz")).contentEncoding).toBe("gzip");
  });

  it("rejects a body whose size differs from the source's, and a wrong md5", async () => {
    const body = Buffer.from("12345");
    const e1 = await caught(adapter.write("short", Readable.from([body]), { key: "s", size: 9 }));
    expect(e1.kind).toBe("Integrity");
    const e2 = await caught(adapter.write("badmd5", Readable.from([body]), { key: "s", size: 5 }, { md5: "0".repeat(32) }));
    expect(e2.kind).toBe("Integrity");
    await expect(adapter.stat("short")).rejects.toMatchObject({ kind: "NotFound" });
    await expect(adapter.stat("badmd5")).rejects.toMatchObject({ kind: "NotFound" });
  });

  it("lists in UTF-8 byte order, page by page, skipping folder markers", async () => {
    const a = await createGcsAdapter(parseLocation(`${root}/order`), emu!.adapterOptions);
    const keys = ["a", "a/b", "ab", "é", "\u{1F600}", "\uFFFD", "z", "A"];
    for (const k of keys) await a.write(k, Readable.from([Buffer.from(k)]), { key: k, size: Buffer.byteLength(k) });
    await a.write("dir/", Readable.from([Buffer.alloc(0)]), { key: "dir/", size: 0 });
    const got = (await all(a.list())).map((o) => o.key);
    const want = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    expect(got).toEqual(want);
    expect((await all(a.list("a"))).map((o) => o.key)).toEqual(["a/b"]);
    await a.close?.();
  });

  it("handles names that need escaping in paths and queries", async () => {
    const key = "we ird/a+b c%20?#&=;,'\"<>\\é.txt";
    const body = Buffer.from("odd");
    await adapter.write(key, Readable.from([body]), { key, size: body.length });
    expect((await adapter.stat(key)).key).toBe(key);
    expect((await bytesOf(await adapter.read(key))).toString()).toBe("odd");
    expect((await all(adapter.list("we ird"))).map((o) => o.key)).toEqual([key]);
    await adapter.delete(key);
    await expect(adapter.stat(key)).rejects.toMatchObject({ kind: "NotFound" });
  });

  it("pages through more than 1000 objects", async () => {
    const a = await createGcsAdapter(parseLocation(`${root}/many`), emu!.adapterOptions);
    const n = 1005;
    const names = Array.from({ length: n }, (_, i) => `k${String(i).padStart(5, "0")}`);
    for (let i = 0; i < n; i += 50) {
      await Promise.all(names.slice(i, i + 50).map((k) => a.write(k, Readable.from([Buffer.from("x")]), { key: k, size: 1 })));
    }
    const got = (await all(a.list())).map((o) => o.key);
    expect(got).toEqual(names);
    await a.close?.();
  }, 60_000);

  it("reads parts straight off the socket (readInto), the last one short", async () => {
    const data = crypto.randomBytes(2_500_000);
    await adapter.write("parts.bin", Readable.from([data]), { key: "parts.bin", size: data.length });
    const a = adapter as GcsAdapter;
    const sends = vi.spyOn(a.http, "send");
    await expectPartsReadBack(a, "parts.bin", data, 1_000_000);
    expect(sends).not.toHaveBeenCalled();
    sends.mockRestore();
  });

  it("maps stat/read of a missing key to NotFound and deletes missing keys quietly", async () => {
    await expect(adapter.stat("nope")).rejects.toMatchObject({ kind: "NotFound" });
    await expect(adapter.read("nope")).rejects.toMatchObject({ kind: "NotFound" });
    await expect(adapter.delete("nope")).resolves.toBeUndefined();
  });

  it("reports a missing bucket as a run-scoped ConfigInvalid", async () => {
    const m = await createGcsAdapter(parseLocation(emu!.missingBucketUrl() + "/p"), emu!.adapterOptions);
    const calls = [
      () => m.check("destination"),
      () => all(m.list()),
      () => m.write("k", Readable.from([Buffer.from("x")]), { key: "k", size: 1 }),
    ];
    for (const call of calls) {
      const e = await caught(call());
      expect([e.kind, e.scope]).toEqual(["ConfigInvalid", "run"]);
      expect(e.message).toMatch(/does not exist/);
    }
    await m.close?.();
  });

  it("names key problems", () => {
    expect(adapter.keyProblem?.("ok/key")).toBeUndefined();
    expect(adapter.keyProblem?.("x".repeat(1020))).toMatch(/1024 bytes/);
    expect(adapter.keyProblem?.("a\nb")).toMatch(/line feed/);
    expect(whole.keyProblem?.(".cloudmigrate-parts/x")).toMatch(/reserved/);
  });

  describe("multipart via compose", () => {
    const mk = (n: number, size: number) => Array.from({ length: n }, () => crypto.randomBytes(size));

    async function upload(a: Adapter, key: string, parts: Buffer[], src: ObjectInfo) {
      const mp = a.multipart!;
      const id = await mp.startUpload(key, src, parts[0]?.length ?? 0);
      const done = await Promise.all(
        parts.map(async (b, i) => ({ partNumber: i + 1, etag: await mp.uploadPart(key, id, i + 1, b, crc32cBase64(b)), size: b.length, checksum: crc32cBase64(b) })),
      );
      return { id, done };
    }

    it("composes parts into the object with headers, metadata, mtime and md5; parts vanish", async () => {
      const parts = mk(3, 1000);
      const whole_ = Buffer.concat(parts);
      const src: ObjectInfo = { key: "big", size: whole_.length, mtime: 1_234_567, contentType: "application/x-test", metadata: { k: "v" } };
      const { id, done } = await upload(adapter, "big.bin", parts, src);
      const w = await adapter.multipart!.completeUpload("big.bin", id, done, src, md5hex(whole_));
      expect(w.size).toBe(whole_.length);
      expect((await bytesOf(await adapter.read("big.bin"))).equals(whole_)).toBe(true);
      const st = await adapter.stat("big.bin");
      expect(st).toMatchObject({ size: whole_.length, mtime: 1_234_567, md5: md5hex(whole_), contentType: "application/x-test", metadata: { k: "v" } });
      expect((await all(whole.list())).filter((o) => o.key.includes("cloudmigrate"))).toEqual([]);
      expect(await rawNames(`.cloudmigrate-parts/${id}/`)).toEqual([]);
      // Completing again (a retry after a crash) recognises the finished object.
      await expect(adapter.multipart!.completeUpload("big.bin", id, done, src, md5hex(whole_))).resolves.toMatchObject({
        size: whole_.length,
      });
    });

    it("composes more than 32 parts in levels", async () => {
      const parts = mk(70, 64);
      const whole_ = Buffer.concat(parts);
      const src: ObjectInfo = { key: "many", size: whole_.length };
      const { id, done } = await upload(adapter, "many.bin", parts, src);
      await adapter.multipart!.completeUpload("many.bin", id, done, src, md5hex(whole_));
      expect((await bytesOf(await adapter.read("many.bin"))).equals(whole_)).toBe(true);
      expect(await rawNames(`.cloudmigrate-parts/${id}/`)).toEqual([]);
    });

    it("abort removes uploaded parts; unknown ids are fine", async () => {
      const parts = mk(2, 100);
      const { id } = await upload(adapter, "ab.bin", parts, { key: "ab", size: 200 });
      expect((await rawNames(`.cloudmigrate-parts/${id}/`)).length).toBe(2);
      await adapter.multipart!.abortUpload("ab.bin", id);
      expect(await rawNames(`.cloudmigrate-parts/${id}/`)).toEqual([]);
      await expect(adapter.multipart!.abortUpload("ab.bin", "0".repeat(24))).resolves.toBeUndefined();
      await expect(adapter.multipart!.abortUpload("ab.bin", "not-ours")).resolves.toBeUndefined();
      await expect(adapter.stat("ab.bin")).rejects.toMatchObject({ kind: "NotFound" });
    });

    it("rejects a part whose crc32c does not match", async () => {
      const mp = adapter.multipart!;
      const id = await mp.startUpload("p.bin", { key: "p", size: 3 }, 3);
      expect(adapter.capabilities.multipart?.partChecksum).toBe("crc32c");
      const e = await caught(mp.uploadPart("p.bin", id, 1, Buffer.from("abc"), crc32cBase64(Buffer.from("abd"))));
      expect(e.kind).toBe("Integrity");
      await expect(mp.uploadPart("p.bin", id, 1, Buffer.from("abc"), crc32cBase64(Buffer.from("abc")))).resolves.toBeTruthy();
      await mp.abortUpload("p.bin", id);
    });
  });

  /** Object names straight from the emulator, under a bucket-level prefix. */
  async function rawNames(prefix: string): Promise<string[]> {
    const env = emu!.env;
    const url = `${env.STORAGE_EMULATOR_HOST}/storage/v1/b/${root.slice(5)}/o?prefix=${encodeURIComponent(prefix)}`;
    const j = (await (await fetch(url)).json()) as { items?: { name: string }[] };
    return (j.items ?? []).map((i) => i.name);
  }
});
