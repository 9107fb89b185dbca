/**
 * Azure Blob adapter tests against a real Azurite (tests/emulators/azurite.ts): the shared
 * contract suite, plus Azure-specific behaviour (credential resolution, metadata name encoding,
 * the three write paths, block-list multipart, error mapping, SAS access).
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { BlockBlobClient, StorageSharedKeyCredential, StorageSharedKeyCredentialPolicy } from "@azure/storage-blob";
import type { WebResourceLike } from "@azure/core-http-compat";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseLocation } from "../../adapters/index.js";
import { DEV_ACCOUNT, connect, resolveAuth } from "../../adapters/azure/client.js";
import { API_VERSION } from "../../adapters/azure/direct.js";
import { SharedKey, headerNameLess, sharedKeyAuthorization } from "../../adapters/azure/shared-key.js";
import { mapAzureError } from "../../adapters/azure/errors.js";
import { AzureAdapter, createAzureAdapter } from "../../adapters/azure/index.js";
import { decodeMetaName, decodeMetaValue, encodeMetaName, encodeMetaValue, parseMtime } from "../../adapters/azure/metadata.js";
import { blockId } from "../../adapters/azure/multipart.js";
import { inCodePointOrder } from "../../adapters/azure/order.js";
import type { Adapter, AdapterOptions, ObjectInfo } from "../../adapters/types.js";
import { MigrateError } from "../../src/errors.js";
import { compareKeys } from "../../src/keys.js";
import { adapterContract, emulatorTarget } from "./contract.js";
import { DEV_KEY, containerSasUrl, startAzurite, type AzuriteEmulator } from "../emulators/azurite.js";
import { md5, readAll, collect } from "../helpers/streams.js";
import { caught } from "../helpers/errors.js";
import { countingReads, expectPartsReadBack, planAndCopy } from "../helpers/copy.js";
import { FsAdapter } from "../../adapters/fs.js";

const emulator = await startAzurite();
afterAll(async () => {
  await emulator?.stop();
});

adapterContract("azure (azurite)", () => emulatorTarget(emulator, createAzureAdapter, { checksCredentials: true }));

function src(key: string, size: number, extra: Partial<ObjectInfo> = {}): ObjectInfo {
  return { key, size, ...extra };
}

const loc = (url: string) => parseLocation(url);

describe("azure configuration (no emulator needed)", () => {
  const account = "acct1";
  const l = loc(`az://${account}/cont/p`);

  it("uses a connection string for its own account, or for any account when it names a BlobEndpoint", () => {
    const own = resolveAuth(l, { AZURE_STORAGE_CONNECTION_STRING: `AccountName=${account};AccountKey=a2V5;EndpointSuffix=core.chinacloudapi.cn` });
    expect(own.endpoint).toBe(`https://${account}.blob.core.chinacloudapi.cn`);
    expect(own.source).toMatch(/shared key/);
    const other = () => resolveAuth(l, { AZURE_STORAGE_CONNECTION_STRING: "AccountName=someoneelse;AccountKey=a2V5" });
    expect(other).toThrow(MigrateError);
    const emu = resolveAuth(l, { AZURE_STORAGE_CONNECTION_STRING: "AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1" });
    expect(emu.endpoint).toBe("http://127.0.0.1:1/devstoreaccount1");
    const dev = resolveAuth(l, { AZURE_STORAGE_CONNECTION_STRING: "UseDevelopmentStorage=true" });
    expect(dev.endpoint).toBe("http://127.0.0.1:10000/devstoreaccount1");
  });

  it("falls back to a SAS (URL, then env) and then an account key", () => {
    const sasLoc = parseLocation(`https://${account}.blob.core.windows.net/cont/p?sv=2024&sig=SECRET`);
    expect(sasLoc.display).not.toContain("SECRET");
    expect(resolveAuth(sasLoc, { AZURE_STORAGE_KEY: "a2V5" })).toMatchObject({ sas: "sv=2024&sig=SECRET", source: "SAS in the URL" });
    expect(resolveAuth(l, { AZURE_STORAGE_SAS_TOKEN: "?sv=1&sig=x" })).toMatchObject({ sas: "sv=1&sig=x", endpoint: `https://${account}.blob.core.windows.net` });
    expect(resolveAuth(l, { AZURE_STORAGE_ACCOUNT_KEY: "a2V5" }).source).toBe("AZURE_STORAGE_ACCOUNT_KEY");
    // A key for another account is not used.
    expect(() => resolveAuth(l, { AZURE_STORAGE_ACCOUNT: "other", AZURE_STORAGE_KEY: "a2V5" })).toThrow(/AZURE_STORAGE_CONNECTION_STRING/);
  });

  it("without credentials fails run-scoped, naming the variables to set", async () => {
    const err = await caught(createAzureAdapter(l, { env: {} }));
    expect(err).toMatchObject({ kind: "ConfigInvalid", scope: "run" });
    expect(err.message).toMatch(/AZURE_STORAGE_CONNECTION_STRING.*AZURE_STORAGE_SAS_TOKEN.*AZURE_STORAGE_KEY/);
  });

  it("encodes metadata names into C# identifiers and values into printable ASCII, reversibly", () => {
    for (const name of ["plain", "content-id", "x-amz-thing", "a_b", "cmx_trap", "ünï", "9lives", "with space", ""]) {
      const enc = encodeMetaName(name);
      expect(enc).toMatch(/^[a-z_][a-z0-9_]*$/);
      expect(decodeMetaName(enc)).toBe(name);
    }
    expect(encodeMetaName("Plain_Name")).toBe("plain_name");
    expect(encodeMetaName("content-id")).toBe("cmx_content_2did");
    for (const v of ["plain", "héllo", " edge ", "=?UTF-8?B?literal?=", "line\nbreak", "日本語", ""]) {
      const enc = encodeMetaValue(v);
      expect(enc).toMatch(/^[\x20-\x7e]*$/);
      expect(decodeMetaValue(enc)).toBe(v);
    }
  });

  it("reads our ms mtimes, fractional seconds and rclone's RFC 3339 mtimes", () => {
    expect(parseMtime("1700000000123")).toBe(1700000000123);
    expect(parseMtime("1700000000.5")).toBe(1700000000500);
    expect(parseMtime("2006-01-02T15:04:05.999999999Z")).toBe(Date.UTC(2006, 0, 2, 15, 4, 5, 999));
    expect(parseMtime("yesterday")).toBeUndefined();
  });

  it("re-orders UTF-16-sorted listings into code-point order, in bounded memory", async () => {
    const alphabet = ["a", "b", "/", "\ue000", "\uff5e", "\uffff", "😀", "𝄞", "\u{10ffff}"];
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let round = 0; round < 200; round++) {
      const names = new Set<string>();
      const count = 1 + rnd(40);
      for (let i = 0; i < count; i++) {
        let k = "";
        for (let j = 1 + rnd(5); j > 0; j--) k += alphabet[rnd(alphabet.length)];
        names.add(k);
      }
      const utf16 = [...names].sort();
      let calls = 0;
      const lister = async function* (prefix: string) {
        calls++;
        yield* utf16.filter((n) => n.startsWith(prefix));
      };
      const out: string[] = [];
      for await (const n of inCodePointOrder(lister, (x) => x, "")) out.push(n);
      expect(out).toEqual([...names].sort(compareKeys));
      if (!utf16.some((n) => /[\ud800-\udbff]/.test(n))) expect(calls).toBe(1);
    }
  });

  it("derives same-length block ids from the upload id and part number", () => {
    const a = blockId("0123456789abcdef", 1);
    expect(a).toBe(blockId("0123456789abcdef", 1));
    expect(blockId("0123456789abcdef", 50000)).toHaveLength(a.length);
    expect(() => blockId("nope", 1)).toThrow(MigrateError);
  });

  it("maps Azure errors to kinds and scopes without leaking secrets", () => {
    const rest = (status: number | undefined, errorCode?: string, headers: Record<string, string> = {}, message = "boom") =>
      Object.assign(new Error(message), {
        name: "RestError",
        statusCode: status,
        code: errorCode,
        details: { errorCode, ...headers },
        response: { headers: { get: (n: string) => headers[n.toLowerCase()] } },
      });
    const w = "az://a/c/k";
    expect(mapAzureError(rest(404, "ContainerNotFound"), w)).toMatchObject({ kind: "ConfigInvalid", scope: "run" });
    expect(mapAzureError(rest(404, "BlobNotFound"), w)).toMatchObject({ kind: "NotFound", scope: "object" });
    expect(mapAzureError(rest(403, "AuthenticationFailed"), w)).toMatchObject({ kind: "PermissionDenied", scope: "run" });
    expect(mapAzureError(rest(412, "ConditionNotMet"), w)).toMatchObject({ kind: "ConditionNotMatch" });
    expect(mapAzureError(rest(503, "ServerBusy", { "retry-after": "3" }), w)).toMatchObject({ kind: "RateLimited", temporary: true, retryAfterMs: 3000 });
    expect(mapAzureError(rest(429), w)).toMatchObject({ kind: "RateLimited", temporary: true });
    expect(mapAzureError(rest(500, "InternalError"), w)).toMatchObject({ kind: "Unexpected", temporary: true });
    expect(mapAzureError(rest(400, "Md5Mismatch"), w)).toMatchObject({ kind: "Integrity" });
    expect(mapAzureError(rest(400, "InvalidHeaderValue"), w)).toMatchObject({ kind: "Unexpected", temporary: false });
    expect(mapAzureError(rest(undefined, "ECONNRESET"), w)).toMatchObject({ kind: "Unexpected", temporary: true });
    expect(mapAzureError(rest(undefined, "REQUEST_SEND_ERROR"), w)).toMatchObject({ temporary: true });
    const leaky = mapAzureError(rest(403, "AuthenticationFailed", {}, "bad https://x/c?sv=1&sig=SECRETSIG\nRequestId:1"), w);
    expect(leaky.message).not.toContain("SECRETSIG");
    expect(leaky.message).not.toContain("\n");
    expect(leaky.message).toContain(w);
  });

  it("reads parts through the SDK from the first direct answer without a length (chunked) on", async () => {
    const data = randomBytes(300_000);
    const ranges: string[] = [];
    const server = http.createServer((req, res) => {
      const m = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers["x-ms-range"] ?? req.headers.range))!;
      ranges.push(m[0]);
      const [start, end] = [Number(m[1]), Math.min(Number(m[2]), data.length - 1)];
      // Chunked (no length) to the direct path's requests, told apart by their older x-ms-version.
      const length = req.headers["x-ms-version"] === "2021-08-06" ? {} : { "content-length": end - start + 1 };
      res.writeHead(206, { ...length, "content-range": `bytes ${start}-${end}/${data.length}`, etag: '"e"', "x-ms-blob-type": "BlockBlob" });
      res.end(data.subarray(start, end + 1));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as net.AddressInfo).port;
    const env = { AZURE_STORAGE_CONNECTION_STRING: `AccountName=devstoreaccount1;AccountKey=${DEV_KEY};BlobEndpoint=http://127.0.0.1:${port}/devstoreaccount1` };
    const a = (await createAzureAdapter(loc("az://devstoreaccount1/c"), { env })) as AzureAdapter;
    try {
      const sdkReads = vi.spyOn(a, "read");
      await expectPartsReadBack(a, "k", data, 100_000);
      expect(sdkReads).toHaveBeenCalledTimes(3);
      expect(ranges).toHaveLength(4); // direct (refused), then the SDK for every part
    } finally {
      await a.close?.();
      server.closeAllConnections();
      server.close();
    }
  });

  it("a List Blobs page cut short fails the listing as a temporary error, not an early end", async () => {
    const whole = `<?xml version="1.0" encoding="utf-8"?><EnumerationResults ContainerName="c"><Blobs><Blob><Name>a</Name><Properties><Content-Length>1</Content-Length></Properties></Blob><Blob><Name>b</Name><Properties><Content-Length>2</Content-Length></Properties></Blob></Blobs><NextMarker /></EnumerationResults>`;
    let answers = 0;
    const server = http.createServer((req, res) => {
      // The first answer is a whole HTTP response whose XML stops after the first blob.
      const body = answers++ === 0 ? whole.slice(0, whole.indexOf("<Blob><Name>b")) : whole;
      res.writeHead(200, { "content-type": "application/xml", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as net.AddressInfo).port;
    const env = { AZURE_STORAGE_CONNECTION_STRING: `AccountName=devstoreaccount1;AccountKey=${DEV_KEY};BlobEndpoint=http://127.0.0.1:${port}/devstoreaccount1` };
    const a = await createAzureAdapter(loc("az://devstoreaccount1/c"), { env });
    try {
      const err = await caught(collect(a.list()));
      expect(err).toMatchObject({ kind: "Unexpected", temporary: true, message: expect.stringContaining("az://devstoreaccount1/c: listing /: List Blobs: the page is cut short") });
      expect((await collect(a.list())).map((o) => [o.key, o.size])).toEqual([["a", 1], ["b", 2]]);
    } finally {
      await a.close?.();
      server.closeAllConnections();
      server.close();
    }
  });

  it("times out a silent server as a temporary error", async () => {
    const sockets: net.Socket[] = [];
    const server = net.createServer((s) => sockets.push(s)); // accepts, never answers
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as net.AddressInfo).port;
    const env = { AZURE_STORAGE_CONNECTION_STRING: `AccountName=devstoreaccount1;AccountKey=${DEV_KEY};BlobEndpoint=http://127.0.0.1:${port}/devstoreaccount1` };
    const a = await createAzureAdapter(loc("az://devstoreaccount1/c"), { env, requestTimeoutMs: 300 });
    const started = Date.now();
    const err = await caught(a.stat("k"));
    expect(err.temporary).toBe(true);
    expect(Date.now() - started).toBeLessThan(5000);
    await a.close?.();
    for (const s of sockets) s.destroy();
    server.close();
  });
});

describe.skipIf(!emulator)("azure adapter on Azurite", () => {
  const emu = emulator as AzuriteEmulator;
  let root = "";
  const adapters: Adapter[] = [];

  async function open(url: string, opts: AdapterOptions = emu.adapterOptions): Promise<AzureAdapter> {
    const a = (await createAzureAdapter(loc(url), opts)) as AzureAdapter;
    adapters.push(a);
    return a;
  }

  beforeAll(async () => {
    root = await emu.createBucket();
  });

  afterAll(async () => {
    for (const a of adapters) await a.close?.();
  });

  it("round-trips bodies, content headers, awkward metadata and the source mtime", async () => {
    const a = await open(`${root}/meta`);
    const body = Buffer.from("hello azure");
    const mtime = Date.UTC(2020, 1, 2, 3, 4, 5, 678);
    const metadata = { plain: "v", "content-id": "<x@y>", "ünï": "wörld", "x-Mixed-Case": " padded " };
    const r = await a.write(
      "m.txt",
      Readable.from([body]),
      src("m.txt", body.length, {
        mtime,
        contentType: "text/plain; charset=utf-8",
        cacheControl: "max-age=60",
        contentEncoding: "identity",
        contentDisposition: 'attachment; filename="m.txt"',
        contentLanguage: "fr",
        metadata: { ...metadata, mtime: "1", md5: "junk" },
      }),
    );
    expect(r).toMatchObject({ size: body.length, md5: md5(body) });
    const expected = {
      key: "m.txt",
      size: body.length,
      mtime,
      md5: md5(body),
      contentType: "text/plain; charset=utf-8",
      cacheControl: "max-age=60",
      contentEncoding: "identity",
      contentDisposition: 'attachment; filename="m.txt"',
      contentLanguage: "fr",
      metadata: { plain: "v", "content-id": "<x@y>", "ünï": "wörld", "x-mixed-case": " padded " },
    };
    expect(await a.stat("m.txt")).toMatchObject(expected);
    const [listed] = await collect(a.list());
    expect(listed).toMatchObject(expected);
    expect((await readAll(await a.read("m.txt"))).toString()).toBe("hello azure");
    expect((await readAll(await a.read("m.txt", { start: 6, end: 10 }))).toString()).toBe("azure");
    // Read whole straight off the socket: the same bytes, and the same info as stat gives.
    const whole = await a.readWhole("m.txt", 1000, { md5: true });
    expect(whole?.body.toString()).toBe("hello azure");
    expect(whole?.md5).toBe(md5(body));
    expect(whole?.info).toEqual(await a.stat("m.txt"));
    expect(await a.readWhole("m.txt", body.length - 1)).toBeUndefined(); // more than fits: streamed instead
    expect(await caught(a.readWhole("nope", 10))).toMatchObject({ kind: "NotFound" });
  });

  it("the copier reads small and mid-size blobs whole, straight off the socket, keeping their metadata", async () => {
    const from = await open(`${root}/whole-src`);
    const extra = { contentType: "application/x-mine", cacheControl: "no-cache", metadata: { owner: "ünïcode" }, mtime: 1_650_000_000_456 };
    const objects = new Map([["small", randomBytes(4096)], ["mid", randomBytes(3 * 1024 * 1024 + 5)], ["empty", Buffer.alloc(0)]]);
    for (const [k, v] of objects) await from.write(k, Readable.from([v]), src(k, v.length, extra));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cm-az-whole-"));
    const dst = new FsAdapter(parseLocation(path.join(dir, "dst")));
    const { counted, whole, streamed } = countingReads(from);
    const result = await planAndCopy(counted, dst, { dir, urls: [`${root}/whole-src`, path.join(dir, "dst")], include: [], concurrency: 2 });
    expect(result).toMatchObject({ copied: 3, failed: 0 });
    expect(whole.sort()).toEqual(["mid", "small"]);
    expect(streamed).toEqual(["empty"]);
    for (const [k, v] of objects) {
      expect(fs.readFileSync(path.join(dir, "dst", k)).equals(v)).toBe(true);
      expect(fs.statSync(path.join(dir, "dst", k)).mtimeMs).toBe(extra.mtime);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("treats prefixes as folders and skips folder placeholders", async () => {
    const ab = await open(`${root}/ab`);
    const a = await open(`${root}/a`);
    await ab.write("x", Readable.from([Buffer.from("1")]), src("x", 1));
    await a.write("y/z", Readable.from([Buffer.from("2")]), src("y/z", 1));
    await a.write("yz", Readable.from([Buffer.from("3")]), src("yz", 1));
    // A placeholder written by another tool (our keyProblem refuses such names).
    await (await a["conn"].sdk()).getBlockBlobClient("a/y/").upload("", 0);
    expect((await collect(a.list())).map((o) => o.key)).toEqual(["y/z", "yz"]);
    expect((await collect(a.list("y"))).map((o) => o.key)).toEqual(["y/z"]);
    expect(await collect(a.list("missing"))).toEqual([]);
  });

  it("lists in UTF-8 byte order although Azurite sorts by UTF-16 code units", async () => {
    const a = await open(`${root}/order`);
    const keys = ["b", "B", "a/b", "a-b", "a0", "é", "~", "ÿ", "😀", "\uff5e", "a b", "_", "dir/x", "dir-x", "x😀/\ue000", "x😀/𝄞", "x\ue000"];
    for (const k of keys) await a.write(k, Readable.from([Buffer.from(k)]), src(k, Buffer.byteLength(k)));
    const raw: string[] = [];
    for await (const b of (await a["conn"].sdk()).listBlobsFlat({ prefix: "order/" })) raw.push(b.name.slice("order/".length));
    expect(raw).toEqual([...keys].sort()); // what Azurite does
    const listed = (await collect(a.list())).map((o) => o.key);
    expect(listed).toEqual([...keys].sort(compareKeys));
  });

  it("reports key problems Azure would silently rewrite", async () => {
    const a = await open(`${root}/keys`);
    for (const bad of ["", "dir/", "a.", "x/../y", "x/./y", "back\\slash", "x".repeat(1025), "lone\ud800"]) {
      expect(a.keyProblem(bad), JSON.stringify(bad)).toBeTruthy();
    }
    for (const good of ["plain", "sp ace", "q?uery&a=b#f", "x//y", "100%", "😀", "a.b"]) {
      expect(a.keyProblem(good), good).toBeUndefined();
      await a.write(good, Readable.from([Buffer.from(good)]), src(good, Buffer.byteLength(good)));
      expect((await readAll(await a.read(good))).toString()).toBe(good);
    }
    expect(await caught(a.write("a.", Readable.from([]), src("a.", 0)))).toMatchObject({ kind: "Unsupported" });
  });

  it("writes through all three paths (buffered, streaming Put Blob, staged blocks) with md5", async () => {
    const a = await open(`${root}/paths`);
    a.writeLimits = { bufferMax: 1024, streamPutMax: 64 * 1024, blockSize: 16 * 1024, blockConcurrency: 3 };
    for (const size of [0, 1000, 50_000, 100_000, 16 * 1024 * 5]) {
      const body = randomBytes(size);
      const chunks = [body.subarray(0, size / 3), body.subarray(size / 3)];
      const r = await a.write(`f${size}`, Readable.from(chunks), src(`f${size}`, size, { mtime: 1234, metadata: { k: "v" } }), { md5: md5(body) });
      expect(r).toMatchObject({ size, md5: md5(body) });
      const st = await a.stat(`f${size}`);
      expect(st).toMatchObject({ size, md5: md5(body), mtime: 1234, metadata: { k: "v" } });
      expect((await readAll(await a.read(`f${size}`))).equals(body)).toBe(true);
    }
    a.writeLimits = { ...a.writeLimits, streamPutMax: -1 }; // an empty body through the staged path
    expect(await a.write("empty", Readable.from([]), src("empty", 0))).toMatchObject({ size: 0, md5: md5("") });
    expect(await a.stat("empty")).toMatchObject({ size: 0, md5: md5("") });
  });

  it("rejects wrong sizes, wrong md5s and failing bodies without leaving an object", async () => {
    const a = await open(`${root}/bad`);
    a.writeLimits = { bufferMax: 1024, streamPutMax: 64 * 1024, blockSize: 16 * 1024, blockConcurrency: 2 };
    const body = randomBytes(5000);
    const cases: [string, () => Promise<unknown>][] = [
      ["short-buffered", () => a.write("k1", Readable.from([body.subarray(0, 100)]), src("k1", 200))],
      ["long-streamed", () => a.write("k2", Readable.from([body]), src("k2", 4000))],
      ["short-streamed", () => a.write("k3", Readable.from([body]), src("k3", 6000))],
      ["md5-buffered", () => a.write("k4", Readable.from([body.subarray(0, 100)]), src("k4", 100), { md5: md5("other") })],
      ["md5-streamed", () => a.write("k5", Readable.from([body]), src("k5", 5000), { md5: md5("other") })],
      ["short-staged", () => a.write("k6", Readable.from([randomBytes(70_000)]), src("k6", 80_000))],
    ];
    for (const [name, run] of cases) {
      const err = await caught(run());
      expect(err.kind, name).toBe("Integrity");
    }
    const failing = new Readable({
      read() {
        this.push(randomBytes(2000));
        this.destroy(new MigrateError("Unexpected", "source broke", { temporary: true }));
      },
    });
    expect((await caught(a.write("k7", failing, src("k7", 5000)))).message).toMatch(/source broke/);
    expect(await collect(a.list())).toEqual([]);
  });

  it("uploads block lists as multipart, resumable by upload id, with per-part md5 checks", async () => {
    const a = await open(`${root}/mp`);
    const mp = a.multipart;
    const parts = [randomBytes(7000), randomBytes(7000), randomBytes(123)];
    const whole = Buffer.concat(parts);
    const id = await mp.startUpload("big.bin", src("big.bin", whole.length), 7000);
    const e1 = await mp.uploadPart("big.bin", id, 2, parts[1], md5(parts[1]));
    const bad = await caught(mp.uploadPart("big.bin", id, 1, parts[0], md5(parts[1])));
    expect(bad.kind).toBe("Integrity");
    // "Restart": a new adapter continues the same upload.
    const b = await open(`${root}/mp`);
    const e0 = await b.multipart.uploadPart("big.bin", id, 1, parts[0], md5(parts[0]));
    const e2 = await b.multipart.uploadPart("big.bin", id, 3, parts[2], md5(parts[2]));
    expect(await collect(b.list())).toEqual([]);
    const r = await b.multipart.completeUpload(
      "big.bin",
      id,
      [
        { partNumber: 3, etag: e2, size: 123, checksum: md5(parts[2]) },
        { partNumber: 1, etag: e0, size: 7000, checksum: md5(parts[0]) },
        { partNumber: 2, etag: e1, size: 7000, checksum: md5(parts[1]) },
      ],
      src("big.bin", whole.length, { mtime: 99, contentType: "application/x-big", metadata: { "a-b": "c" } }),
      md5(whole),
    );
    expect(r.size).toBe(whole.length);
    expect(await b.stat("big.bin")).toMatchObject({ size: whole.length, md5: md5(whole), mtime: 99, contentType: "application/x-big", metadata: { "a-b": "c" } });
    expect((await readAll(await b.read("big.bin"))).equals(whole)).toBe(true);
    await b.multipart.abortUpload("big.bin", id);
    await b.multipart.abortUpload("never", await b.multipart.startUpload("never", src("never", 1), 1));
  });

  it("maps missing objects, missing containers and bad credentials", async () => {
    const a = await open(`${root}/err`);
    expect(await caught(a.stat("nope"))).toMatchObject({ kind: "NotFound", scope: "object" });
    expect(await caught(a.read("nope"))).toMatchObject({ kind: "NotFound" });
    await a.delete("nope");
    await a.check("source");
    await a.check("destination");

    const missing = await open(emu.missingBucketUrl());
    for (const p of [missing.check("destination"), missing.stat("x"), missing.write("x", Readable.from([Buffer.from("1")]), src("x", 1))]) {
      expect(await caught(p)).toMatchObject({ kind: "ConfigInvalid", scope: "run" });
    }
    const bad = await open(root, { ...emu.adapterOptions, env: emu.badCredentialsEnv });
    // One at a time: a refusal that arrives before the loop awaits it would be unhandled.
    for (const call of [() => bad.check("source"), () => bad.stat("x"), () => collect(bad.list())]) {
      const err = await caught(call());
      expect(err).toMatchObject({ kind: "PermissionDenied", scope: "run" });
      expect(err.message).not.toContain(DEV_KEY);
      expect(err.message).not.toMatch(/AccountKey=/);
    }
  });

  it("lists page by page without the SDK: markers, a prefix with spaces and & + %, shared key and SAS", async () => {
    const a = await open(`${root}/pages`);
    const names = ["a b+c&d%25/1 2", "a b+c&d%25/x<y>", "a b+c&e", "z/\u00e9\ud83d\ude00", "z/\ufffd", "zz'\"q"];
    for (const n of names) await a.write(n, Readable.from([Buffer.from(n)]), src(n, Buffer.byteLength(n), { metadata: { "k&v": "<1 & 2>" } }));
    const sasUrl = new URL(await containerSasUrl(emu, root));
    const sasEnv = { AZURE_STORAGE_CONNECTION_STRING: `BlobEndpoint=${emu.blobEndpoint};SharedAccessSignature=${sasUrl.search.slice(1)}` };
    for (const opts of [emu.adapterOptions, { ...emu.adapterOptions, env: sasEnv }]) {
      const conn = connect(loc(`${root}/pages`), opts);
      try {
        // Two blobs a page: the listing only completes by following each page's marker.
        const seen: string[] = [];
        let marker: string | undefined;
        let pages = 0;
        do {
          const page = await conn.lister.page("pages/", marker, 2);
          expect(page.blobs.length).toBeLessThanOrEqual(2);
          for (const b of page.blobs) {
            seen.push(b.name);
            expect(b.properties.contentLength).toBe(Buffer.byteLength(b.name.slice("pages/".length)));
            expect(b.metadata).toEqual({ [encodeMetaName("k&v")]: encodeMetaValue("<1 & 2>") });
          }
          marker = page.nextMarker;
          pages++;
        } while (marker);
        expect(pages).toBe(3);
        expect(seen.map((n) => n.slice("pages/".length))).toEqual([...names].sort());
        const inFolder = await conn.lister.page("pages/a b+c&d%25/", undefined, 10);
        expect(inFolder.blobs.map((b) => b.name)).toEqual(["pages/a b+c&d%25/1 2", "pages/a b+c&d%25/x<y>"]);
      } finally {
        conn.close();
      }
    }
    const listed = await collect(a.list("a b+c&d%25"));
    expect(listed.map((o) => [o.key, o.metadata])).toEqual([
      ["a b+c&d%25/1 2", { "k&v": "<1 & 2>" }],
      ["a b+c&d%25/x<y>", { "k&v": "<1 & 2>" }],
    ]);
    // What a listing says of each blob is what stat says, its etag too (the service gives it
    // bare in a listing and as a quoted HTTP ETag from Get Blob Properties).
    for (const o of await collect(a.list())) {
      expect(o.etag).toMatch(/^[^"]+$/);
      expect(o).toEqual(await a.stat(o.key));
    }
  });

  it("reads parts straight off the socket (readInto) with a shared key or a SAS; a wrong key is refused", async () => {
    const data = randomBytes(2_500_000);
    await (await open(`${root}/direct`)).write("parts.bin", Readable.from([data]), src("parts.bin", data.length));
    const sasUrl = new URL(await containerSasUrl(emu, root));
    const sasEnv = { AZURE_STORAGE_CONNECTION_STRING: `BlobEndpoint=${emu.blobEndpoint};SharedAccessSignature=${sasUrl.search.slice(1)}` };
    for (const a of [await open(`${root}/direct`), await open(`${root}/direct`, { env: sasEnv })]) {
      const sdkReads = vi.spyOn(a, "read");
      await expectPartsReadBack(a, "parts.bin", data, 1_000_000);
      expect(sdkReads).not.toHaveBeenCalled();
      expect(await caught(a.readInto("nope", 0, Buffer.alloc(10)))).toMatchObject({ kind: "NotFound", message: expect.stringContaining("direct/nope") });
    }
    // Azurite checks the signature: the same read under another key is refused.
    const bad = await open(`${root}/direct`, { ...emu.adapterOptions, env: emu.badCredentialsEnv });
    const err = await caught(bad.readInto("parts.bin", 0, Buffer.alloc(10)));
    expect(err).toMatchObject({ kind: "PermissionDenied", scope: "run" });
    expect(err.message).not.toContain(DEV_KEY);
  });

  it("writes without the SDK (blob-requests.ts) under awkward names, with a shared key or a SAS; a wrong key is refused", async () => {
    const sasUrl = new URL(await containerSasUrl(emu, root));
    const sasEnv = { AZURE_STORAGE_CONNECTION_STRING: `BlobEndpoint=${emu.blobEndpoint};SharedAccessSignature=${sasUrl.search.slice(1)}` };
    const parts = [randomBytes(300_000), randomBytes(1000)];
    const whole = Buffer.concat(parts);
    const keys = ["a b+c&d%25/1 2.bin", "z/\u00e9\ud83d\ude00 #?'.bin"];
    // Metadata whose names the service orders in its own way ('_' before digits, '-' ignored).
    const metadata = { "a-b": "1", a_b: "2", ab: "3", a0: "4", "content-id": "<x@y>", z: " padded " };
    const sdkCalls = [
      vi.spyOn(BlockBlobClient.prototype, "stageBlock"),
      vi.spyOn(BlockBlobClient.prototype, "commitBlockList"),
      vi.spyOn(BlockBlobClient.prototype, "upload"),
    ];
    for (const [i, opts] of [emu.adapterOptions, { ...emu.adapterOptions, env: sasEnv }].entries()) {
      const a = await open(`${root}/blocks${i}`, opts);
      a.writeLimits = { bufferMax: 1000, streamPutMax: 200_000, blockSize: 150_000, blockConcurrency: 2 };
      for (const key of keys) {
        const info = src(key, whole.length, { mtime: 1_700_000_000_123, contentType: "application/x-test", cacheControl: "no-cache", metadata });
        const id = await a.multipart.startUpload(key, info, parts[0].length);
        // Parts sent out of order: the commit, not arrival, orders them.
        const done = [];
        for (const n of [2, 1]) done.push({ partNumber: n, etag: await a.multipart.uploadPart(key, id, n, parts[n - 1], md5(parts[n - 1])), size: parts[n - 1].length, checksum: md5(parts[n - 1]) });
        await a.multipart.completeUpload(key, id, done, info, md5(whole));
        expect((await readAll(await a.read(key))).equals(whole)).toBe(true);
        expect(await a.stat(key)).toMatchObject({ size: whole.length, md5: md5(whole), mtime: info.mtime, contentType: "application/x-test", cacheControl: "no-cache", metadata });
        // write()'s three paths: buffered Put Blob, streaming Put Blob, staged blocks.
        for (const size of [900, 100_000, 280_000]) {
          const body = whole.subarray(0, size);
          const w = await a.write(`${key}.${size}`, Readable.from([body]), { ...info, size });
          expect(w.md5).toBe(md5(body));
          expect((await readAll(await a.read(`${key}.${size}`))).equals(body)).toBe(true);
          expect((await a.stat(`${key}.${size}`)).metadata).toEqual(metadata);
        }
      }
      expect((await collect(a.list())).map((o) => o.key)).toEqual(keys.flatMap((k) => [k, `${k}.100000`, `${k}.280000`, `${k}.900`]).sort(compareKeys));
    }
    for (const spy of sdkCalls) {
      expect(spy).not.toHaveBeenCalled();
      spy.mockRestore();
    }
    // Azurite checks the signature: the same requests under another key are refused, secrets unsaid.
    const bad = await open(`${root}/blocks0`, { ...emu.adapterOptions, env: emu.badCredentialsEnv });
    const id = await bad.multipart.startUpload("x.bin", src("x.bin", 10), 10);
    const err = await caught(bad.multipart.uploadPart("x.bin", id, 1, parts[1], md5(parts[1])));
    expect(err).toMatchObject({ kind: "PermissionDenied", scope: "run" });
    expect(err.message).not.toContain(DEV_KEY);
    expect(err.message).toContain("x.bin part 1");
    const denied = await caught(bad.write("y.bin", Readable.from([parts[1]]), src("y.bin", parts[1].length)));
    expect(denied).toMatchObject({ kind: "PermissionDenied", scope: "run" });
  });

  it("addresses blobs as the SDK does, and signs as its shared key policy does", async () => {
    const conn = connect(loc(`${root}/urls`), emu.adapterOptions);
    try {
      const container = await conn.sdk();
      for (const name of ["urls/plain.txt", "urls/a b+c&d%25/1 2", "urls/%41%zz", "urls/é😀/'q'\"x\"", "urls/#?;=@:", "urls/[x]{y}|^`~!$*(),"]) {
        expect(conn.blobUrl(name)).toBe(container.getBlockBlobClient(name).url);
      }
    } finally {
      conn.close();
    }
    // The SDK's policy, with its protected signRequest opened up for the comparison.
    class OpenPolicy extends StorageSharedKeyCredentialPolicy {
      sign(r: WebResourceLike): WebResourceLike {
        return this.signRequest(r);
      }
    }
    const sdkKey = new StorageSharedKeyCredential(DEV_ACCOUNT, DEV_KEY);
    const noop = { sendRequest: () => Promise.reject(new Error("not sent")) };
    const policy = new OpenPolicy(noop, { log: () => undefined, shouldLog: () => false }, sdkKey);
    const url = new URL(`${emu.blobEndpoint}/c1/dir/a%20b.bin?comp=blocklist&timeout=30`);
    const headers: Record<string, string> = {
      "content-length": "120",
      "content-type": "application/xml; charset=utf-8",
      "x-ms-blob-content-md5": "1B2M2Y8AsgTpgAmY7PhCfg==",
      "x-ms-blob-content-type": "text/plain",
      "x-ms-meta-a_b": "1",
      "x-ms-meta-a0": "2",
      "x-ms-meta-ab": "3",
      "x-ms-meta-cmx_content_2did": "4",
      "x-ms-meta-mtime": "2024-01-01T00:00:00.000Z",
      "x-ms-version": API_VERSION,
    };
    const sent = new Map(Object.entries(headers));
    policy.sign({
      method: "PUT",
      url: url.toString(),
      headers: { get: (n: string) => sent.get(n.toLowerCase()), set: (n: string, v: string | number) => void sent.set(n.toLowerCase(), String(v)), headersArray: () => [...sent].map(([name, value]) => ({ name, value })) },
    } as unknown as WebResourceLike);
    const ours = sharedKeyAuthorization(new SharedKey(DEV_ACCOUNT, DEV_KEY), url, { ...headers, "x-ms-date": sent.get("x-ms-date")! }, "PUT");
    expect(ours).toBe(sent.get("authorization"));
    expect(headerNameLess("x-ms-meta-a_b", "x-ms-meta-a0")).toBe(true);
    expect(headerNameLess("x-ms-meta-ab", "x-ms-meta-a-c")).toBe(true);
  });

  it("works through a container SAS (connection string and https URL forms)", async () => {
    const sasUrl = new URL(await containerSasUrl(emu, root));
    const container = root.split("/").pop() as string;
    const env = { AZURE_STORAGE_CONNECTION_STRING: `BlobEndpoint=${emu.blobEndpoint};SharedAccessSignature=${sasUrl.search.slice(1)}` };
    const a = await open(`${root}/sas`, { env });
    await a.check("destination");
    await a.write("s.txt", Readable.from([Buffer.from("sas")]), src("s.txt", 3));
    expect((await collect(a.list())).map((o) => o.key)).toEqual(["s.txt"]);
    // The https form: SAS from the URL, endpoint from a credential-less connection string.
    const https = parseLocation(`https://devstoreaccount1.blob.core.windows.net/${container}/sas${sasUrl.search}`);
    const c = (await createAzureAdapter(https, { env: { AZURE_STORAGE_CONNECTION_STRING: `BlobEndpoint=${emu.blobEndpoint}` } })) as AzureAdapter;
    adapters.push(c);
    expect(c.display).not.toContain("sig=");
    expect((await readAll(await c.read("s.txt"))).toString()).toBe("sas");
  });
});
