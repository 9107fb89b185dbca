/**
 * Parallel-part uploads for GCS, built from plain objects and `compose`.
 *
 * - startUpload makes a random id; no server call. The id names a hidden folder of the bucket,
 *   `.cloudmigrate-parts/<id>/`, so it stays meaningful across restarts (parts are found by name)
 *   and parts never show under any location's prefix (list() also hides that folder when the
 *   location is the whole bucket).
 * - uploadPart stores part N as `.cloudmigrate-parts/<id>/<N, 5 digits>` in one request, sending
 *   the part's CRC32C so GCS verifies it on arrival. Its "etag" is the part's generation.
 * - completeUpload composes the parts (≤ 32 sources per compose call, so > 32 parts are composed
 *   in levels through intermediate objects in the same folder) into the destination, with the
 *   source's headers, metadata, mtime and metadata "md5" = the whole object's MD5, then deletes
 *   the folder. Retried after a crash that happened after the compose, it recognises the finished
 *   object (same size and "md5") and succeeds.
 * - abortUpload deletes whatever is in the folder; an unknown id is a no-op.
 */
import crypto from "node:crypto";
import type { MultipartSteps, ObjectInfo, WriteResult } from "../types.js";
import { MigrateError, afterFailedCheck, toMigrateError } from "../../src/errors.js";
import type { GcsHttp } from "./http.js";
import { mapGcsError } from "./errors.js";
import { PARTS_ROOT, encName, resourceFor, toWriteResult, OBJECT_FIELDS, type GcsObject } from "./objects.js";
import { uploadObject } from "./upload.js";

/** GCS accepts at most this many sources in one compose request. */
export const MAX_COMPOSE_SOURCES = 32;

/** What the multipart steps need from the adapter. */
export interface MultipartHost {
  readonly http: GcsHttp;
  readonly bucket: string;
  /** Full object name for a location-relative key. */
  objectName(key: string): string;
  /** Full object names under `prefix` (a bucket-level prefix), page by page. */
  listNames(prefix: string): AsyncIterable<string>;
  /** Delete a full object name; a missing one is fine. */
  deleteName(name: string): Promise<void>;
  /** Resource of a full object name, or undefined if missing. */
  statName(name: string): Promise<GcsObject | undefined>;
}

const ID_RE = /^[0-9a-f]{24}$/;

function folder(uploadId: string): string {
  if (!ID_RE.test(uploadId)) throw new MigrateError("Unexpected", `not a GCS upload id: ${uploadId}`);
  return `${PARTS_ROOT}${uploadId}/`;
}

function partName(uploadId: string, partNumber: number): string {
  return `${folder(uploadId)}${String(partNumber).padStart(5, "0")}`;
}

/** Run `fn` over `items`, at most `limit` at a time. */
async function eachLimit<T>(items: T[], limit: number, fn: (t: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

interface Source {
  name: string;
  generation?: string;
}

export function gcsMultipart(host: MultipartHost): MultipartSteps {
  const { http, bucket } = host;

  async function compose(dest: string, sources: Source[], resource: Record<string, unknown>): Promise<GcsObject> {
    try {
      return await http.json<GcsObject>({
        method: "POST",
        path: `/storage/v1/b/${encodeURIComponent(bucket)}/o/${encName(dest)}/compose`,
        query: { fields: OBJECT_FIELDS },
        headers: { "content-type": "application/json; charset=UTF-8" },
        body: JSON.stringify({
          sourceObjects: sources.map((s) => (s.generation ? { name: s.name, generation: s.generation } : { name: s.name })),
          destination: { contentType: "application/octet-stream", ...resource },
        }),
      });
    } catch (err) {
      throw mapGcsError(err, { bucket, object: dest });
    }
  }

  /** Compose `sources` into ≤ 32 objects per level until one compose can make `dest`. */
  async function composeAll(uploadId: string, dest: string, sources: Source[], resource: Record<string, unknown>) {
    let level = 0;
    let current = sources;
    while (current.length > MAX_COMPOSE_SOURCES) {
      level++;
      const groups: Source[][] = [];
      for (let i = 0; i < current.length; i += MAX_COMPOSE_SOURCES) groups.push(current.slice(i, i + MAX_COMPOSE_SOURCES));
      const out: Source[] = new Array<Source>(groups.length);
      await eachLimit(groups, 8, async (g, i) => {
        const name = `${folder(uploadId)}L${level}-${String(i).padStart(5, "0")}`;
        const o = await compose(name, g, {});
        out[i] = { name, generation: o.generation };
      });
      current = out;
    }
    return compose(dest, current, resource);
  }

  async function removeFolder(uploadId: string): Promise<void> {
    const names: string[] = [];
    for await (const n of host.listNames(folder(uploadId))) names.push(n);
    await eachLimit(names, 16, (n) => host.deleteName(n));
  }

  return {
    async startUpload(): Promise<string> {
      return crypto.randomBytes(12).toString("hex");
    },

    async uploadPart(_key, uploadId, partNumber, body, crc32c): Promise<string> {
      const name = partName(uploadId, partNumber);
      // GCS checks the part's CRC32C on arrival (partChecksum "crc32c": no MD5 pass per part).
      const resource: Record<string, unknown> = { contentType: "application/octet-stream", crc32c };
      try {
        const o = await uploadObject(http, { bucket, name, resource, body });
        return o.generation ?? o.etag ?? "";
      } catch (err) {
        throw mapGcsError(err, { bucket, object: name, bucketLevel: true });
      }
    },

    async completeUpload(key, uploadId, parts, source: ObjectInfo, wholeMd5): Promise<WriteResult> {
      const dest = host.objectName(key);
      const sorted = [...parts].sort((a, b) => a.partNumber - b.partNumber);
      const total = sorted.reduce((n, p) => n + p.size, 0);
      const sources: Source[] = sorted.map((p) => ({
        name: partName(uploadId, p.partNumber),
        generation: /^\d+$/.test(p.etag) ? p.etag : undefined,
      }));
      const md5 = wholeMd5?.toLowerCase();
      const resource = resourceFor(source, md5 ? { md5 } : undefined);
      let result: GcsObject;
      try {
        result = await composeAll(uploadId, dest, sources, resource);
      } catch (err) {
        // A retry after the object was already composed (and the parts removed) is a success.
        let existing: GcsObject | undefined;
        try {
          existing = await host.statName(dest);
        } catch (checkErr) {
          throw afterFailedCheck(toMigrateError(err), toMigrateError(checkErr));
        }
        const meta = existing?.metadata ?? {};
        if (existing && Number(existing.size) === total && md5 && meta["md5"] === md5) {
          await removeFolder(uploadId).catch(() => undefined);
          return toWriteResult(existing);
        }
        throw err;
      }
      // The object is complete; leftover parts are only garbage, so a failed clean-up is not an
      // error (abortUpload with the same id removes them).
      await removeFolder(uploadId).catch(() => undefined);
      return toWriteResult(result);
    },

    async abortUpload(_key, uploadId): Promise<void> {
      if (!ID_RE.test(uploadId)) return; // not one of ours: nothing to clean
      await removeFolder(uploadId);
    },
  };
}
