/**
 * The end-to-end matrix: one fixture tree (1,500+ objects: nested folders, zero-byte, unicode
 * and odd names, one 20 MiB object sent in parts) migrated along every ordered pair of
 * {filesystem, S3, GCS, Azure}, each service also to itself in another bucket. After each run:
 * `migrate diff` finds no differences, every object's bytes compare equal, and metadata survived
 * wherever both sides can hold it.
 */
import fs from "node:fs";
import path from "node:path";
import pLimit from "p-limit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAdapter, parseLocation } from "../../adapters/index.js";
import type { Adapter } from "../../adapters/types.js";
import { runCli, summaryOf, tempDir } from "../helpers/cli.js";
import { bodyOf, collect, md5, readAll, seededBytes } from "../helpers/streams.js";
import { startServices, type Services } from "../emulators/all.js";
import { readReportRows } from "../../src/report.js";

type Kind = "fs" | "s3" | "gs" | "az";
const KINDS: Kind[] = ["fs", "s3", "gs", "az"];
const BIG = 20 * 1024 * 1024;
const RUN_FLAGS = ["--concurrency", "32", "--multipart-threshold", "8M", "--part-size", "5M", "--json"];

/** Names that every one of the four services can hold. */
const ODD = ["with space.txt", "caf\u00e9.txt", "cafe\u0301.txt", "日本語/ファイル.txt", "emoji 🚀.bin", "100% done.txt", "a+b=c&d.txt", "hash#tag?.txt", "at@colon:.txt", ".hidden", "x.y.z"];

function makeFixture(root: string): number {
  let n = 0;
  const put = (rel: string, data: Buffer) => {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, data);
    n++;
  };
  for (const name of ODD) put(`odd/${name}`, Buffer.from(`odd ${name}`));
  put("zero/empty.bin", Buffer.alloc(0));
  put("zero/deep/also-empty", Buffer.alloc(0));
  put("big/twenty-mib.bin", seededBytes(BIG, 42));
  for (let i = 0; n < 1_520; i++) put(`tree/${i % 10}/${(i * 7) % 13}/obj-${i}.dat`, seededBytes(i % 3 === 0 ? 0 : 64 + ((i * 131) % 4000), i));
  return n;
}

let services: Services;
let base: string;
let fixture: string;
let count = 0;
/** Where each service's copy of the fixture lives once fs → that service has run. */
const sources = new Map<Kind, string>();

async function freshLocation(kind: Kind): Promise<string> {
  if (kind === "fs") return tempDir("matrix-dst");
  const emu = services[kind]!;
  return `${await emu.createBucket()}/data`;
}

async function open(url: string): Promise<Adapter> {
  return createAdapter(parseLocation(url), { env: { ...process.env, ...services.env } });
}

/** Every key on both sides, and each object's bytes compared by MD5 of what each side returns. */
async function expectSameObjects(srcUrl: string, dstUrl: string): Promise<void> {
  const [src, dst] = await Promise.all([open(srcUrl), open(dstUrl)]);
  const [a, b] = await Promise.all([collect(src.list()), collect(dst.list())]);
  expect(b.map((o) => o.key)).toEqual(a.map((o) => o.key));
  expect(b.map((o) => o.size)).toEqual(a.map((o) => o.size));
  const limit = pLimit(24);
  const mismatches: string[] = [];
  await Promise.all(
    a.map((o) =>
      limit(async () => {
        const [x, y] = await Promise.all([readAll(await src.read(o.key)), readAll(await dst.read(o.key))]);
        if (md5(x) !== md5(y) || x.length !== o.size) mismatches.push(o.key);
      }),
    ),
  );
  expect(mismatches).toEqual([]);
  await Promise.all([src.close?.(), dst.close?.()]);
}

const needs = (k: Kind) => k === "fs" || services[k] !== undefined;

beforeAll(async () => {
  services = await startServices();
  base = tempDir("matrix");
  fixture = path.join(base, "fixture");
  count = makeFixture(fixture);
  sources.set("fs", fixture);
}, 180_000);

afterAll(async () => {
  await services?.stop();
  if (base) fs.rmSync(base, { recursive: true, force: true });
});

describe.sequential("every ordered pair of services", () => {
  // fs → X first: those copies are the sources of the X → Y runs.
  const pairs: [Kind, Kind][] = [];
  for (const to of KINDS) pairs.push(["fs", to]);
  for (const from of KINDS.filter((k) => k !== "fs")) for (const to of KINDS) pairs.push([from, to]);

  for (const [from, to] of pairs) {
    it(`${from} → ${to}`, async (ctx) => {
      if (!needs(from) || !needs(to)) ctx.skip(`${from} or ${to} emulator not installed`);
      const src = sources.get(from);
      expect(src, `no ${from} source (did fs → ${from} fail?)`).toBeDefined();
      const dst = await freshLocation(to);
      const state = path.join(base, `state-${from}-${to}`);
      const env = { ...services.env, MIGRATE_STATE_DIR: state };

      const run = await runCli([src!, dst, ...RUN_FLAGS], { env, timeoutMs: 240_000 });
      expect(run.stderr).not.toMatch(/error|warning/i);
      expect(run.code).toBe(0);
      const expected = from === "fs" ? count : count + 1; // cloud sources also hold the metadata probe
      expect(summaryOf(run).copied).toBe(expected);

      const diff = await runCli(["diff", src!, dst, "--report", path.join(base, `diff-${from}-${to}.ndjson`)], { env });
      const differing = readReportRows(path.join(base, `diff-${from}-${to}.ndjson`)).filter((r) => r.action !== "skip");
      expect(differing).toEqual([]);
      expect(diff.code).toBe(0);
      await expectSameObjects(src!, dst);

      if (from === "fs" && to !== "fs") {
        // This copy becomes the source of the runs from `to`; give it an object with metadata.
        const a = await open(dst);
        const body = "<h1>metadata probe</h1>";
        await a.write("meta/probe.html", bodyOf(body), {
          key: "meta/probe.html",
          size: body.length,
          contentType: "text/html; charset=utf-8",
          cacheControl: "max-age=60",
          contentDisposition: "inline",
          contentLanguage: "de",
          metadata: { color: "green", team: "storage" },
          mtime: Date.UTC(2020, 1, 2, 3, 4, 5),
        });
        sources.set(to, dst);
      }
      if (from !== "fs" && to !== "fs") {
        const st = await (await open(dst)).stat("meta/probe.html");
        expect(st).toMatchObject({ contentType: "text/html; charset=utf-8", cacheControl: "max-age=60", contentDisposition: "inline", contentLanguage: "de" });
        expect(st.metadata).toMatchObject({ color: "green", team: "storage" });
        expect(Math.abs((st.mtime ?? 0) - Date.UTC(2020, 1, 2, 3, 4, 5))).toBeLessThan(1000);
        expect((await (await open(dst)).stat("big/twenty-mib.bin")).md5).toBe(md5(seededBytes(BIG, 42)));
      }
    }, 300_000);
  }
});

describe("keys that cannot exist at the destination", () => {
  it("a key that is also a folder fails alone on a filesystem, with the reason in the report", async (ctx) => {
    // MinIO cannot hold both "x" and "x/y" either (it is file-backed); GCS can.
    if (!services.gs) ctx.skip("gcs emulator not installed");
    const bucket = await services.gs!.createBucket();
    const gs = await open(`${bucket}/c`);
    for (const k of ["x", "x/y", "z"]) await gs.write(k, bodyOf(k), { key: k, size: k.length });
    const dst = tempDir("conflict");
    const env = { ...services.env, MIGRATE_STATE_DIR: path.join(base, "state-conflict") };
    const report = path.join(base, "conflict.json");
    const run = await runCli([`${bucket}/c`, dst, "--json", "--report", report], { env });
    expect(run.code).toBe(1);
    const rows = readReportRows(report);
    const failed = rows.filter((r) => r.state === "failed");
    expect(failed).toHaveLength(1);
    expect(failed[0].symbol).toBe("!");
    expect(failed[0].error).toMatch(/folder|file/);
    expect(rows.filter((r) => r.state === "done").map((r) => r.key).sort()).toEqual(["x", "x/y", "z"].filter((k) => k !== failed[0].key));
    expect(fs.readFileSync(path.join(dst, "z"), "utf8")).toBe("z");
  });

  it("a key Azure cannot hold fails at planning with its reason; the rest is copied", async (ctx) => {
    if (!services.s3 || !services.az) ctx.skip("s3 or azure emulator not installed");
    const bucket = await services.s3!.createBucket();
    const s3 = await open(`${bucket}/t`);
    for (const k of ["ends-with-dot.", "fine.txt"]) await s3.write(k, bodyOf(k), { key: k, size: k.length });
    const dst = `${await services.az!.createBucket()}/t`;
    const report = path.join(base, "azkey.csv");
    const env = { ...services.env, MIGRATE_STATE_DIR: path.join(base, "state-azkey") };
    const run = await runCli([`${bucket}/t`, dst, "--report", report], { env });
    expect(run.code).toBe(1);
    const csv = fs.readFileSync(report, "utf8");
    expect(csv).toMatch(/^!,copy,ends-with-dot\.,.*cannot exist at destination/m);
    expect(csv).toMatch(/^\+,copy,fine\.txt,.*done/m);
  });
});
