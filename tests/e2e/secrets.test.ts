/**
 * Secrets never leak: run migrations with an AWS secret key, an Azure account key (in a
 * connection string) and Azure SAS tokens in play — successful runs, runs where single objects
 * fail (errors recorded in the checkpoint and reports), runs refused for bad credentials (with
 * --debug stack traces), dry runs, diff, status and jobs, with --json and --report in every format
 * — then search every byte the tool wrote: stdout, stderr, report files, every file in the state
 * directory (the checkpoint database, its WAL, locks, set-aside files) and the temp directory.
 * No secret value, and no signature parameter (`sig=`, `X-Amz-Signature`, `Signature=`), may
 * appear anywhere.
 */
import fs from "node:fs";
import path from "node:path";
import { ContainerSASPermissions, StorageSharedKeyCredential, generateBlobSASQueryParameters } from "@azure/storage-blob";
import { afterAll, describe, expect, it } from "vitest";
import { startMinio } from "../emulators/minio.js";
import { DEV_ACCOUNT, DEV_KEY, startAzurite, type AzuriteEmulator } from "../emulators/azurite.js";
import { emulatorHostOf, envThroughProxy, startFaultProxy } from "../chaos/proxy.js";
import { explain, runCli, seededBytes, tempDir, type Run } from "../chaos/harness.js";

const [minio, azurite] = await Promise.all([startMinio(), startAzurite()]);
afterAll(async () => {
  await Promise.all([minio?.stop(), azurite?.stop()]);
});

/** Signature parameters of signed URLs and auth headers: never in any output. */
const SIGNATURE_MARKERS = ["sig=", "X-Amz-Signature", "x-amz-signature", "Signature=", "SharedKey "];

function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

/** Where any of `needles` occurs in `text`, as "where: needle" lines. */
function leaks(where: string, text: string, needles: string[]): string[] {
  return needles.filter((n) => text.includes(n)).map((n) => `${where}: ${n.length > 12 ? n.slice(0, 6) + "…" : n}`);
}

describe.skipIf(!minio || !azurite)("secrets never appear in any output", () => {
  it("keys, SAS tokens and connection strings stay out of stdout, stderr, reports, checkpoints and temp files", { timeout: 120_000 }, async () => {
    const az = azurite as AzuriteEmulator;
    const base = tempDir("secrets");
    const state = path.join(base, "state");
    const tmp = path.join(base, "tmp");
    const reports = path.join(base, "reports");
    fs.mkdirSync(tmp);
    fs.mkdirSync(reports);
    const src = path.join(base, "src");
    for (let i = 0; i < 30; i++) {
      fs.mkdirSync(path.join(src, `d${i % 3}`), { recursive: true });
      fs.writeFileSync(path.join(src, `d${i % 3}`, `f${i}.bin`), seededBytes(200 + i * 37, i + 1));
    }
    // One large object, so multipart paths (upload ids, part records) are in play too.
    fs.writeFileSync(path.join(src, "big.bin"), seededBytes(7 * 1024 * 1024, 99));
    const common = { MIGRATE_STATE_DIR: state, TMPDIR: tmp };
    const flags = ["--json", "--multipart-threshold", "6M", "--part-size", "5M", "--retries", "3", "--timeout", "5"];

    const s3Bucket = await minio!.createBucket();
    const container = await az.createBucket();
    const containerName = container.split("/").pop()!;
    const sasFor = (perms: string) =>
      generateBlobSASQueryParameters(
        {
          containerName,
          permissions: ContainerSASPermissions.parse(perms),
          startsOn: new Date(Date.now() - 5 * 60_000),
          expiresOn: new Date(Date.now() + 3600_000),
        },
        new StorageSharedKeyCredential(DEV_ACCOUNT, DEV_KEY),
      ).toString();
    const sas = sasFor("racwdl");
    const sig = new URLSearchParams(sas).get("sig")!;
    const tamperedSas = sas.replace(/sig=[^&]+/, `sig=${encodeURIComponent(Buffer.from("not the signature at all, no").toString("base64"))}`);
    const badTampered = new URLSearchParams(tamperedSas).get("sig")!;
    const badKey = /AccountKey=([^;]+)/.exec(az.badCredentialsEnv.AZURE_STORAGE_CONNECTION_STRING)![1];

    const secrets = [
      minio!.env.AWS_SECRET_ACCESS_KEY,
      minio!.badCredentialsEnv.AWS_SECRET_ACCESS_KEY,
      DEV_KEY,
      badKey,
      az.env.AZURE_STORAGE_CONNECTION_STRING,
      sig,
      encodeURIComponent(sig),
      badTampered,
      encodeURIComponent(badTampered),
      sas,
    ];
    for (const s of secrets) expect(s.length).toBeGreaterThan(10);
    const needles = [...secrets, ...SIGNATURE_MARKERS];

    // Per-object failures on the Azure side (their errors land in the checkpoint and reports):
    // uploads of one blob always answer 500, of another always have the connection reset; the
    // same for downloads of two others.
    const host = emulatorHostOf(az.env);
    const internal = "<Error><Code>InternalError</Code><Message>chaos</Message></Error>";
    const proxy = await startFaultProxy({
      target: `http://${host}`,
      rules: [
        { match: (r) => r.method === "PUT" && r.path.includes("/d1/f4.bin"), status: 500, body: internal },
        { match: (r) => r.method === "PUT" && r.path.includes("/d2/f5.bin"), status: 0 },
        { match: (r) => r.method === "GET" && r.path.includes("/d0/f3.bin"), status: 500, body: internal },
        { match: (r) => r.method === "GET" && r.path.includes("/d0/f6.bin"), status: 0 },
      ],
    });
    const azKeyEnv = { ...envThroughProxy(az.env, host, proxy), ...common };
    const azSasEnv = { AZURE_STORAGE_CONNECTION_STRING: `BlobEndpoint=${proxy.url}/${DEV_ACCOUNT};`, AZURE_STORAGE_SAS_TOKEN: sas, ...common };
    const azSasInCs = { AZURE_STORAGE_CONNECTION_STRING: `BlobEndpoint=${proxy.url}/${DEV_ACCOUNT};SharedAccessSignature=${sas}`, ...common };
    const s3Env = { ...minio!.env, ...common };

    const runs: [string, Run][] = [];
    const run = async (label: string, args: string[], env: Record<string, string>, expectCode?: number) => {
      const r = await runCli(args, { env });
      runs.push([label, r]);
      if (expectCode !== undefined) expect(r.code, `${label}: ${explain(r)}`).toBe(expectCode);
      return r;
    };
    const report = (name: string) => path.join(reports, name);
    try {
      // Successful and partly failing runs.
      await run("fs → s3", [src, s3Bucket, ...flags, "--report", report("1.json")], s3Env, 0);
      await run("s3 → azure (key, failures)", [s3Bucket, container, ...flags, "--report", report("2.csv")], { ...s3Env, ...azKeyEnv }, 1);
      await run("status", ["status"], azKeyEnv, 0);
      await run("status --json", ["status", "--json"], azKeyEnv, 0);
      await run("jobs", ["jobs"], azKeyEnv, 0);
      await run("jobs --json", ["jobs", "--json"], azKeyEnv, 0);
      await run("resume (sas in env, still failing)", ["resume", ...flags, "--report", report("3.ndjson")], { ...s3Env, ...azSasEnv }, 1);
      await run("azure (sas) → fs (failures)", [container, path.join(base, "back"), ...flags, "--report", report("4.txt")], azSasEnv, 1);
      await run("dry run (sas in connection string)", [src, `${container}/other`, "--dry-run", "--json", "--report", report("5.csv")], azSasInCs, 1);
      await run("diff", ["diff", s3Bucket, container, "--checksum", "--report", report("6.json")], { ...s3Env, ...azKeyEnv }, 1);
      await run("fs → azure (sas in connection string)", [src, `${container}/copy`, ...flags, "--report", report("7.ndjson")], azSasInCs, 1);
      // Refused for bad credentials, with stack traces.
      await run("bad s3 secret", [src, `${s3Bucket}/x`, ...flags, "--debug"], { ...minio!.badCredentialsEnv, ...common }, 2);
      await run("bad s3 secret (source)", [s3Bucket, path.join(base, "never"), ...flags, "--debug"], { ...minio!.badCredentialsEnv, ...common }, 2);
      await run("bad azure key", [src, `${container}/y`, ...flags, "--debug"], { ...az.badCredentialsEnv, ...common }, 2);
      const tampered = { ...azSasEnv, AZURE_STORAGE_SAS_TOKEN: tamperedSas };
      await run("tampered sas", [src, `${container}/z`, ...flags, "--debug"], tampered, 2);
      await run("tampered sas (source)", [container, path.join(base, "never2"), ...flags, "--debug"], tampered, 2);
      await run("tampered sas in connection string", [container, path.join(base, "never3"), "--debug"], { ...azSasInCs, AZURE_STORAGE_CONNECTION_STRING: `BlobEndpoint=${proxy.url}/${DEV_ACCOUNT};SharedAccessSignature=${tamperedSas}` }, 2);
      await run("status after all", ["status", "--json"], common, 0);
      await run("jobs after all", ["jobs", "--json"], common, 0);
    } finally {
      await proxy.close();
    }

    // The failing objects really failed, with errors recorded (so there was something to leak).
    const st = runs.find(([l]) => l === "status --json")![1];
    expect(st.stdout).toMatch(/d1\/f4\.bin/);
    expect(st.stdout).toMatch(/d2\/f5\.bin/);

    const found: string[] = [];
    for (const [label, r] of runs) {
      found.push(...leaks(`${label} stdout`, r.stdout, needles), ...leaks(`${label} stderr`, r.stderr, needles));
    }
    const written = [...filesUnder(reports), ...filesUnder(state), ...filesUnder(tmp)];
    expect(filesUnder(reports).length).toBe(7);
    expect(filesUnder(state).some((f) => f.endsWith(".sqlite"))).toBe(true);
    for (const f of written) {
      const bytes = fs.readFileSync(f);
      // Text as stored, and UTF-16 (how a blob might hold it), both searched.
      found.push(...leaks(path.relative(base, f), bytes.toString("latin1"), needles));
      found.push(...leaks(`${path.relative(base, f)} (utf16)`, bytes.toString("utf16le"), secrets));
    }
    expect(found, `secrets or signatures found in ${written.length} files and ${runs.length} runs' output`).toEqual([]);
  });
});
