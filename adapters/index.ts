/**
 * Scheme registry: how each service's URLs parse, and how its adapter is built.
 * SDK-backed adapters are imported lazily, so a filesystem-only run loads no cloud SDK.
 */
import path from "node:path";
import { pathToFileURL, fileURLToPath } from "node:url";
import type { Adapter, AdapterOptions, Location } from "./types.js";
import { usageError } from "../src/errors.js";

interface SchemeEntry {
  /** Parse the part after "scheme://" (or the whole input for paths). */
  parse(rest: string, input: string): Location;
  create(loc: Location, opts: AdapterOptions): Promise<Adapter>;
}

function trimSlashes(s: string): string {
  return s.replace(/^\/+|\/+$/g, "");
}

/** "bucket/some/prefix" -> bucket + normalised prefix. */
function bucketAndPrefix(scheme: string, rest: string, input: string, what = "bucket"): Location {
  const clean = rest.replace(/\/{2,}/g, "/");
  const slash = clean.indexOf("/");
  const root = slash < 0 ? clean : clean.slice(0, slash);
  const prefix = slash < 0 ? "" : trimSlashes(clean.slice(slash + 1));
  if (!root) throw usageError(`${input}: missing ${what} name (expected ${scheme}://${what}/prefix)`);
  return { scheme, root, prefix, display: `${scheme}://${root}${prefix ? "/" + prefix : ""}`, extra: {} };
}

const schemes: Record<string, SchemeEntry> = {
  file: {
    parse(rest, input) {
      const abs = path.resolve(rest);
      return { scheme: "file", root: abs, prefix: "", display: input, extra: {} };
    },
    async create(loc) {
      const { FsAdapter } = await import("./fs.js");
      return new FsAdapter(loc);
    },
  },
  s3: {
    parse: (rest, input) => bucketAndPrefix("s3", rest, input),
    async create(loc, opts) {
      const { createS3Adapter } = await import("./s3/index.js");
      return createS3Adapter(loc, opts);
    },
  },
  gs: {
    parse: (rest, input) => bucketAndPrefix("gs", rest, input),
    async create(loc, opts) {
      const { createGcsAdapter } = await import("./gcs/index.js");
      return createGcsAdapter(loc, opts);
    },
  },
  az: {
    parse(rest, input) {
      // az://account/container/prefix
      const parts = rest.split("/");
      const account = parts[0];
      const container = parts[1];
      if (!account || !container) throw usageError(`${input}: expected az://account/container/prefix`);
      const prefix = trimSlashes(parts.slice(2).join("/").replace(/\/{2,}/g, "/"));
      return {
        scheme: "az",
        root: `${account}/${container}`,
        prefix,
        display: `az://${account}/${container}${prefix ? "/" + prefix : ""}`,
        extra: { account, container },
      };
    },
    async create(loc, opts) {
      const { createAzureAdapter } = await import("./azure/index.js");
      return createAzureAdapter(loc, opts);
    },
  },
};

/** https://ACCOUNT.blob.core.windows.net/container/prefix?sas — Azure's own URL form. */
function parseAzureHttps(url: URL, input: string): Location | undefined {
  const m = /^([a-z0-9]{3,24})\.blob\.core\.windows\.net$/.exec(url.hostname);
  if (!m) return undefined;
  const loc = schemes.az.parse(`${m[1]}${decodeURIComponent(url.pathname)}`, input);
  // A SAS token in the URL is a secret: keep it in memory only, never in `display`.
  if (url.search.length > 1) loc.extra.sas = url.search.slice(1);
  return loc;
}

export function parseLocation(input: string): Location {
  if (!input) throw usageError("empty location");
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/(.*)$/s.exec(input);
  if (!m) {
    if (/^[a-zA-Z][a-zA-Z0-9+.-]+:/.test(input) && !/^[a-zA-Z]:[\\/]/.test(input)) {
      throw usageError(`${input}: not a path or URL (expected s3://, gs://, az://, file:// or a path)`);
    }
    return schemes.file.parse(input, input);
  }
  const scheme = m[1].toLowerCase();
  const rest = m[2];
  if (scheme === "file") {
    let p: string;
    try {
      p = fileURLToPath(input);
    } catch {
      throw usageError(`${input}: malformed file URL`);
    }
    return { ...schemes.file.parse(p, input), display: pathToFileURL(p).href };
  }
  if (scheme === "https" || scheme === "http") {
    let url: URL;
    try {
      url = new URL(input);
    } catch {
      throw usageError(`${input}: malformed URL`);
    }
    const az = parseAzureHttps(url, input);
    if (az) return az;
    throw usageError(`${url.protocol}//${url.host}: unsupported URL (only https://ACCOUNT.blob.core.windows.net/… is understood)`);
  }
  const entry = schemes[scheme];
  if (!entry) {
    throw usageError(`${scheme}://: unknown scheme (supported: s3://, gs://, az://, file://, https://ACCOUNT.blob.core.windows.net/, or a path)`);
  }
  return entry.parse(rest, input);
}

export async function createAdapter(loc: Location, opts: AdapterOptions = {}): Promise<Adapter> {
  const entry = schemes[loc.scheme];
  if (!entry) throw usageError(`${loc.scheme}://: unknown scheme`);
  return entry.create(loc, opts);
}

/**
 * Whether `inner` lies inside (or equals) `outer`, so copying one into the other would loop.
 * Both are compared as root + prefix folders.
 */
export function locationContains(outer: Location, inner: Location): boolean {
  if (outer.scheme !== inner.scheme || outer.root !== inner.root) {
    if (outer.scheme === "file" && inner.scheme === "file") {
      const rel = path.relative(outer.root, inner.root);
      return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
    }
    return false;
  }
  if (!outer.prefix) return true;
  return inner.prefix === outer.prefix || inner.prefix.startsWith(outer.prefix + "/");
}

/**
 * A stable identity for a location, for job lookup and for the checkpoint: no secrets, and
 * `parseLocation(locationId(loc))` gives the location back (a filesystem path stays a path).
 */
export function locationId(loc: Location): string {
  if (loc.scheme === "file") return loc.prefix ? path.join(loc.root, ...loc.prefix.split("/")) : loc.root;
  return `${loc.scheme}://${loc.root}${loc.prefix ? "/" + loc.prefix : ""}`;
}
