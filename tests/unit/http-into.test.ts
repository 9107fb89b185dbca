/**
 * The socket-level GET of adapters/http-into.ts against real servers on loopback: a node:http
 * server for well-formed answers, and a raw TCP server where the test decides how the bytes
 * are cut into writes.
 */
import crypto from "node:crypto";
import http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { BodyTooLong, DirectGet, DirectUnsupported, type Origin } from "../../adapters/http-into.js";
import { Md5Feed } from "../../src/hash-thread.js";

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

/** A node:http server on loopback; counts the connections it accepted. */
async function httpServer(handler: http.RequestListener): Promise<{ origin: Origin; connections: () => number }> {
  const server = http.createServer({ keepAliveTimeout: 10_000 }, handler);
  let connections = 0;
  server.on("connection", () => connections++);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  closers.push(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
  return { origin: { protocol: "http:", hostname: "127.0.0.1", port: (server.address() as AddressInfo).port }, connections: () => connections };
}

/** A TCP server that answers every request with `reply(socket)`. */
async function rawServer(reply: (s: net.Socket) => void): Promise<Origin> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("error", () => undefined);
    s.once("data", () => reply(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  closers.push(() => new Promise<void>((r) => (sockets.forEach((s) => s.destroy()), server.close(() => r()))));
  return { protocol: "http:", hostname: "127.0.0.1", port: (server.address() as AddressInfo).port };
}

const host = (o: Origin) => ({ host: `${o.hostname}:${o.port}` });

/** Serves `data` with Range support, as S3 does for a ranged GET. */
function rangeServer(data: Buffer): http.RequestListener {
  return (req, res) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
    if (!m) return res.writeHead(400).end("no range");
    const [start, end] = [Number(m[1]), Math.min(Number(m[2]), data.length - 1)];
    res.writeHead(206, { "content-length": end - start + 1, "content-range": `bytes ${start}-${end}/${data.length}` });
    res.end(data.subarray(start, end + 1));
  };
}

describe("DirectGet", () => {
  it("tells onBody the body bytes in so far, and an Md5Feed hashes shared memory in pieces as they land", async () => {
    const data = crypto.randomBytes(5 * 1024 * 1024 + 123);
    const { origin } = await httpServer((_req, res) => {
      res.writeHead(200, { "content-length": data.length });
      // In writes some time apart, so the body arrives over many socket reads.
      let at = 0;
      const next = () => {
        const piece = data.subarray(at, (at += 256 * 1024));
        if (at >= data.length) res.end(piece);
        else res.write(piece, () => setTimeout(next, 2));
      };
      next();
    });
    const get = new DirectGet(5_000);
    closers.push(async () => get.close());
    const md5 = crypto.createHash("md5").update(data).digest("hex");
    for (const shared of [true, false]) {
      const target = shared ? Buffer.from(new SharedArrayBuffer(6 * 1024 * 1024)) : Buffer.alloc(6 * 1024 * 1024);
      const feed = new Md5Feed(target);
      const told: number[] = [];
      const res = await get.get(origin, "/obj", host(origin), target, (n) => (told.push(n), feed.filled(n)));
      expect(res.length).toBe(data.length);
      expect(told.length).toBeGreaterThan(5);
      expect(told.every((n, i) => i === 0 || n > told[i - 1])).toBe(true);
      expect(told.at(-1)).toBe(data.length);
      // Shared memory went to the hashing thread while the read went on; other memory waits for digest.
      if (shared) expect(feed.hashedAhead).toBeGreaterThanOrEqual(4 * 1024 * 1024);
      else expect(feed.hashedAhead).toBe(0);
      expect(await feed.digest(res.length)).toBe(md5);
    }
  });

  it("writes each range's bytes into the target and keeps one socket for requests in turn", async () => {
    const data = crypto.randomBytes(3 * 1024 * 1024 + 17);
    const { origin, connections } = await httpServer(rangeServer(data));
    const get = new DirectGet(5_000);
    closers.push(async () => get.close());
    const part = 1024 * 1024;
    for (let start = 0; start < data.length; start += part) {
      const target = Buffer.alloc(part);
      const res = await get.get(origin, "/obj", { ...host(origin), range: `bytes=${start}-${start + part - 1}` }, target);
      expect(res.status).toBe(206);
      expect(res.length).toBe(Math.min(part, data.length - start));
      expect(target.subarray(0, res.length).equals(data.subarray(start, start + res.length))).toBe(true);
    }
    expect(connections()).toBe(1);
  });

  it("reaches a server at a bracketed IPv6 address, as URLs write them", async (ctx) => {
    const data = crypto.randomBytes(5000);
    const server = http.createServer(rangeServer(data));
    const listening = await new Promise<boolean>((r) => server.once("error", () => r(false)).listen(0, "::1", () => r(true)));
    if (!listening) ctx.skip("no IPv6 loopback here");
    closers.push(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
    const origin: Origin = { protocol: "http:", hostname: "[::1]", port: (server.address() as AddressInfo).port };
    const get = new DirectGet(5_000);
    closers.push(async () => get.close());
    const target = Buffer.alloc(data.length);
    const res = await get.get(origin, "/obj", { host: `[::1]:${origin.port}`, range: `bytes=0-${data.length - 1}` }, target);
    expect(res.length).toBe(data.length);
    expect(target.equals(data)).toBe(true);
  });

  it("reads into memory shared with worker threads, as part buffers are", async () => {
    const data = crypto.randomBytes(256 * 1024);
    const { origin } = await httpServer(rangeServer(data));
    const get = new DirectGet(5_000);
    closers.push(async () => get.close());
    const target = Buffer.from(new SharedArrayBuffer(data.length));
    const res = await get.get(origin, "/obj", { ...host(origin), range: `bytes=0-${data.length - 1}` }, target);
    expect(res.length).toBe(data.length);
    expect(target.equals(data)).toBe(true);
  });

  it("sends a request again on a new socket when the server closed the kept-alive one", async () => {
    const data = crypto.randomBytes(64 * 1024);
    let served = 0;
    const { origin, connections } = await httpServer((req, res) => {
      served++;
      rangeServer(data)(req, res);
      // Keep-alive announced, then the socket is dropped once the answer is out.
      res.on("finish", () => setTimeout(() => req.socket.destroy(), 20));
    });
    const get = new DirectGet(5_000);
    closers.push(async () => get.close());
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 60));
      const target = Buffer.alloc(data.length);
      const res = await get.get(origin, "/obj", { ...host(origin), range: `bytes=0-${data.length - 1}` }, target);
      expect(target.equals(data)).toBe(true);
      expect(res.status).toBe(206);
    }
    expect(served).toBe(3);
    expect(connections()).toBe(3);
  });

  it("gives back a non-2xx answer's status and body, and the socket serves the next request", async () => {
    const data = crypto.randomBytes(1000);
    let n = 0;
    const { origin, connections } = await httpServer((req, res) => {
      const xml = "<Error><Code>NoSuchKey</Code></Error>";
      if (n++ === 0) return res.writeHead(404, { "content-type": "application/xml", "content-length": xml.length }).end(xml);
      rangeServer(data)(req, res);
    });
    const get = new DirectGet(5_000);
    closers.push(async () => get.close());
    const target = Buffer.alloc(data.length);
    const missing = await get.get(origin, "/obj", { ...host(origin), range: "bytes=0-999" }, target);
    expect(missing).toMatchObject({ status: 404, length: 0, errorBody: "<Error><Code>NoSuchKey</Code></Error>" });
    const found = await get.get(origin, "/obj", { ...host(origin), range: "bytes=0-999" }, target);
    expect(found.length).toBe(1000);
    expect(target.equals(data)).toBe(true);
    expect(connections()).toBe(1);
  });

  it("answers a chunked refusal by its status alone, on a socket it then drops", async () => {
    const { origin, connections } = await httpServer((req, res) => {
      res.writeHead(403);
      res.write("<Error><Code>AccessDenied</Code>");
      res.end("</Error>");
    });
    const get = new DirectGet(5_000);
    closers.push(async () => get.close());
    for (let i = 0; i < 2; i++) expect(await get.get(origin, "/obj", host(origin), Buffer.alloc(10))).toMatchObject({ status: 403, length: 0, errorBody: "" });
    expect(connections()).toBe(2);
  });

  it("refuses a chunked answer, and a body longer than the target before reading it", async () => {
    const { origin } = await httpServer((req, res) => {
      if (req.url === "/chunked") {
        res.write("part one,");
        return res.end("part two");
      }
      res.writeHead(200, { "content-length": 2048 }).end(Buffer.alloc(2048));
    });
    const get = new DirectGet(5_000);
    closers.push(async () => get.close());
    await expect(get.get(origin, "/chunked", host(origin), Buffer.alloc(100))).rejects.toBeInstanceOf(DirectUnsupported);
    const tooLong = get.get(origin, "/whole", host(origin), Buffer.alloc(1024));
    await expect(tooLong).rejects.toBeInstanceOf(BodyTooLong);
    await expect(tooLong).rejects.toMatchObject({ announced: 2048, room: 1024 });
  });

  it("reads an answer cut anywhere: headers split across writes, body bytes sent with the headers", async () => {
    const body = crypto.randomBytes(70_000);
    const answer = Buffer.concat([Buffer.from(`HTTP/1.1 206 Partial Content\r\nContent-Length: ${body.length}\r\nX-Two: a\r\nx-two: b\r\n\r\n`), body]);
    const cuts = [5, 17, 40, 75, 90, 3000, 65_000];
    const origin = await rawServer((s) => {
      let from = 0;
      const next = (i: number) => {
        if (from >= answer.length) return;
        const to = i < cuts.length ? cuts[i] : answer.length;
        s.write(answer.subarray(from, to));
        from = to;
        setTimeout(() => next(i + 1), 5);
      };
      next(0);
    });
    const get = new DirectGet(5_000);
    closers.push(async () => get.close());
    const target = Buffer.alloc(body.length);
    const res = await get.get(origin, "/obj", host(origin), target);
    expect(res).toMatchObject({ status: 206, length: body.length });
    expect(res.headers["x-two"]).toBe("a, b");
    expect(target.equals(body)).toBe(true);
  });

  it("fails a request the server never answers after the idle timeout, with ETIMEDOUT", async () => {
    const origin = await rawServer(() => undefined);
    const get = new DirectGet(200);
    closers.push(async () => get.close());
    await expect(get.get(origin, "/obj", host(origin), Buffer.alloc(10))).rejects.toMatchObject({ code: "ETIMEDOUT" });
  });

  it("fails a body cut short by the server, and the next request gets a new socket", async () => {
    let n = 0;
    const origin = await rawServer((s) => {
      if (n++ === 0) {
        s.end("HTTP/1.1 206 Partial Content\r\nContent-Length: 100\r\n\r\nonly this");
        return;
      }
      s.write("HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\n\r\nhello");
    });
    const get = new DirectGet(5_000);
    closers.push(async () => get.close());
    await expect(get.get(origin, "/obj", host(origin), Buffer.alloc(100))).rejects.toMatchObject({ code: "ECONNRESET" });
    const target = Buffer.alloc(5);
    expect((await get.get(origin, "/obj", host(origin), target)).length).toBe(5);
    expect(target.toString()).toBe("hello");
  });
});
