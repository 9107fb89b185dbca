/**
 * Planning from a big Azure container, without Azurite (which takes minutes to hold 50,000
 * blobs): a local server answers List Blobs with synthetic pages of 5,000 blobs, each with
 * properties and one metadata entry, as Azure writes them. `migrate --dry-run` plans the
 * container into a local folder; we report its wall time, CPU and peak RSS.
 *
 *   node dist/bench/azure-list.js [--blobs 50000,200000] [--runs 3] [--bin path/to/bin/migrate]
 *
 * The server runs in a child process of its own, so its CPU is not counted as ours.
 */
import { fork } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { repoRoot } from "./lab.js";
import { measure, median } from "./measure.js";
import { DEV_ACCOUNT as ACCOUNT, DEV_KEY } from "../adapters/azure/client.js";

/** Child: serve `count` blobs f0000000… (markers are indexes), then report the port. */
function serve(count: number): void {
  const name = (i: number) => "f" + String(i).padStart(7, "0");
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? "/", "http://x");
    if (u.searchParams.get("comp") !== "list") {
      res.writeHead(404).end();
      return;
    }
    const max = Number(u.searchParams.get("maxresults") ?? 5000);
    const start = Number(u.searchParams.get("marker") || 0);
    const end = Math.min(count, start + max);
    const parts = [`<?xml version="1.0" encoding="utf-8"?><EnumerationResults ContainerName="c"><MaxResults>${max}</MaxResults><Blobs>`];
    for (let i = start; i < end; i++) {
      parts.push(
        `<Blob><Name>${name(i)}</Name><Properties><Creation-Time>Mon, 30 Nov 2026 10:00:00 GMT</Creation-Time><Last-Modified>Mon, 30 Nov 2026 10:00:00 GMT</Last-Modified>` +
          `<Etag>0x8DD${String(i).padStart(12, "0")}</Etag><Content-Length>4096</Content-Length><Content-Type>application/octet-stream</Content-Type><Content-Encoding /><Content-Language />` +
          `<Content-MD5>1B2M2Y8AsgTpgAmY7PhCfg==</Content-MD5><Cache-Control /><Content-Disposition /><BlobType>BlockBlob</BlobType><AccessTier>Hot</AccessTier><AccessTierInferred>true</AccessTierInferred>` +
          `<LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState><ServerEncrypted>true</ServerEncrypted></Properties><Metadata><mtime>2026-11-30T10:00:00.000000000Z</mtime></Metadata></Blob>`,
      );
    }
    parts.push(`</Blobs><NextMarker>${end < count ? end : ""}</NextMarker></EnumerationResults>`);
    res.writeHead(200, { "content-type": "application/xml", "x-ms-version": "2021-08-06" }).end(parts.join(""));
  });
  server.listen(0, "127.0.0.1", () => process.send?.((server.address() as { port: number }).port));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { blobs: { type: "string", default: "50000,200000" }, runs: { type: "string", default: "3" }, bin: { type: "string" }, serve: { type: "string" } },
  });
  if (values.serve) return serve(Number(values.serve));
  const bin = path.resolve(values.bin ?? path.join(repoRoot, "bin", "migrate"));
  for (const count of values.blobs.split(",").map(Number)) {
    const child = fork(process.argv[1], ["--serve", String(count)], { stdio: "inherit" });
    const port = await new Promise<number>((resolve) => child.once("message", (m) => resolve(Number(m))));
    try {
      const env = {
        ...process.env,
        AZURE_STORAGE_CONNECTION_STRING: `DefaultEndpointsProtocol=http;AccountName=${ACCOUNT};AccountKey=${DEV_KEY};BlobEndpoint=http://127.0.0.1:${port}/${ACCOUNT};`,
      };
      const runs = [];
      for (let r = 0; r < Number(values.runs); r++) {
        const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bench-azlist-"));
        const m = await measure(process.execPath, [bin, `az://${ACCOUNT}/c`, path.join(tmp, "dst"), "--dry-run", "--no-progress"], {
          env: { ...env, MIGRATE_STATE_DIR: path.join(tmp, "state") },
          timeoutMs: 30 * 60_000,
        });
        fs.rmSync(tmp, { recursive: true, force: true });
        // A dry run with differences exits 1.
        if (m.exitCode !== 1 || !m.stdoutHead.includes(`${count.toLocaleString("en-US")} objects`)) throw new Error(`dry run failed (exit ${m.exitCode}): ${m.stderrTail.slice(-500)}`);
        runs.push(m);
      }
      const wall = median(runs.map((m) => m.wallMs)) / 1000;
      console.log(
        `${count.toLocaleString("en-US")} blobs: plan ${wall.toFixed(2)} s (${Math.round(count / wall).toLocaleString("en-US")} blobs/s), ` +
          `CPU ${(median(runs.map((m) => m.cpuMs ?? 0)) / 1000).toFixed(2)} s, peak RSS ${Math.round(median(runs.map((m) => m.peakRss)) / 2 ** 20)} MB (median of ${runs.length})`,
      );
    } finally {
      child.kill();
    }
  }
}

main().catch((err: unknown) => {
  console.error(`azure-list: ${(err as Error)?.stack ?? String(err)}`);
  process.exitCode = 1;
});
