/**
 * Azure credentials, endpoint and HTTP pipeline for one az:// location.
 *
 * Credentials are read from `opts.env ?? process.env`, first match wins:
 *  1. a SAS in the location itself (https://ACCOUNT.blob.core.windows.net/c/p?SAS → loc.extra.sas):
 *     the user typed it for this location, so it beats anything in the environment;
 *  2. AZURE_STORAGE_CONNECTION_STRING, when it applies to this location: its AccountName is the
 *     location's account, or it names a BlobEndpoint (an emulator, a proxy, a sovereign cloud —
 *     the endpoint is then used as given, whatever the location's account). Its AccountKey or
 *     SharedAccessSignature is the credential; a connection string with neither still supplies
 *     the endpoint. `UseDevelopmentStorage=true` means Azurite on 127.0.0.1:10000;
 *  3. AZURE_STORAGE_SAS_TOKEN;
 *  4. AZURE_STORAGE_KEY (or AZURE_STORAGE_ACCOUNT_KEY) as a shared key.
 * 3 and 4 are skipped when AZURE_STORAGE_ACCOUNT names a different account. Nothing found →
 * a run-scoped ConfigInvalid naming the variables to set. Secrets never reach a message.
 *
 * Endpoint: the connection string's BlobEndpoint, else <protocol>://<account>.blob.<suffix>
 * (https, core.windows.net by default).
 */
import http from "node:http";
import https from "node:https";
import type { Duplex } from "node:stream";
import type { ContainerClient, StoragePipelineOptions } from "@azure/storage-blob";
import type { AdapterOptions, Location } from "../types.js";
import { MigrateError } from "../../src/errors.js";
import { BlobLister } from "./list.js";
import { AzureDirectReads } from "./direct.js";
import { BlobRequests } from "./blob-requests.js";
import { SharedKey } from "./shared-key.js";

/** Azurite's (public, well-known) development account. */
export const DEV_ACCOUNT = "devstoreaccount1";
export const DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/** Sockets per host: many parallel transfers must not queue behind Node's default agent. */
const MAX_SOCKETS = 256;
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;

export interface AzureConnection {
  /**
   * The container through the SDK, for the requests we do not make ourselves (properties,
   * streamed reads, deletes). The SDK (~45 ms to load) is imported on the first call.
   */
  sdk(): Promise<ContainerClient>;
  /** The URL of blob `name` (SAS included), as the SDK's getBlockBlobClient(name).url. */
  blobUrl(name: string): string;
  /** Ranged reads straight into part memory, with the same credential. */
  direct: AzureDirectReads;
  /** List Blobs pages, read without the SDK's XML models (list.ts). */
  lister: BlobLister;
  /** Put Blob, Put Block and Put Block List without the SDK (blob-requests.ts). */
  writes: BlobRequests;
  /** How we authenticated, for messages ("shared key from AZURE_STORAGE_CONNECTION_STRING"). */
  credentialSource: string;
  /** Release the keep-alive sockets. */
  close(): void;
}

interface ResolvedAuth {
  endpoint: string;
  /** Unset: anonymous, or a SAS (`sas`). */
  key?: SharedKey;
  /** SAS query string without "?", or "". */
  sas: string;
  source: string;
}

/** "A=1;B=x=y;" → { a: "1", b: "x=y" } (names lower-cased; values may contain "="). */
export function parseConnectionString(cs: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of cs.split(";")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    out[part.slice(0, eq).trim().toLowerCase()] = part.slice(eq + 1).trim();
  }
  return out;
}

function stripQ(sas: string): string {
  return sas.replace(/^\?/, "");
}

function defaultEndpoint(account: string, protocol = "https", suffix = "core.windows.net"): string {
  return `${protocol}://${account}.blob.${suffix}`;
}

/** Connection-string credentials, or undefined when the string does not apply to `account`. */
function fromConnectionString(cs: string, account: string): Partial<ResolvedAuth> | undefined {
  const p = parseConnectionString(cs);
  if (p.usedevelopmentstorage?.toLowerCase() === "true") {
    const proxy = p.developmentstorageproxyuri?.replace(/\/+$/, "");
    return {
      endpoint: proxy ? `${proxy}/${DEV_ACCOUNT}` : `http://127.0.0.1:10000/${DEV_ACCOUNT}`,
      key: new SharedKey(DEV_ACCOUNT, DEV_KEY),
      sas: "",
      source: "AZURE_STORAGE_CONNECTION_STRING (development storage)",
    };
  }
  const name = p.accountname;
  const blobEndpoint = p.blobendpoint?.replace(/\/+$/, "");
  if (!blobEndpoint && name?.toLowerCase() !== account.toLowerCase()) return undefined;
  const endpoint = blobEndpoint ?? defaultEndpoint(name ?? account, p.defaultendpointsprotocol, p.endpointsuffix);
  if (p.accountkey && name) {
    return {
      endpoint,
      key: new SharedKey(name, p.accountkey),
      sas: "",
      source: "shared key from AZURE_STORAGE_CONNECTION_STRING",
    };
  }
  if (p.sharedaccesssignature) {
    return { endpoint, sas: stripQ(p.sharedaccesssignature), source: "SAS from AZURE_STORAGE_CONNECTION_STRING" };
  }
  return { endpoint };
}

/** Resolve endpoint and credential for `loc` (see the file comment for the order). */
export function resolveAuth(loc: Location, env: NodeJS.ProcessEnv): ResolvedAuth {
  const account = loc.extra.account ?? loc.root.split("/")[0];
  const cs = env.AZURE_STORAGE_CONNECTION_STRING ? fromConnectionString(env.AZURE_STORAGE_CONNECTION_STRING, account) : undefined;
  const endpoint = cs?.endpoint ?? defaultEndpoint(account);
  if (loc.extra.sas) return { endpoint, sas: stripQ(loc.extra.sas), source: "SAS in the URL" };
  if (cs?.key || cs?.sas) return { endpoint, key: cs.key, sas: cs.sas ?? "", source: cs.source ?? "" };
  const envAccount = env.AZURE_STORAGE_ACCOUNT;
  const sameAccount = !envAccount || envAccount.toLowerCase() === account.toLowerCase();
  if (sameAccount && env.AZURE_STORAGE_SAS_TOKEN) {
    return { endpoint, sas: stripQ(env.AZURE_STORAGE_SAS_TOKEN), source: "AZURE_STORAGE_SAS_TOKEN" };
  }
  const key = env.AZURE_STORAGE_KEY ?? env.AZURE_STORAGE_ACCOUNT_KEY;
  if (sameAccount && key) {
    return {
      endpoint,
      key: new SharedKey(account, key),
      sas: "",
      source: env.AZURE_STORAGE_KEY ? "AZURE_STORAGE_KEY" : "AZURE_STORAGE_ACCOUNT_KEY",
    };
  }
  throw new MigrateError(
    "ConfigInvalid",
    `${loc.display}: no credentials for Azure storage account "${account}": set AZURE_STORAGE_CONNECTION_STRING, ` +
      `AZURE_STORAGE_SAS_TOKEN, or AZURE_STORAGE_KEY (with AZURE_STORAGE_ACCOUNT=${account}), ` +
      `or give an https://${account}.blob.core.windows.net/<container>?<SAS> URL`,
    { scope: "run" },
  );
}

/**
 * A keep-alive agent whose sockets die after `idleMs` without traffic. Node's agent `timeout`
 * only emits "timeout"; nothing listens for it on requests the SDK makes, so we destroy the
 * socket ourselves (ETIMEDOUT, which the engine treats as temporary). Idle pooled sockets are
 * closed the same way, which is harmless.
 */
function makeAgent(protocol: string, idleMs: number): http.Agent {
  const options = { keepAlive: true, maxSockets: MAX_SOCKETS, maxFreeSockets: MAX_SOCKETS, timeout: idleMs, scheduling: "lifo" as const };
  const agent = protocol === "http:" ? new http.Agent(options) : new https.Agent(options);
  // createConnection exists on both agents at runtime but is not in @types/node's Agent.
  const target = agent as unknown as { createConnection(o: unknown, cb?: unknown): Duplex | undefined };
  const create = target.createConnection.bind(agent);
  target.createConnection = (o: unknown, cb?: unknown) => {
    const socket = create(o, cb);
    socket?.on("timeout", () => {
      const err = Object.assign(new Error(`no data for ${idleMs} ms`), { code: "ETIMEDOUT" });
      socket.destroy(err);
    });
    return socket;
  };
  return agent;
}

/** The SDK module, imported once, when a connection first needs it. */
let sdkModule: Promise<typeof import("@azure/storage-blob")> | undefined;

/**
 * The storage-blob SDK's escaping of a URL's path (utils.common escapeURLPath): percent-encode
 * what is not yet, keeping "/" and existing "%XX", and "'" as %27.
 */
function escapeUrlPath(url: string): string {
  const parsed = new URL(url);
  parsed.pathname = encodeURIComponent(parsed.pathname || "/")
    .replace(/%2F/g, "/")
    .replace(/'/g, "%27")
    .replace(/\+/g, "%20")
    .replace(/%25/g, "%");
  return parsed.toString();
}

/** The SDK's blob URL: the container URL's path + each "/"-separated segment of the name URI-encoded, then escaped as above. */
function blobUrlIn(containerUrl: string, name: string): string {
  const parsed = new URL(containerUrl);
  const segments = name.split("/").map(encodeURIComponent).join("/");
  parsed.pathname = parsed.pathname.endsWith("/") ? parsed.pathname + segments : `${parsed.pathname}/${segments}`;
  return escapeUrlPath(parsed.toString());
}

/**
 * The connection for `loc`: our own requests (reads, listings, writes) now, the SDK's
 * container client when first asked for.
 *
 * SDK pipeline: its retries off (maxTries 1, the engine retries); our own keep-alive agent with
 * MAX_SOCKETS sockets, handed to core-rest-pipeline through the `agent` pipeline option
 * (createClientPipeline → agentPolicy; StoragePipelineOptions does not declare it, but
 * storage-blob 12.32 passes all pipeline options through). The per-request timeout is a socket
 * idle timeout (see makeAgent): the SDK's `tryTimeoutInMs` only sets Azure's server-side
 * `timeout=` parameter, which bounds a whole operation and would fail long uploads.
 */
export function connect(loc: Location, opts: AdapterOptions): AzureConnection {
  const env = opts.env ?? process.env;
  const auth = resolveAuth(loc, env);
  const container = loc.extra.container ?? loc.root.split("/")[1];
  let base: URL;
  try {
    base = new URL(auth.endpoint);
  } catch {
    throw new MigrateError("ConfigInvalid", `${loc.display}: malformed blob endpoint in AZURE_STORAGE_CONNECTION_STRING`, { scope: "run" });
  }
  const timeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const agent = makeAgent(base.protocol, timeoutMs);
  const direct = new AzureDirectReads(auth.key, timeoutMs);
  const containerUrl = escapeUrlPath(`${auth.endpoint}/${encodeURIComponent(container)}${auth.sas ? "?" + auth.sas : ""}`);
  let client: Promise<ContainerClient> | undefined;
  const sdk = async (): Promise<ContainerClient> => {
    const m = await (sdkModule ??= import("@azure/storage-blob"));
    const credential = auth.key ? new m.StorageSharedKeyCredential(auth.key.accountName, auth.key.accountKey) : new m.AnonymousCredential();
    const pipelineOptions: StoragePipelineOptions & { agent: http.Agent } = {
      retryOptions: { maxTries: 1 },
      keepAliveOptions: { enable: true },
      agent,
    };
    return new m.ContainerClient(containerUrl, m.newPipeline(credential, pipelineOptions));
  };
  return {
    sdk: () => (client ??= sdk()),
    blobUrl: (name) => blobUrlIn(containerUrl, name),
    direct,
    lister: new BlobLister(containerUrl, auth.key, agent),
    writes: new BlobRequests(auth.key, agent),
    credentialSource: auth.source,
    close: () => {
      agent.destroy();
      direct.close();
    },
  };
}
