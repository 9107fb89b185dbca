/**
 * S3 adapter tests against a real MinIO (tests/emulators/minio.ts): the shared contract suite,
 * plus S3-specific behaviour (key encoding, metadata encoding, multipart verification, errors,
 * configuration resolution).
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { S3Client } from "@aws-sdk/client-s3";
import { parseLocation } from "../../adapters/index.js";
import { createS3Client, resolveS3Config } from "../../adapters/s3/client.js";
import { mapS3Error, parseRetryAfter } from "../../adapters/s3/errors.js";
import { S3Adapter, createS3Adapter } from "../../adapters/s3/index.js";
import { decodeMetaValue, encodeMetaValue, parseMtime } from "../../adapters/s3/meta.js";
import type { Adapter, AdapterOptions, ObjectInfo } from "../../adapters/types.js";
import { startMinio } from "../emulators/minio.js";
import type { Emulator } from "../emulators/types.js";
import { adapterContract, emulatorTarget } from "./contract.js";
import { md5, readAll, collect } from "../helpers/streams.js";
import { caught } from "../helpers/errors.js";
import { crc32cBase64 } from "../../src/hashing.js";
import { MigrateError } from "../../src/errors.js";
import { FsAdapter } from "../../adapters/fs.js";
import { SqliteCheckpoint } from "../../checkpoints/sqlite.js";
import { Copier } from "../../src/copier.js";
import { plan } from "../../src/planner.js";
import { countingReads, expectPartsReadBack, planAndCopy } from "../helpers/copy.js";

// Every process warning this test process sees: the SDK's NodeVersionSupportWarning must not be one.
const warnings: string[] = [];
process.on("warning", (w) => warnings.push(`${w.name}: ${w.message}`));

const emulator = await startMinio();
afterAll(async () => {
  await emulator?.stop();
});

adapterContract("s3 (minio)", () => emulatorTarget(emulator, createS3Adapter, { checksCredentials: true }));

function src(key: string, size: number, extra: Partial<ObjectInfo> = {}): ObjectInfo {
  return { key, size, ...extra };
}

/** A self-signed certificate for 127.0.0.1 in `dir` (the test is skipped without openssl). */
function selfSignedCert(dir: string, ctx: { skip(note: string): void }): { key: string; cert: string } {
  const key = path.join(dir, "key.pem");
  const cert = path.join(dir, "cert.pem");
  try {
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
      "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], { stdio: "ignore" });
  } catch {
    ctx.skip("openssl not available");
  }
  return { key, cert };
}

/** Counts the GetObject commands that go through the SDK (not the lean or direct paths). */
function countSdkGets(client: S3Client): { count: number } {
  const seen = { count: 0 };
  client.middlewareStack.add((next, context) => (args) => {
    if (context.commandName === "GetObjectCommand") seen.count++;
    return next(args);
  }, { step: "initialize", name: "countSdkGets" });
  return seen;
}

/** Plan and run one job from `source` to `destination`, its checkpoint in `o.dir`. */
/**
 * Serves one object's byte ranges as S3 would (signatures are not checked), recording each
 * Range asked; `chunked` leaves Content-Length out, so the body goes chunked.
 */
function rangeHandler(data: Buffer, ranges: string[], o: { chunked?: boolean } = {}): http.RequestListener {
  return (req, res) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "")!;
    ranges.push(req.headers.range ?? "");
    const [start, end] = [Number(m[1]), Math.min(Number(m[2]), data.length - 1)];
    const length = o.chunked ? {} : { "content-length": end - start + 1 };
    res.writeHead(206, { ...length, "content-range": `bytes ${start}-${end}/${data.length}`, etag: '"abc"' });
    res.write(data.subarray(start, start + 10));
    res.end(data.subarray(start + 10, end + 1));
  };
}

/**
 * Read `data` back as s3://b/obj in 100,000-byte parts with readInto, from the endpoint in
 * `env`; checks every part's bytes and returns how many GetObjects went through the SDK.
 */
async function readPartsBack(data: Buffer, env: Record<string, string>): Promise<number> {
  const { client, lean } = createS3Client("b", { env: { AWS_ACCESS_KEY_ID: "k", AWS_SECRET_ACCESS_KEY: "s", AWS_REGION: "us-east-1", ...env } });
  const sdkGets = countSdkGets(client);
  const a = new S3Adapter(parseLocation("s3://b"), client, lean);
  try {
    await expectPartsReadBack(a, "obj", data, 100_000);
    return sdkGets.count;
  } finally {
    await a.close();
  }
}

describe("s3 configuration (no emulator needed)", () => {
  it("reads endpoint, region and credentials from opts.env and turns on path style for custom endpoints", () => {
    const c = resolveS3Config({
      env: { AWS_ENDPOINT_URL: "http://127.0.0.1:9", AWS_DEFAULT_REGION: "eu-west-3", AWS_ACCESS_KEY_ID: "k", AWS_SECRET_ACCESS_KEY: "s" },
    });
    expect(c).toMatchObject({ endpoint: "http://127.0.0.1:9", region: "eu-west-3", forcePathStyle: true });
    expect(c.credentials).toEqual({ accessKeyId: "k", secretAccessKey: "s", sessionToken: undefined });
  });

  it("prefers AWS_ENDPOINT_URL_S3 and explicit options", () => {
    const env = { AWS_ENDPOINT_URL: "http://a:1", AWS_ENDPOINT_URL_S3: "http://b:2", AWS_REGION: "r1" };
    expect(resolveS3Config({ env }).endpoint).toBe("http://b:2");
    const c = resolveS3Config({ env, s3Endpoint: "https://c:3", s3Region: "r2", s3ForcePathStyle: false });
    expect(c).toMatchObject({ endpoint: "https://c:3", region: "r2", forcePathStyle: false });
  });

  it("uses the default chain (no explicit credentials) and virtual-host style on AWS", () => {
    const c = resolveS3Config({ env: {} });
    expect(c.endpoint).toBeUndefined();
    expect(c.credentials).toBeUndefined();
    expect(c.forcePathStyle).toBe(false);
    expect(c.idleTimeoutMs).toBe(60_000);
  });

  it("an https endpoint with an unreadable AWS_CA_BUNDLE is a run-scoped configuration error", async () => {
    const env = { AWS_ENDPOINT_URL: "https://127.0.0.1:9", AWS_CA_BUNDLE: "/nonexistent/ca.pem", AWS_ACCESS_KEY_ID: "k", AWS_SECRET_ACCESS_KEY: "s" };
    const e = await caught(createS3Adapter(parseLocation("s3://b"), { env }));
    expect(e).toMatchObject({ kind: "ConfigInvalid", scope: "run" });
  });

  it("rejects a malformed endpoint as a run-scoped configuration error", () => {
    expect(() => resolveS3Config({ env: { AWS_ENDPOINT_URL: "ftp://x" } })).toThrow(/expected http/);
  });

  it("parses Retry-After and rclone-style mtimes, encodes metadata values", () => {
    expect(parseRetryAfter("3")).toBe(3000);
    expect(parseRetryAfter(undefined)).toBeUndefined();
    expect(parseMtime("1700000000123")).toBe(1700000000123);
    expect(parseMtime("1700000000.5")).toBe(1700000000500);
    expect(parseMtime("nope")).toBeUndefined();
    for (const v of ["plain", "héllo wörld", " edge ", "=?UTF-8?B?literal?=", "line\nbreak", "日本語"]) {
      const enc = encodeMetaValue(v);
      expect(enc).toMatch(/^[\x20-\x7e]*$/);
      expect(decodeMetaValue(enc)).toBe(v);
    }
  });

  it("maps S3 error codes to kinds and scopes", () => {
    const svc = (name: string, status: number, headers: Record<string, string> = {}) =>
      Object.assign(new Error(`${name} happened`), { name, $metadata: { httpStatusCode: status }, $response: { statusCode: status, headers } });
    const ctx = { op: "X", bucket: "b", key: "k" };
    expect(mapS3Error(svc("NoSuchBucket", 404), ctx)).toMatchObject({ kind: "ConfigInvalid", scope: "run" });
    expect(mapS3Error(svc("InvalidAccessKeyId", 403), ctx)).toMatchObject({ kind: "PermissionDenied", scope: "run" });
    expect(mapS3Error(svc("SignatureDoesNotMatch", 403), ctx)).toMatchObject({ kind: "PermissionDenied", scope: "run" });
    expect(mapS3Error(svc("AccessDenied", 403), ctx)).toMatchObject({ kind: "PermissionDenied", scope: "object" });
    expect(mapS3Error(svc("AccessDenied", 403), { ...ctx, check: true })).toMatchObject({ scope: "run" });
    expect(mapS3Error(svc("NoSuchKey", 404), ctx)).toMatchObject({ kind: "NotFound", temporary: false });
    expect(mapS3Error(svc("NotFound", 404), ctx)).toMatchObject({ kind: "NotFound" });
    expect(mapS3Error(svc("PreconditionFailed", 412), ctx)).toMatchObject({ kind: "ConditionNotMatch" });
    expect(mapS3Error(svc("SlowDown", 503, { "retry-after": "2" }), ctx)).toMatchObject({
      kind: "RateLimited",
      temporary: true,
      retryAfterMs: 2000,
    });
    expect(mapS3Error(svc("Unknown", 429), ctx)).toMatchObject({ kind: "RateLimited", temporary: true });
    expect(mapS3Error(svc("InternalError", 500), ctx)).toMatchObject({ kind: "Unexpected", temporary: true });
    expect(mapS3Error(svc("Unknown", 502), ctx)).toMatchObject({ kind: "Unexpected", temporary: true });
    const reset = Object.assign(new Error("socket hang up"), { code: "ECONNRESET" });
    expect(mapS3Error(reset, ctx)).toMatchObject({ kind: "Unexpected", temporary: true });
    const timeout = Object.assign(new Error("socket timed out"), { name: "TimeoutError" });
    expect(mapS3Error(timeout, ctx)).toMatchObject({ temporary: true });
    const m = mapS3Error(svc("SignatureDoesNotMatch", 403), ctx);
    expect(m.message).toContain("s3://b/k");
    expect(m.message).not.toContain("\n");
    expect(m.cause).toBeUndefined();
  });
});

describe("s3 network failures (no emulator needed)", () => {
  it("a server that never answers fails after requestTimeoutMs of silence, as a temporary error", async () => {
    const sockets: net.Socket[] = [];
    const srv = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as net.AddressInfo).port;
    const env = { AWS_ENDPOINT_URL: `http://127.0.0.1:${port}`, AWS_ACCESS_KEY_ID: "k", AWS_SECRET_ACCESS_KEY: "s", AWS_REGION: "us-east-1" };
    const a = await createS3Adapter(parseLocation("s3://silent/p"), { env, requestTimeoutMs: 300 });
    try {
      const t0 = Date.now();
      const e = await caught(a.stat("x"));
      expect(e.temporary).toBe(true);
      expect(Date.now() - t0).toBeLessThan(5_000);
      const c = await caught(a.check("source"));
      expect(c.scope).toBe("run");
    } finally {
      await a.close?.();
      for (const s of sockets) s.destroy();
      srv.close();
    }
  });

  it("AWS_CA_BUNDLE certificates are trusted for https endpoints", async (ctx) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "s3-ca-"));
    try {
      const { key, cert } = selfSignedCert(dir, ctx);
      const srv = https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, (_req, res) => {
        res.writeHead(404, { "content-type": "application/xml" });
        res.end('<?xml version="1.0"?><Error><Code>NoSuchKey</Code><Message>nope</Message></Error>');
      });
      await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
      const port = (srv.address() as net.AddressInfo).port;
      const env = { AWS_ENDPOINT_URL: `https://127.0.0.1:${port}`, AWS_ACCESS_KEY_ID: "k", AWS_SECRET_ACCESS_KEY: "s" };
      const trusted = await createS3Adapter(parseLocation("s3://b"), { env: { ...env, AWS_CA_BUNDLE: cert } });
      const untrusted = await createS3Adapter(parseLocation("s3://b"), { env });
      try {
        expect((await caught(trusted.read("x"))).kind).toBe("NotFound");
        expect((await caught(untrusted.read("x"))).kind).not.toBe("NotFound");
      } finally {
        await trusted.close?.();
        await untrusted.close?.();
        srv.closeAllConnections();
        srv.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("ranged reads over https straight off the socket trust AWS_CA_BUNDLE too", async (ctx) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "s3-ca-"));
    try {
      const { key, cert } = selfSignedCert(dir, ctx);
      const data = randomBytes(300_000);
      const ranges: string[] = [];
      const srv = https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, rangeHandler(data, ranges));
      await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
      const port = (srv.address() as net.AddressInfo).port;
      try {
        const sdkGets = await readPartsBack(data, { AWS_ENDPOINT_URL: `https://127.0.0.1:${port}`, AWS_CA_BUNDLE: cert });
        expect(ranges).toEqual(["bytes=0-99999", "bytes=100000-199999", "bytes=200000-299999"]);
        expect(sdkGets).toBe(1);
      } finally {
        srv.closeAllConnections();
        srv.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a store that answers ranged GETs chunked is read through the SDK, from the first such answer on", async () => {
    const data = randomBytes(300_000);
    const ranges: string[] = [];
    const srv = http.createServer(rangeHandler(data, ranges, { chunked: true }));
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as net.AddressInfo).port;
    try {
      const sdkGets = await readPartsBack(data, { AWS_ENDPOINT_URL: `http://127.0.0.1:${port}` });
      // SDK (teaches the URL), direct (refused) then SDK again, then SDK only.
      expect(sdkGets).toBe(3);
      expect(ranges).toHaveLength(4);
    } finally {
      srv.closeAllConnections();
      srv.close();
    }
  });

  it("a refused connection is a temporary error", async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise((r) => srv.close(r));
    const env = { AWS_ENDPOINT_URL: `http://127.0.0.1:${port}`, AWS_ACCESS_KEY_ID: "k", AWS_SECRET_ACCESS_KEY: "s" };
    const a = await createS3Adapter(parseLocation("s3://refused"), { env });
    try {
      const e = await caught(a.read("x"));
      expect(e).toMatchObject({ kind: "Unexpected", temporary: true });
      expect(e.message).toContain("s3://refused/x");
    } finally {
      await a.close?.();
    }
  });
});

describe.skipIf(!emulator)("s3 adapter on MinIO", () => {
  const emu = emulator as Emulator;
  let root = "";
  const adapters: Adapter[] = [];

  async function open(url: string, opts: AdapterOptions = emu.adapterOptions): Promise<Adapter> {
    const a = await createS3Adapter(parseLocation(url), opts);
    adapters.push(a);
    return a;
  }

  beforeAll(async () => {
    root = await emu.createBucket();
  });

  afterAll(async () => {
    for (const a of adapters) await a.close?.();
  });

  it("round-trips keys with reserved characters and both unicode normal forms, listed in byte order", async () => {
    const a = await open(`${root}/odd pre+fix%ü#`);
    const nfc = "caf\u00e9";
    const nfd = "cafe\u0301";
    const keys = [
      "plus+sign",
      "percent%20literal",
      "hash#frag",
      "q?uery&a=b",
      "at@colon:x",
      "space in name",
      " leading and trailing ",
      nfc,
      nfd,
      "emoji-😀",
      "Icon\r",
      "ctl\u0001char",
      "dir/sub/deep.txt",
      "tilde~!$'()*,;",
      "back\\slash",
    ];
    for (const k of keys) {
      const body = Buffer.from(`body of ${k}`);
      const r = await a.write(k, Readable.from([body]), src(k, body.length));
      expect(r.md5).toBe(md5(body));
    }
    const listed = await collect(a.list());
    const expected = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    expect(listed.map((o) => o.key)).toEqual(expected);
    for (const k of keys) {
      const info = await a.stat(k);
      expect(info.key).toBe(k);
      expect((await readAll(await a.read(k))).toString()).toBe(`body of ${k}`);
    }
  });

  it("treats the location prefix and list prefixes as folders, skips directory markers", async () => {
    const ab = await open(`${root}/ab`);
    const a = await open(`${root}/a`);
    await ab.write("x", Readable.from([Buffer.from("1")]), src("x", 1));
    await a.write("y/z", Readable.from([Buffer.from("2")]), src("y/z", 1));
    await a.write("y/", Readable.from([]), src("y/", 0));
    await a.write("yz", Readable.from([Buffer.from("3")]), src("yz", 1));
    expect((await collect(a.list())).map((o) => o.key)).toEqual(["y/z", "yz"]);
    expect((await collect(a.list("y"))).map((o) => o.key)).toEqual(["y/z"]);
    expect(await collect(a.list("missing"))).toEqual([]);
  });

  it("stores content headers, unicode metadata and the source mtime", async () => {
    const a = await open(`${root}/meta`);
    const body = Buffer.from("hello");
    const mtime = Date.UTC(2020, 1, 2, 3, 4, 5, 678);
    await a.write(
      "m.txt",
      Readable.from([body]),
      src("m.txt", body.length, {
        mtime,
        contentType: "text/plain; charset=utf-8",
        cacheControl: "max-age=60",
        contentEncoding: "identity",
        contentDisposition: 'attachment; filename="m.txt"',
        contentLanguage: "fr",
        metadata: { Owner: "Zoë 日本", plain: "v", spaced: " x " },
      }),
      { md5: md5(body) },
    );
    const info = await a.stat("m.txt");
    expect(info).toMatchObject({
      size: 5,
      md5: md5(body),
      mtime,
      contentType: "text/plain; charset=utf-8",
      cacheControl: "max-age=60",
      contentEncoding: "identity",
      contentDisposition: 'attachment; filename="m.txt"',
      contentLanguage: "fr",
      metadata: { owner: "Zoë 日本", plain: "v", spaced: " x " },
    });
    const [listed] = await collect(a.list());
    expect(listed).toMatchObject({ key: "m.txt", size: 5, md5: md5(body) });
  });

  it("non-ASCII content headers round-trip (they would otherwise break the signature)", async () => {
    const a = await open(`${root}/meta2`);
    const disp = 'attachment; filename="über café.txt"';
    await a.write("d", Readable.from([Buffer.from("x")]), src("d", 1, { contentDisposition: disp, contentType: "text/plain" }));
    expect(await a.stat("d")).toMatchObject({ contentDisposition: disp, contentType: "text/plain" });
  });

  it("metadata S3 cannot hold is an object-level Unsupported error, not a run failure", async () => {
    const a = await open(`${root}/meta3`);
    const big = await caught(a.write("big", Readable.from([Buffer.from("x")]), src("big", 1, { metadata: { v: "x".repeat(3000) } })));
    expect(big).toMatchObject({ kind: "Unsupported", scope: "object" });
    const name = await caught(a.write("n", Readable.from([Buffer.from("x")]), src("n", 1, { metadata: { "bad name": "v" } })));
    expect(name).toMatchObject({ kind: "Unsupported", scope: "object" });
  });

  it("verifies bodies: wrong Content-MD5 and wrong length are Integrity errors, nothing is stored", async () => {
    const a = await open(`${root}/verify`);
    const body = Buffer.from("some bytes");
    const bad = await caught(a.write("k", Readable.from([body]), src("k", body.length), { md5: md5("other") }));
    expect(bad.kind).toBe("Integrity");
    const t0 = Date.now();
    const short = await caught(a.write("k", Readable.from([body]), src("k", body.length + 5)));
    expect(short.kind).toBe("Integrity");
    const long = await caught(a.write("k", Readable.from([body]), src("k", body.length - 1)));
    expect(long.kind).toBe("Integrity");
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect((await caught(a.stat("k"))).kind).toBe("NotFound");
  });

  it("propagates a failing source body without hanging", async () => {
    const a = await open(`${root}/verify`);
    const body = new Readable({
      read() {
        this.destroy(Object.assign(new Error("source reset"), { code: "ECONNRESET" }));
      },
    });
    const e = await caught(a.write("failing", body, src("failing", 100)));
    expect(e.temporary).toBe(true);
  });

  it("write honours an abort signal", async () => {
    const a = await open(`${root}/verify`);
    const ac = new AbortController();
    const body = new Readable({ read() {} });
    body.push(Buffer.alloc(1000));
    setTimeout(() => ac.abort(), 100);
    const e = await caught(a.write("aborted", body, src("aborted", 10_000), { abortSignal: ac.signal }));
    expect(e.kind).toBe("Unexpected");
    expect((await caught(a.stat("aborted"))).kind).toBe("NotFound");
  });

  it("reads byte ranges (inclusive) and reports NotFound for missing keys, deletes idempotently", async () => {
    const a = await open(`${root}/range`);
    const body = Buffer.from("0123456789");
    await a.write("r", Readable.from([body]), src("r", body.length));
    expect((await readAll(await a.read("r", { start: 2, end: 5 }))).toString()).toBe("2345");
    expect((await caught(a.read("nope"))).kind).toBe("NotFound");
    expect((await caught(a.stat("nope"))).kind).toBe("NotFound");
    await a.delete("r");
    await a.delete("r");
    expect((await caught(a.stat("r"))).kind).toBe("NotFound");
  });

  it("multipart: stores the source md5, verifies parts and completion, tolerates a repeated complete", async () => {
    const a = await open(`${root}/mp`);
    const mp = a.multipart!;
    const p1 = randomBytes(5 * 1024 * 1024);
    const p2 = randomBytes(1234);
    const whole = md5(Buffer.concat([p1, p2]));
    const info = src("big.bin", p1.length + p2.length, { md5: whole, mtime: 1_600_000_000_000, contentType: "application/x-big", metadata: { a: "b" } });
    const id = await mp.startUpload("big.bin", info, p1.length);
    const e1 = await mp.uploadPart("big.bin", id, 1, p1, crc32cBase64(p1));
    const e2 = await mp.uploadPart("big.bin", id, 2, p2, crc32cBase64(p2));
    const parts = [
      { partNumber: 2, etag: e2, size: p2.length, checksum: crc32cBase64(p2) },
      { partNumber: 1, etag: e1, size: p1.length, checksum: crc32cBase64(p1) },
    ];
    const res = await mp.completeUpload("big.bin", id, parts, info, whole);
    expect(res).toMatchObject({ size: info.size, md5: whole });
    expect(res.etag).toMatch(/-2$/);
    const st = await a.stat("big.bin");
    expect(st).toMatchObject({ size: info.size, md5: whole, mtime: 1_600_000_000_000, contentType: "application/x-big", metadata: { a: "b" } });
    // The response to the first completion was "lost": completing again must succeed.
    const again = await mp.completeUpload("big.bin", id, parts, info, whole);
    expect(again.etag).toBe(res.etag);
    await mp.abortUpload("big.bin", id);
    expect(md5(await readAll(await a.read("big.bin")))).toBe(whole);
  });

  it("multipart without a known source md5: completion adds the md5 metadata; a repeated complete succeeds", async () => {
    const a = await open(`${root}/mp2`);
    const mp = a.multipart!;
    const p1 = randomBytes(5 * 1024 * 1024);
    const p2 = randomBytes(10);
    const whole = md5(Buffer.concat([p1, p2]));
    const info = src("x.bin", p1.length + p2.length, { mtime: 1_500_000_000_000, cacheControl: "no-cache", metadata: { k: "v" } });
    const id = await mp.startUpload("x.bin", info, p1.length);
    const parts = [
      { partNumber: 1, etag: await mp.uploadPart("x.bin", id, 1, p1, crc32cBase64(p1)), size: p1.length, checksum: crc32cBase64(p1) },
      { partNumber: 2, etag: await mp.uploadPart("x.bin", id, 2, p2, crc32cBase64(p2)), size: p2.length, checksum: crc32cBase64(p2) },
    ];
    const res = await mp.completeUpload("x.bin", id, parts, info, whole);
    expect(res).toMatchObject({ size: info.size, md5: whole });
    expect(await a.stat("x.bin")).toMatchObject({ md5: whole, mtime: 1_500_000_000_000, cacheControl: "no-cache", metadata: { k: "v" } });
    expect((await mp.completeUpload("x.bin", id, parts, info, whole)).md5).toBe(whole);
  });

  it("multipart: a wrong part crc32c, a completion naming another crc32c, or a whole md5 differing from the source's is refused", async () => {
    const a = await open(`${root}/mp`);
    const mp = a.multipart!;
    const part = randomBytes(1000);
    const info = src("bad.bin", part.length, { md5: md5("something else") });
    const id = await mp.startUpload("bad.bin", info, part.length);
    expect((await caught(mp.uploadPart("bad.bin", id, 1, part, crc32cBase64(Buffer.from("x"))))).kind).toBe("Integrity");
    const etag = await mp.uploadPart("bad.bin", id, 1, part, crc32cBase64(part));
    const e = await caught(mp.completeUpload("bad.bin", id, [{ partNumber: 1, etag, size: part.length, checksum: crc32cBase64(part) }], info, md5(part)));
    expect(e.kind).toBe("Integrity");
    // S3 holds the part's CRC32C: a completion naming another is refused (no object appears).
    const honest = { ...info, md5: md5(part) };
    const id2 = await mp.startUpload("bad.bin", honest, part.length);
    const etag2 = await mp.uploadPart("bad.bin", id2, 1, part, crc32cBase64(part));
    const wrongPart = await caught(mp.completeUpload("bad.bin", id2, [{ partNumber: 1, etag: etag2, size: part.length, checksum: crc32cBase64(Buffer.from("x")) }], honest, md5(part)));
    expect(wrongPart).toBeInstanceOf(MigrateError);
    expect((await caught(a.stat("bad.bin"))).kind).toBe("NotFound");
    await mp.abortUpload("bad.bin", id2);
    await mp.abortUpload("bad.bin", id);
    await mp.abortUpload("bad.bin", id);
    await mp.abortUpload("bad.bin", "no-such-upload-id");
    expect((await caught(a.stat("bad.bin"))).kind).toBe("NotFound");
  });

  it("check(): bad credentials and missing buckets are run-scoped, fast", async () => {
    const good = await open(root);
    await good.check("source");
    await good.check("destination");
    const bad = await open(root, { ...emu.adapterOptions, env: emu.badCredentialsEnv });
    const e1 = await caught(bad.check("source"));
    expect(e1).toMatchObject({ kind: "PermissionDenied", scope: "run" });
    expect(e1.message).not.toContain(emu.badCredentialsEnv.AWS_SECRET_ACCESS_KEY);
    const missing = await open(emu.missingBucketUrl());
    const e2 = await caught(missing.check("destination"));
    expect(e2).toMatchObject({ kind: "ConfigInvalid", scope: "run" });
    const e3 = await caught(collect(missing.list()));
    expect(e3).toMatchObject({ kind: "ConfigInvalid", scope: "run" });
  });

  it("keyProblem: 1024 UTF-8 bytes including the prefix", async () => {
    const a = await open(`${root}/kp`);
    expect(a.keyProblem?.("x".repeat(1024 - 3))).toBeUndefined();
    expect(a.keyProblem?.("x".repeat(1024 - 2))).toMatch(/1024/);
    expect(a.keyProblem?.("é".repeat(511))).toMatch(/1024/);
  });

  it("an http:// endpoint works with AWS_CA_BUNDLE pointing nowhere", async () => {
    const a = await open(root, { env: { ...emu.env, AWS_CA_BUNDLE: "/nonexistent/bundle.pem" } });
    await a.check("source");
  });

  it("small whole bodies go by the lean signed PUT once the SDK showed the URL: keys, headers, metadata, errors", async () => {
    const loc = parseLocation(`${root}/lean pre+fix`);
    const { client, lean } = createS3Client(loc.root, emu.adapterOptions);
    const a = new S3Adapter(loc, client, lean);
    adapters.push(a);
    const whole = (k: string, data: Buffer, extra: Partial<ObjectInfo> = {}) =>
      a.write(k, Readable.from([data]), src(k, data.length, extra), { md5: md5(data), whole: data });
    expect(lean.ready).toBe(false);
    await whole("first", Buffer.from("through the SDK"));
    expect(lean.ready).toBe(true);
    const keys = ["a b/c+d%e#f?g&h=i@j:k", "caf\u00e9/\u00fc!'()*~", "x/y/z.txt"];
    const extra = { contentType: "text/plain; charset=utf-8", cacheControl: "max-age=60", contentDisposition: "attachment", metadata: { "my-key": "välue ✓" }, mtime: 1_600_000_000_123 };
    for (const [i, k] of keys.entries()) {
      const data = Buffer.from(`lean body ${i} `.repeat(50));
      const res = await whole(k, data, extra);
      expect(res).toMatchObject({ size: data.length, md5: md5(data) });
      const st = await a.stat(k);
      expect(st).toMatchObject({ size: data.length, md5: md5(data), contentType: extra.contentType, cacheControl: "max-age=60", contentDisposition: "attachment", mtime: extra.mtime });
      expect(st.metadata).toEqual({ "my-key": "välue ✓" });
      expect((await readAll(await a.read(k))).equals(data)).toBe(true);
    }
    expect((await collect(a.list())).map((o) => o.key)).toEqual(["a b/c+d%e#f?g&h=i@j:k", "caf\u00e9/\u00fc!'()*~", "first", "x/y/z.txt"]);
    // A body that does not match its MD5: S3 refuses it (BadDigest → temporary Integrity).
    const body = Buffer.from("these bytes");
    const bad = await caught(a.write("bad", Readable.from([body]), src("bad", body.length), { md5: md5(Buffer.from("other bytes")), whole: body }));
    expect(bad).toMatchObject({ kind: "Integrity", temporary: true });
    await expect(a.stat("bad")).rejects.toMatchObject({ kind: "NotFound" });
    // Refusals map like the SDK's: a missing bucket stops the run.
    const other = parseLocation(emu.missingBucketUrl());
    const made = createS3Client(other.root, emu.adapterOptions);
    made.lean.learn("k", { protocol: "http:", hostname: "127.0.0.1", port: Number(new URL(emu.env.AWS_ENDPOINT_URL).port), path: `/${other.root}/k` });
    expect(made.lean.ready).toBe(true);
    const gone = new S3Adapter(other, made.client, made.lean);
    adapters.push(gone);
    const missing = await caught(gone.write("k", Readable.from([body]), src("k", body.length), { md5: md5(body), whole: body }));
    expect(missing).toMatchObject({ kind: "ConfigInvalid", scope: "run" });
  });

  it("whole reads go by the lean signed GET once the SDK showed the URL: bytes, headers, metadata, errors", async () => {
    const loc = parseLocation(`${root}/lean get+dir`);
    const writer = await open(`${root}/lean get+dir`);
    const extra = { contentType: "text/plain; charset=utf-8", cacheControl: "max-age=60", contentDisposition: "attachment", metadata: { "my-key": "välue ✓" }, mtime: 1_600_000_000_123 };
    const keys = ["first", "a b/c+d%e#f?g&h=i@j:k", "caf\u00e9/\u00fc!'()*~"];
    const bodies = keys.map((k, i) => Buffer.from(`get body ${i} ${k} `.repeat(40)));
    for (const [i, k] of keys.entries()) await writer.write(k, Readable.from([bodies[i]]), src(k, bodies[i].length, extra));
    const big = randomBytes(3 * 1024 * 1024 + 7);
    await writer.write("big", Readable.from([big]), src("big", big.length));

    const { client, lean } = createS3Client(loc.root, emu.adapterOptions);
    const sdkGets = countSdkGets(client);
    const a = new S3Adapter(loc, client, lean);
    adapters.push(a);
    expect(lean.ready).toBe(false);
    expect((await readAll(await a.read("first"))).equals(bodies[0])).toBe(true);
    expect(lean.ready).toBe(true);
    for (const [i, k] of keys.entries()) {
      const stream = await a.read(k);
      const st = await a.stat(k);
      expect(stream.info).toEqual(st);
      expect(stream.info).toMatchObject({ size: bodies[i].length, md5: md5(bodies[i]), contentType: extra.contentType, cacheControl: "max-age=60", contentDisposition: "attachment", mtime: extra.mtime, metadata: { "my-key": "välue ✓" } });
      expect((await readAll(stream)).equals(bodies[i])).toBe(true);
    }
    expect((await readAll(await a.read("big"))).equals(big)).toBe(true);
    // A ranged read stays on the SDK path.
    expect((await readAll(await a.read("big", { start: 5, end: 9 }))).equals(big.subarray(5, 10))).toBe(true);
    expect(sdkGets.count).toBe(2); // the first whole read (which taught the URL) and the ranged one
    await expect(a.read("no such key")).rejects.toMatchObject({ kind: "NotFound" });
  });

  it("ranged reads into part buffers go straight off the socket once the SDK showed the URL", async () => {
    const loc = parseLocation(`${root}/direct reads`);
    const writer = await open(`${root}/direct reads`);
    const big = randomBytes(3 * 1024 * 1024 + 7);
    const odd = "caf\u00e9 +%/part?s=1";
    await writer.write("big", Readable.from([big]), src("big", big.length));
    await writer.write(odd, Readable.from([big.subarray(0, 100_000)]), src(odd, 100_000));

    const { client, lean } = createS3Client(loc.root, emu.adapterOptions);
    const sdkGets = countSdkGets(client);
    const a = new S3Adapter(loc, client, lean);
    adapters.push(a);
    const part = 1024 * 1024;
    // Part buffers are SharedArrayBuffer-backed (hash workers read them without a copy).
    const body = Buffer.from(new SharedArrayBuffer(part));
    expect(await a.readInto(odd, 0, body)).toBe(100_000);
    expect(body.subarray(0, 100_000).equals(big.subarray(0, 100_000))).toBe(true);
    expect(sdkGets.count).toBe(1); // before the lean path knew the URL
    for (let start = 0; start < big.length; start += part) {
      body.fill(0);
      const got = await a.readInto("big", start, body);
      expect(got).toBe(Math.min(part, big.length - start));
      expect(body.subarray(0, got).equals(big.subarray(start, start + got))).toBe(true);
    }
    expect(await a.readInto(odd, 1000, body)).toBe(99_000);
    expect(body.subarray(0, 99_000).equals(big.subarray(1000, 100_000))).toBe(true);
    expect(sdkGets.count).toBe(1);
    expect((await caught(a.readInto("no such key", 0, body))).kind).toBe("NotFound");
    expect((await caught(a.readInto("big", big.length + 10, body))).kind).toBe("ConditionNotMatch");
  });

  it("a local file in parts: one digest pass gives the md5 and the part CRC32Cs; bytes changed after it are refused, and the upload starts again", async () => {
    const dst = await open(`${root}/digest`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cm-s3-digest-"));
    const file = path.join(dir, "big.bin");
    const first = randomBytes(12 * 1024 * 1024 + 3);
    fs.writeFileSync(file, first);
    const mtime = fs.statSync(file).mtime;
    const fsa = new FsAdapter(parseLocation(dir));
    // The file is rewritten (same size, same mtime) right after its first digest pass.
    const changed = randomBytes(first.length);
    let passes = 0;
    const source: Adapter = Object.assign(Object.create(fsa) as Adapter, {
      async digestParts(key: string, partSize: number) {
        const d = await fsa.digestParts(key, partSize);
        if (passes++ === 0) {
          fs.writeFileSync(file, changed);
          fs.utimesSync(file, mtime, mtime);
        }
        return d;
      },
    });
    const store = SqliteCheckpoint.create(path.join(dir, "j.sqlite"), {
      id: "t",
      source: dir,
      destination: `${root}/digest`,
      options: { include: ["big.bin"], exclude: [], compare: "default", delete: false },
    });
    await plan({ source, destination: dst, store, options: store.job.options });
    const refusals: string[] = [];
    const result = await new Copier(source, dst, store, {
      concurrency: 1,
      retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 },
      multipart: { threshold: 5 * 1024 * 1024, partSize: 5 * 1024 * 1024, partConcurrency: 3, maxMemory: 64 * 1024 * 1024 },
      onEvent: (e) => e.type === "retry" && /XAmzContentChecksumMismatch|BadDigest/.test(e.error) && refusals.push(e.error),
    }).run();
    store.close();
    expect(result.copied).toBe(1);
    expect(refusals.length).toBeGreaterThan(0);
    // Not continued with the old bytes' parts: a second digest pass, for a new upload.
    expect(passes).toBe(2);
    expect((await readAll(await dst.read("big.bin"))).equals(changed)).toBe(true);
    expect((await dst.stat("big.bin")).md5).toBe(md5(changed));
    fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it("an S3 multipart object overwritten mid-copy: its parts' checksums are refused, the upload dropped, the new version copied", async () => {
    const a = await open(`${root}/changing`);
    const dst = await open(`${root}/changing-copy`);
    // 23 MiB in 5 MiB parts with their CRC32Cs and the whole MD5: copied into 15 MiB parts,
    // each checked against three source parts' CRC32Cs.
    const partSize = 5 * 1024 * 1024;
    const old = randomBytes(23 * 1024 * 1024);
    const info = src("big.bin", old.length, { md5: md5(old), mtime: 1_600_000_000_000 });
    const id = await a.multipart!.startUpload("big.bin", info, partSize);
    const parts = [];
    for (let n = 1, off = 0; off < old.length; n++, off += partSize) {
      const body = old.subarray(off, off + partSize);
      parts.push({ partNumber: n, size: body.length, checksum: crc32cBase64(body), etag: await a.multipart!.uploadPart("big.bin", id, n, body, crc32cBase64(body)) });
    }
    await a.multipart!.completeUpload("big.bin", id, parts, info, md5(old));
    // Overwritten (another size, another mtime) just before the checksums of the second
    // destination part (source parts 4 and 5) are asked; one part in flight keeps it in order.
    const fresh = randomBytes(old.length - 1000);
    let overwritten = false;
    const source: Adapter = Object.assign(Object.create(a) as Adapter, {
      async partChecksum(key: string, n: number, listed: ObjectInfo) {
        if (n === 4 && !overwritten) {
          overwritten = true;
          await a.write(key, Readable.from([fresh]), src(key, fresh.length, { mtime: 1_700_000_000_000 }), { md5: md5(fresh) });
        }
        return a.partChecksum!(key, n, listed);
      },
    });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cm-s3-changing-"));
    const store = SqliteCheckpoint.create(path.join(dir, "j.sqlite"), {
      id: "t",
      source: `${root}/changing`,
      destination: `${root}/changing-copy`,
      options: { include: [], exclude: [], compare: "default", delete: false },
    });
    await plan({ source, destination: dst, store, options: store.job.options });
    const retries: string[] = [];
    const result = await new Copier(source, dst, store, {
      concurrency: 1,
      retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 },
      multipart: { threshold: 8 * 1024 * 1024, partConcurrency: 1, maxMemory: 64 * 1024 * 1024 },
      onEvent: (e) => e.type === "retry" && retries.push(e.error),
    }).run();
    store.close();
    expect(overwritten).toBe(true);
    expect(result).toMatchObject({ copied: 1, failed: 0 });
    expect(retries).toHaveLength(1);
    expect(retries[0]).toMatch(/changed at the source while being copied/);
    expect((await readAll(await dst.read("big.bin"))).equals(fresh)).toBe(true);
    expect(await dst.stat("big.bin")).toMatchObject({ size: fresh.length, md5: md5(fresh), mtime: 1_700_000_000_000 });
    fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it("a whole body sent with only its CRC32C: S3 checks it and reports it with its own md5; a wrong one stores nothing", async () => {
    const a = await open(`${root}/crc-only`);
    for (const key of ["first", "second"]) {
      // The first PutObject goes through the SDK (and shows the lean path its URL); the second is lean.
      const body = randomBytes(3000);
      const r = await a.write(key, Readable.from([body]), src(key, body.length), { whole: body, crc32c: crc32cBase64(body) });
      expect(r).toMatchObject({ size: body.length, md5: md5(body), crc32c: crc32cBase64(body) });
      expect((await readAll(await a.read(key))).equals(body)).toBe(true);
      const bad = await caught(a.write(`${key}-bad`, Readable.from([body]), src(`${key}-bad`, body.length), { whole: body, crc32c: crc32cBase64(Buffer.from("x")) }));
      expect(bad.kind).toBe("Integrity");
      expect((await caught(a.stat(`${key}-bad`))).kind).toBe("NotFound");
    }
  });

  it("a HeadObject (stat) shows the lean path the URL, so a large object's first part already goes direct", async () => {
    const loc = parseLocation(`${root}/direct reads`);
    const writer = await open(`${root}/direct reads`);
    const body = randomBytes(200_000);
    await writer.write("headed", Readable.from([body]), src("headed", body.length));
    const { client, lean } = createS3Client(loc.root, emu.adapterOptions);
    const sdkGets = countSdkGets(client);
    const a = new S3Adapter(loc, client, lean);
    adapters.push(a);
    expect((await a.stat("headed")).size).toBe(body.length);
    expect(lean.ready).toBe(true);
    const target = Buffer.alloc(100_000);
    expect(await a.readInto("headed", 50_000, target)).toBe(100_000);
    expect(target.equals(body.subarray(50_000, 150_000))).toBe(true);
    expect(sdkGets.count).toBe(0);
  });

  it("the copier reads S3 objects of a few MiB whole, straight off the socket, and keeps what the read told (metadata)", async () => {
    const srcLoc = parseLocation(`${root}/whole-src`);
    const writer = await open(`${root}/whole-src`);
    const dst = await open(`${root}/whole-dst`);
    const extra = { contentType: "application/x-mine", cacheControl: "no-cache", metadata: { owner: "ünïcode" }, mtime: 1_650_000_000_456 };
    const objects = new Map([["a warm-up", randomBytes(1000)], ["mid", randomBytes(3 * 1024 * 1024 + 5)], ["mid 2", randomBytes(300 * 1024)]]);
    for (const [k, v] of objects) await writer.write(k, Readable.from([v]), src(k, v.length, extra));
    const { client, lean } = createS3Client(srcLoc.root, emu.adapterOptions);
    const sdkGets = countSdkGets(client);
    const source = new S3Adapter(srcLoc, client, lean);
    adapters.push(source);
    const { counted, whole: wholeReads } = countingReads(source);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cm-s3-whole-"));
    // All three start at once, before any SDK call on an object: the first whole read's
    // HeadObject teaches the lean path the URL, and every read waits for it, none streams.
    const result = await planAndCopy(counted, dst, { dir, urls: [`${root}/whole-src`, `${root}/whole-dst`], include: [], concurrency: 16 });
    fs.rmSync(dir, { recursive: true, force: true });
    expect(result.copied).toBe(3);
    expect(wholeReads.sort()).toEqual(["a warm-up", "mid", "mid 2"]);
    expect(sdkGets.count).toBe(0);
    for (const [k, v] of objects) {
      expect((await readAll(await dst.read(k))).equals(v)).toBe(true);
      expect(await dst.stat(k)).toMatchObject({ size: v.length, md5: md5(v), contentType: "application/x-mine", cacheControl: "no-cache", metadata: { owner: "ünïcode" }, mtime: extra.mtime });
    }
  });

  it("never lets the SDK's NodeVersionSupportWarning through", async () => {
    await new Promise((r) => setImmediate(r));
    expect(warnings.filter((w) => w.includes("NodeVersionSupportWarning"))).toEqual([]);
  });
});
