/**
 * The worker-thread pools: filesystem calls and hashing off the main thread. Real files, real
 * threads (the built worker modules in dist/, as in production).
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { Worker } from "node:worker_threads";
import { describe, expect, it, vi } from "vitest";
import { WorkerPool, workerScript } from "../../src/worker-pool.js";
import { Md5Batch, md5Continue, md5Finish, md5Of, type HashReply, type HashRequest } from "../../src/hash-thread.js";
import { BufferPool } from "../../src/memory.js";
import type { DirEntry, SmallRead } from "../../adapters/fs-worker.js";
import { tempDir } from "../helpers/cli.js";
import { seededBytes } from "../helpers/streams.js";

const fsWorker = workerScript(new URL("../../adapters/fs.ts", import.meta.url).href, "fs-worker");

describe("WorkerPool with the filesystem worker", () => {
  it("answers many concurrent calls, each with its own result", async () => {
    const dir = tempDir("pool");
    const pool = new WorkerPool(fsWorker, 2);
    try {
      const files = Array.from({ length: 500 }, (_, i) => ({ name: `f${i}`, data: seededBytes(1 + (i % 7) * 100, i) }));
      await Promise.all(files.map((f) => pool.call("writeSmall", path.join(dir, "sub", `.tmp-${f.name}`), path.join(dir, "sub", f.name), f.data, 1_600_000_000_123)));
      const reads = await Promise.all(files.map((f) => pool.call<SmallRead>("readSmall", path.join(dir, "sub", f.name), 1 << 20)));
      reads.forEach((r, i) => {
        expect("buf" in r).toBe(true);
        if ("buf" in r) expect(Buffer.from(r.buf).equals(files[i].data)).toBe(true);
      });
      const listed = await pool.call<DirEntry[]>("listDir", path.join(dir, "sub"), ".tmp-");
      expect(listed.length).toBe(500);
      // Seconds as a double lose a little: within the 1 ms the adapter promises.
      expect(listed.every((e) => !e.dir && Math.abs(e.mtimeMs - 1_600_000_000_123) < 1)).toBe(true);
      expect(fs.readdirSync(path.join(dir, "sub")).filter((n) => n.startsWith(".tmp-"))).toEqual([]); // none left behind
    } finally {
      await pool.close();
    }
  });

  it("keeps the errno code of a failed call, and the pool goes on", async () => {
    const pool = new WorkerPool(fsWorker, 1);
    try {
      const err = (await pool.call("readSmall", "/nonexistent/x", 10).catch((e: unknown) => e)) as NodeJS.ErrnoException;
      expect(err).toBeInstanceOf(Error);
      expect(err.code).toBe("ENOENT");
      expect(err.syscall).toBe("open");
      const big = await pool.call<SmallRead>("readSmall", process.execPath, 10);
      expect(big).toEqual({ big: true });
    } finally {
      await pool.close();
    }
  });

  it("an idle pool does not keep the process alive", () => {
    const script = `
      import { WorkerPool } from ${JSON.stringify(new URL("../../dist/src/worker-pool.js", import.meta.url).href)};
      const pool = new WorkerPool(${JSON.stringify(fsWorker)}, 2);
      const entries = await pool.call("listDir", ${JSON.stringify(path.dirname(fsWorker))}, ".x");
      console.log(entries.length > 0 ? "listed" : "empty");`;
    const file = path.join(tempDir("pool-exit"), "idle.mjs");
    fs.writeFileSync(file, script);
    const run = spawnSync(process.execPath, [file], { encoding: "utf8", timeout: 15_000 });
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    expect(run.stdout.trim()).toBe("listed");
  });
});

describe("WorkerPool batching", () => {
  it("short calls made together travel together; long calls (callAlone) spread over the threads", async () => {
    // A worker that answers with its thread id.
    const file = path.join(tempDir("pool-batch"), "who.mjs");
    fs.writeFileSync(
      file,
      `import { threadId } from "node:worker_threads";
       import { serve } from ${JSON.stringify(new URL("../../dist/src/worker-pool.js", import.meta.url).href)};
       serve({ who: () => ({ value: threadId }) });`,
    );
    const pool = new WorkerPool(file, 3);
    try {
      const short = await Promise.all(Array.from({ length: 4 }, () => pool.call<number>("who")));
      expect(new Set(short).size).toBe(1); // one message to one thread
      const long = await Promise.all(Array.from({ length: 3 }, () => pool.callAlone<number>("who")));
      expect(new Set(long).size).toBe(3); // one thread each
    } finally {
      await pool.close();
    }
  });
});

describe("WorkerPool ordering and affinity", () => {
  /** A worker whose `work(ms, tag)` blocks its thread for `ms`, then says which thread ran it, and when (in its order of calls). */
  function slowWorker(): string {
    const file = path.join(tempDir("pool-slow"), "slow.mjs");
    fs.writeFileSync(
      file,
      `import { threadId } from "node:worker_threads";
       import { serve } from ${JSON.stringify(new URL("../../dist/src/worker-pool.js", import.meta.url).href)};
       const cell = new Int32Array(new SharedArrayBuffer(4));
       let n = 0;
       serve({ work: (ms, tag) => { Atomics.wait(cell, 0, 0, ms); return { value: { tag, thread: threadId, n: ++n } }; } });`,
    );
    return file;
  }
  type Done = { tag: string; thread: number; n: number };

  it("calls with the same affinity run on one thread, one after another; other affinities use other threads", async () => {
    const pool = new WorkerPool(slowWorker(), 3);
    try {
      const calls: Promise<Done>[] = [];
      for (let i = 0; i < 4; i++) for (const folder of ["a/", "b/"]) calls.push(pool.callPinned<Done>(folder, "work", 20, folder));
      const done = await Promise.all(calls);
      const threadsOf = (folder: string) => new Set(done.filter((d) => d.tag === folder).map((d) => d.thread));
      expect(threadsOf("a/").size).toBe(1);
      expect(threadsOf("b/").size).toBe(1);
      expect([...threadsOf("a/")][0]).not.toBe([...threadsOf("b/")][0]);
    } finally {
      await pool.close();
    }
  });

  it("callFirst goes ahead of calls still queued", async () => {
    const pool = new WorkerPool(slowWorker(), 1);
    try {
      // One thread takes two batches; the third call waits in the queue.
      const queued = ["q1", "q2", "q3"].map((tag) => pool.callAlone<Done>("work", 30, tag));
      await new Promise((r) => setImmediate(r)); // the first two are sent
      const first = pool.callFirst<Done>("work", 1, "first");
      const later = pool.callAlone<Done>("work", 1, "q4");
      const order = (await Promise.all([...queued, first, later])).sort((x, y) => x.n - y.n).map((d) => d.tag);
      expect(order).toEqual(["q1", "q2", "first", "q3", "q4"]);
    } finally {
      await pool.close();
    }
  });
});

describe("hashing thread", () => {
  it("md5Of hashes in place while the thread loads, then on the thread: OpenSSL's MD5 either way", async () => {
    vi.resetModules(); // a module of its own: its thread not started yet
    const fresh = await import("../../src/hash-thread.js");
    const buf = new BufferPool(0).take(2 * 1024 * 1024);
    seededBytes(buf.length, 9).copy(buf);
    const want = crypto.createHash("md5").update(buf).digest("hex");
    expect(fresh.hashThreadReady()).toBe(false);
    expect(await fresh.md5Of(buf)).toBe(want);
    for (const deadline = Date.now() + 10_000; !fresh.hashThreadReady(); await new Promise((r) => setTimeout(r, 10))) {
      if (Date.now() > deadline) throw new Error("the hashing thread never said it was ready");
    }
    expect(await fresh.md5Of(buf)).toBe(want);
  });

  it("part MD5s and the whole-object MD5 chained part by part match a one-pass MD5", async () => {
    const data = seededBytes(3 * 1024 * 1024 + 17, 4);
    const pool = new BufferPool(0);
    const parts = [0, 1, 2, 3].map((i) => {
      const slice = data.subarray(i * 1024 * 1024, (i + 1) * 1024 * 1024);
      const shared = pool.take(slice.length);
      slice.copy(shared);
      return shared;
    });
    expect(parts[0].buffer).toBeInstanceOf(SharedArrayBuffer);
    const partMd5s = await Promise.all(parts.map((p) => md5Of(p)));
    expect(partMd5s).toEqual(parts.map((p) => crypto.createHash("md5").update(p).digest("hex")));
    let state: Uint8Array | undefined;
    for (const p of parts.slice(0, 2)) state = await md5Continue(state, p);
    // A saved state (as the checkpoint keeps it) continues where it stopped.
    const saved = Uint8Array.from(state!);
    for (const p of parts.slice(2)) state = await md5Continue(state, p);
    const whole = crypto.createHash("md5").update(data).digest("hex");
    expect(await md5Finish(state)).toBe(whole);
    let resumed: Uint8Array | undefined = saved;
    for (const p of parts.slice(2)) resumed = await md5Continue(resumed, p);
    expect(await md5Finish(resumed)).toBe(whole);
  });

  it("the hashing thread hashes a fed stream piece by piece, and refuses an end whose earlier pieces it never saw", async () => {
    const worker = new Worker(workerScript(new URL("../../src/hash-thread.ts", import.meta.url).href, "hash-worker"));
    const replies = new Map<number, HashReply>();
    worker.on("message", (r: HashReply) => {
      if (!("ready" in r)) replies.set(r.seq, r);
    });
    const reply = async (seq: number) => {
      while (!replies.has(seq)) await new Promise((r) => setTimeout(r, 5));
      return replies.get(seq)!;
    };
    try {
      const data = seededBytes(3 * 1024 * 1024 + 5, 6);
      const send = (m: HashRequest) => worker.postMessage(m);
      send({ op: "feed", stream: 1, from: 0, data: data.subarray(0, 1024 * 1024) });
      send({ op: "feed", stream: 1, from: 1024 * 1024, data: data.subarray(1024 * 1024, 2 * 1024 * 1024) });
      send({ op: "end", stream: 1, from: 2 * 1024 * 1024, data: data.subarray(2 * 1024 * 1024), seq: 1 });
      expect(await reply(1)).toEqual({ seq: 1, ok: true, value: crypto.createHash("md5").update(data).digest("hex") });
      // As after a restart: the thread never got this stream's first MiB.
      send({ op: "end", stream: 2, from: 1024 * 1024, data: data.subarray(1024 * 1024), seq: 2 });
      expect(await reply(2)).toMatchObject({ seq: 2, ok: false, error: { message: expect.stringMatching(/hashing thread restarted/) } });
    } finally {
      await worker.terminate();
    }
  });

  it("Md5Batch: MD5s wait until one of them is taken or four wait; a dropped one is never hashed", async () => {
    const openssl = (b: Buffer) => crypto.createHash("md5").update(b).digest("hex");
    const pool = new BufferPool(0);
    const parts = Array.from({ length: 10 }, (_, i) => {
      const b = pool.take(512 * 1024 + i * 4099);
      seededBytes(b.length, 30 + i).copy(b);
      return b;
    });
    const settledSoon = async (p: Promise<unknown>) => {
      let done = false;
      void p.then(() => (done = true), () => (done = true));
      await new Promise((r) => setTimeout(r, 100));
      return done;
    };
    const batch = new Md5Batch(4);
    // Even the first waits: nothing is sent until one is wanted.
    const a = batch.add(parts[0]);
    expect(await settledSoon(a.result)).toBe(false);
    const [b, c] = [batch.add(parts[1]), batch.add(parts[2])];
    expect(await settledSoon(b.result)).toBe(false);
    // Taking one sends all three waiting.
    expect(await c.take()).toBe(openssl(parts[2]));
    expect(await a.result).toBe(openssl(parts[0]));
    expect(await b.result).toBe(openssl(parts[1]));
    // Four waiting go unasked; three do not, though every MD5 sent has been taken.
    for (const h of [a, b]) await h.take();
    const three = parts.slice(3, 6).map((p) => batch.add(p));
    expect(await settledSoon(three[0].result)).toBe(false);
    const fourth = batch.add(parts[6]);
    expect(await Promise.all([...three, fourth].map((h) => h.result))).toEqual(parts.slice(3, 7).map(openssl));
    // Taking one already sent sends nothing else.
    const waits = batch.add(parts[7]);
    expect(await three[1].take()).toBe(openssl(parts[4]));
    expect(await settledSoon(waits.result)).toBe(false);
    // Dropped while waiting: its result rejects and it is never hashed; the others still go.
    const dropped = batch.add(parts[8]);
    dropped.drop();
    await expect(dropped.result).rejects.toThrow(/dropped/);
    expect(await waits.take()).toBe(openssl(parts[7]));
    // Small buffers are hashed in place, at once.
    const small = Buffer.from("abc");
    expect(await batch.add(small).result).toBe(openssl(small));
    // A batch of one goes as soon as it is asked (a part read ahead of one upload slot).
    const single = new Md5Batch(1).add(parts[9]);
    expect(await settledSoon(single.result)).toBe(true);
    expect(await single.result).toBe(openssl(parts[9]));
  });

  it("BufferPool hands back a returned buffer of the same size, within its cap", () => {
    const pool = new BufferPool(2048);
    const a = pool.take(1024);
    pool.give(a);
    expect(pool.take(1024)).toBe(a);
    const big = pool.take(4096);
    pool.give(big);
    expect(pool.take(4096)).not.toBe(big); // over the cap: not kept
  });
});
