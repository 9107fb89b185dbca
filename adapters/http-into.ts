/**
 * HTTP/1.1 GETs whose body the kernel writes straight into the caller's buffer (the `onread`
 * option of net and tls sockets): no Buffer per socket read, no HTTP parser, no copy. For the
 * ranged reads of multipart copies, where Node's http client costs more CPU than the rest of
 * the copy: 1 GiB read from MinIO in 16 MiB ranges, 4 at once, took 2.3-3.0 CPU-s through
 * http.request (chunks copied into the part buffer) and 0.45-0.6 CPU-s this way.
 *
 * Only what such a GET needs:
 * - a response with Content-Length; one without it, or chunked, is refused (DirectUnsupported:
 *   the caller uses its http client instead);
 * - a 2xx body longer than the target is refused (BodyTooLong) before any of it is read;
 * - a non-2xx answer's body (up to 64 KiB; none if it is chunked) comes back as text, for the
 *   caller's error mapping;
 * - sockets are kept alive and reused per origin; a kept-alive socket the server closed before
 *   answering is retried once on a new one; silence for `idleTimeoutMs` fails the request
 *   (ETIMEDOUT) and closes its socket.
 */
import net from "node:net";
import tls from "node:tls";

export interface Origin {
  protocol: "http:" | "https:";
  /** As in a URL: a name, an IPv4 address or a bracketed IPv6 one ("[::1]"). */
  hostname: string;
  port?: number;
  /** For https: the trust store to use (unset: Node's default). */
  secureContext?: tls.SecureContext;
}

export interface IntoResponse {
  status: number;
  /** Header names lower-case; repeated headers joined with ", ". */
  headers: Record<string, string>;
  /** 2xx: how many bytes were written into the target, from its start. */
  length: number;
  /** Non-2xx: the start of the body, as text. */
  errorBody?: string;
}

/** The server answered in a way this client does not read (chunked, no length, 1xx). */
export class DirectUnsupported extends Error {}

/** A 2xx body longer than the target. */
export class BodyTooLong extends Error {
  constructor(readonly announced: number, readonly room: number) {
    super(`the response announces ${announced} bytes, room for ${room}`);
  }
}

/**
 * Memory for a whole-object GET of at most `max` bytes: what the engine lends (`memory`) if it
 * is no bigger, else `max` bytes of our own.
 */
export function wholeReadTarget(max: number, memory?: () => Buffer): Buffer {
  const lent = memory?.();
  return lent && lent.length <= max ? lent : Buffer.allocUnsafeSlow(max);
}

const MAX_HEAD = 16 * 1024;
const MAX_ERROR_BODY = 64 * 1024;

/** Failed before any byte of the answer arrived, on a socket that had served before. */
class StaleSocket extends Error {}

interface Job {
  target: Buffer;
  /** Told the body bytes in `target` so far, as they land. */
  onBody?: (got: number) => void;
  /** Where the body goes: the target (2xx), an error buffer, or nothing yet (headers). */
  sink?: Buffer;
  got: number;
  want: number;
  status: number;
  headers: Record<string, string>;
  keepAlive: boolean;
  resolve(r: IntoResponse): void;
  reject(e: Error): void;
}

class Conn {
  readonly socket: net.Socket;
  private job?: Job;
  /** Whether a response was read whole on this socket before. */
  served = false;
  /**
   * Where response headers are read to. A read's memory is chosen before the read (at the
   * start, then after each read), so this is also where reads land between requests: the
   * first bytes of the next answer.
   */
  private readonly head = Buffer.allocUnsafe(MAX_HEAD);
  private headLen = 0;

  constructor(origin: Origin, idleTimeoutMs: number, private readonly onIdle: (c: Conn) => void, private readonly onGone: (c: Conn) => void) {
    const onread: net.OnReadOpts = { buffer: () => this.room(), callback: (n: number) => this.onRead(n) };
    const port = origin.port ?? (origin.protocol === "https:" ? 443 : 80);
    // URL hostnames keep IPv6 literals in brackets ("[::1]"); sockets take the bare address.
    const host = origin.hostname.replace(/^\[(.*)\]$/, "$1");
    // tls.connect documents `onread` (as net's); @types/node leaves it out of ConnectionOptions.
    const tlsOptions: tls.ConnectionOptions & { onread: net.OnReadOpts } = {
      host,
      port,
      servername: net.isIP(host) ? undefined : host,
      secureContext: origin.secureContext,
      ALPNProtocols: ["http/1.1"],
      onread,
    };
    this.socket = origin.protocol === "https:" ? tls.connect(tlsOptions) : net.connect({ host, port, onread });
    this.socket.setNoDelay(true);
    this.socket.setTimeout(idleTimeoutMs, () => {
      this.socket.destroy(Object.assign(new Error(`no data for ${idleTimeoutMs} ms`), { code: "ETIMEDOUT" }));
    });
    this.socket.on("error", (e) => this.end(e));
    this.socket.on("close", () => this.end(Object.assign(new Error("the server closed the connection"), { code: "ECONNRESET" })));
  }

  /** Send one GET and read its answer. */
  run(path: string, headers: Record<string, string>, target: Buffer, onBody?: (got: number) => void): Promise<IntoResponse> {
    return new Promise((resolve, reject) => {
      this.job = { target, onBody, got: 0, want: 0, status: 0, headers: {}, keepAlive: false, resolve, reject };
      this.socket.ref();
      let text = `GET ${path} HTTP/1.1\r\n`;
      for (const [k, v] of Object.entries(headers)) text += `${k}: ${v}\r\n`;
      this.socket.write(text + "\r\n");
    });
  }

  /** The memory the next socket read goes to: never empty. */
  private room(): Buffer {
    const j = this.job;
    return j?.sink ? j.sink.subarray(j.got, j.want) : this.head.subarray(this.headLen);
  }

  /** Always true: reading goes on (a socket to drop is destroyed instead). */
  private onRead(n: number): boolean {
    this.read(n);
    return true;
  }

  private read(n: number): void {
    const j = this.job;
    if (!j) {
      this.socket.destroy(new Error("data from the server with no request in flight"));
      return;
    }
    if (j.sink) {
      j.got += n;
      if (j.sink === j.target) j.onBody?.(j.got);
    } else {
      this.headLen += n;
      const at = this.head.subarray(0, this.headLen).indexOf("\r\n\r\n");
      if (at < 0) {
        if (this.headLen === MAX_HEAD) this.fail(new DirectUnsupported(`response headers over ${MAX_HEAD} bytes`));
        return;
      }
      try {
        this.startBody(j, at);
      } catch (err) {
        this.fail(err as Error);
        return;
      }
    }
    if (j.got >= j.want) this.finish(j);
  }

  /** Headers are in: parse them and point reads at the body's home. */
  private startBody(j: Job, at: number): void {
    const lines = this.head.toString("latin1", 0, at).split("\r\n");
    const m = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0]);
    if (!m) throw new DirectUnsupported(`not an HTTP/1.x answer: ${JSON.stringify(lines[0].slice(0, 80))}`);
    j.status = Number(m[2]);
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      j.headers[name] = name in j.headers ? `${j.headers[name]}, ${value}` : value;
    }
    const connection = (j.headers.connection ?? "").toLowerCase();
    j.keepAlive = m[1] === "1" ? !connection.includes("close") : connection.includes("keep-alive");
    const te = j.headers["transfer-encoding"];
    const cl = j.headers["content-length"];
    const ok = j.status >= 200 && j.status < 300;
    const plain = /^\d+$/.test(cl ?? "") && (te === undefined || te.toLowerCase() === "identity");
    if (j.status < 200 || (ok && !plain)) throw new DirectUnsupported(`answer ${j.status} without a plain Content-Length`);
    // A refusal without a plain length is answered by its status alone; its socket is dropped.
    const length = plain ? Number(cl) : 0;
    if (ok && length > j.target.length) throw new BodyTooLong(length, j.target.length);
    if (!ok && (!plain || length > MAX_ERROR_BODY)) j.keepAlive = false;
    j.sink = ok ? j.target : Buffer.alloc(Math.min(length, MAX_ERROR_BODY));
    j.want = j.sink.length === 0 ? 0 : ok ? length : j.sink.length;
    // Body bytes that came with the headers.
    const early = this.head.subarray(at + 4, this.headLen);
    this.headLen = 0;
    if (plain && early.length > j.want) throw new DirectUnsupported(`${early.length - j.want} bytes beyond the announced body`);
    j.got = early.copy(j.sink, 0, 0, Math.min(early.length, j.want));
  }

  private finish(j: Job): void {
    this.job = undefined;
    const ok = j.status >= 200 && j.status < 300;
    const res: IntoResponse = { status: j.status, headers: j.headers, length: ok ? j.got : 0 };
    if (!ok) res.errorBody = j.sink!.toString("utf8", 0, j.got);
    // An error body cut short leaves the rest of it on the wire: that socket cannot serve again.
    const reusable = j.keepAlive && (ok || j.got === Number(j.headers["content-length"]));
    if (reusable) {
      this.served = true;
      this.socket.unref();
      this.onIdle(this);
    } else {
      this.socket.destroy();
    }
    j.resolve(res);
  }

  private fail(err: Error): void {
    this.socket.destroy(err);
  }

  /** The socket is gone: fail the request in flight, if any. */
  private end(err: Error): void {
    this.onGone(this);
    const j = this.job;
    if (!j) return;
    this.job = undefined;
    const nothingYet = !j.sink && this.headLen === 0;
    j.reject(this.served && nothingYet && !(err instanceof DirectUnsupported) ? new StaleSocket(err.message, { cause: err }) : err);
  }
}

export class DirectGet {
  private readonly idle = new Map<string, Conn[]>();

  constructor(private readonly idleTimeoutMs: number) {}

  /**
   * GET `path` (headers as given, "host" among them) with the body written into `target`;
   * `onBody` is told, after each socket read of the body, how many body bytes are in `target`
   * (those that came with the headers included).
   */
  async get(origin: Origin, path: string, headers: Record<string, string>, target: Buffer, onBody?: (got: number) => void): Promise<IntoResponse> {
    const key = `${origin.protocol}//${origin.hostname}:${origin.port ?? ""}`;
    for (let fresh = false; ; fresh = true) {
      const conn = (!fresh && this.takeIdle(key)) || this.open(origin, key);
      try {
        return await conn.run(path, headers, target, onBody);
      } catch (err) {
        if (err instanceof StaleSocket && !fresh) continue;
        throw err instanceof StaleSocket ? (err.cause as Error) : err;
      }
    }
  }

  /** GET `url` (its host added to `headers`, Node's default trust store) with the body written into `target`. */
  getUrl(url: URL, headers: Record<string, string>, target: Buffer, onBody?: (got: number) => void): Promise<IntoResponse> {
    const origin: Origin = { protocol: url.protocol === "https:" ? "https:" : "http:", hostname: url.hostname, port: url.port ? Number(url.port) : undefined };
    return this.get(origin, url.pathname + url.search, { ...headers, host: url.host }, target, onBody);
  }

  /** A kept-alive socket of this origin that is still open, if any. */
  private takeIdle(key: string): Conn | undefined {
    const list = this.idle.get(key);
    for (let c = list?.pop(); c; c = list!.pop()) if (!c.socket.destroyed) return c;
    return undefined;
  }

  /** Close the kept-alive sockets. */
  close(): void {
    for (const list of this.idle.values()) for (const c of list) c.socket.destroy();
    this.idle.clear();
  }

  private open(origin: Origin, key: string): Conn {
    const idle = (c: Conn) => {
      const list = this.idle.get(key) ?? [];
      list.push(c);
      this.idle.set(key, list);
    };
    const gone = (c: Conn) => {
      const list = this.idle.get(key);
      const i = list?.indexOf(c) ?? -1;
      if (i >= 0) list!.splice(i, 1);
    };
    return new Conn(origin, this.idleTimeoutMs, idle, gone);
  }
}
