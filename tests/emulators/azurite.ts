/**
 * Azurite (Azure Blob emulator) harness for the tests.
 *
 * `startAzurite()` finds `azurite-blob` (the npm devDependency in node_modules/.bin, then PATH),
 * starts it on a free loopback port with in-memory storage and a temp workspace, waits until it
 * answers (bounded, ~30 s), and returns an Emulator using the well-known dev account
 * `devstoreaccount1`. Missing binary: throws when REQUIRE_EMULATORS=1, else prints one loud line
 * and returns undefined. The process is killed on stop() and when the test process exits.
 */
import { spawn, type ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  BlobServiceClient,
  ContainerSASPermissions,
  StorageSharedKeyCredential,
  generateBlobSASQueryParameters,
} from "@azure/storage-blob";
import type { Emulator } from "./types.js";
import { freePort, supervise } from "./process.js";

/** Azurite's (and the Azure Storage Emulator's) public development account and key. */
export const DEV_ACCOUNT = "devstoreaccount1";
export const DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/** A well-formed key Azurite rejects. */
const BAD_KEY = Buffer.from("not-the-devstoreaccount1-key-at-all-0123456789abcdef").toString("base64");

/** An Azurite emulator; `blobEndpoint` is http://127.0.0.1:PORT/devstoreaccount1. */
export interface AzuriteEmulator extends Emulator {
  readonly blobEndpoint: string;
}

function connectionString(endpoint: string, key: string): string {
  return `DefaultEndpointsProtocol=http;AccountName=${DEV_ACCOUNT};AccountKey=${key};BlobEndpoint=${endpoint};`;
}

function findBinary(): string | undefined {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.resolve(here, "../../node_modules/.bin/azurite-blob")];
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir) candidates.push(path.join(dir, "azurite-blob"));
  }
  return candidates.find((p) => {
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Any HTTP answer from the blob endpoint means Azurite is up. */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path: `/${DEV_ACCOUNT}?comp=list`, timeout: 1000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
  });
}

export async function startAzurite(): Promise<AzuriteEmulator | undefined> {
  const bin = findBinary();
  if (!bin) {
    if (process.env.REQUIRE_EMULATORS === "1") {
      throw new Error("REQUIRE_EMULATORS=1 but azurite-blob is not installed (npm ci installs the azurite devDependency)");
    }
    process.stderr.write("SKIPPING azure tests: azurite-blob not installed; run scripts/install-emulators.sh\n");
    return undefined;
  }
  const port = await freePort();
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "azurite-"));
  const args = [
    "--blobHost", "127.0.0.1",
    "--blobPort", String(port),
    // In-memory storage is faster; Azurite refuses --location with it, so the temp dir is its cwd.
    "--inMemoryPersistence",
    "--extentMemoryLimit", "4096",
    "--disableTelemetry",
    "--silent",
    "--skipApiVersionCheck",
    "--loose",
  ];
  const child: ChildProcess = spawn(bin, args, {
    cwd: dir,
    stdio: ["ignore", "ignore", "pipe"],
    detached: false,
  });
  const { output, stop } = supervise(child, dir);

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`azurite-blob exited with ${child.exitCode}: ${output()}`);
    }
    if (await answers(port)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`azurite-blob did not answer on 127.0.0.1:${port} within 30 s: ${output()}`);
    }
    await new Promise((r) => setTimeout(r, 150));
  }

  const blobEndpoint = `http://127.0.0.1:${port}/${DEV_ACCOUNT}`;
  const env = { AZURE_STORAGE_CONNECTION_STRING: connectionString(blobEndpoint, DEV_KEY) };
  const service = new BlobServiceClient(blobEndpoint, new StorageSharedKeyCredential(DEV_ACCOUNT, DEV_KEY));
  const randomName = (p: string): string => `${p}-${crypto.randomBytes(6).toString("hex")}`;

  return {
    scheme: "az",
    name: "azurite",
    pid: child.pid,
    blobEndpoint,
    env,
    badCredentialsEnv: { AZURE_STORAGE_CONNECTION_STRING: connectionString(blobEndpoint, BAD_KEY) },
    adapterOptions: { env },
    async createBucket() {
      const name = randomName("c");
      await service.getContainerClient(name).create();
      return `az://${DEV_ACCOUNT}/${name}`;
    },
    missingBucketUrl: () => `az://${DEV_ACCOUNT}/${randomName("missing")}`,
    stop,
  };
}

/**
 * A URL with a container SAS (read, add, create, write, delete, list; valid one day), e.g. for
 * rclone in the benchmarks: http://127.0.0.1:PORT/devstoreaccount1/CONTAINER?sv=…&sig=…
 * `container` is a container name or an "az://devstoreaccount1/<container>" URL.
 */
export async function containerSasUrl(emu: Emulator, container: string): Promise<string> {
  const name = container.replace(/^az:\/\/[^/]+\//, "").replace(/\/.*$/, "");
  const endpoint = (emu as Partial<AzuriteEmulator>).blobEndpoint;
  if (!endpoint) throw new Error(`containerSasUrl: ${emu.name} is not an Azurite emulator`);
  const sas = generateBlobSASQueryParameters(
    {
      containerName: name,
      permissions: ContainerSASPermissions.parse("racwdl"),
      startsOn: new Date(Date.now() - 5 * 60_000),
      expiresOn: new Date(Date.now() + 24 * 3600_000),
    },
    new StorageSharedKeyCredential(DEV_ACCOUNT, DEV_KEY),
  ).toString();
  return `${endpoint}/${encodeURIComponent(name)}?${sas}`;
}
