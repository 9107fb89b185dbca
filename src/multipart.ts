/**
 * Large objects: parallel ranged reads and multipart writes, with part-level resume.
 *
 * One shared uploader owns part sizing, concurrency, the memory budget and abort-on-error;
 * adapters only supply the start / upload part / complete / abort steps. Each part is read by
 * its own ranged read, so one big object is not limited to one stream.
 *
 * Resume: the upload id, every committed part (number, size, checksum, etag) and the whole-object
 * MD5 state (md5-lanes.ts's saved state, advanced in part order) are recorded as they happen. A
 * restarted copy continues the same upload: committed parts are not sent again; only parts
 * committed out of order ahead of the hash are read again, to hash, never re-sent (all of
 * them, for an upload whose state an older version saved in another form).
 *
 * Verification: every part goes with a checksum for the service to check (S3 and GCS CRC32C,
 * Azure transactional MD5); the whole-object MD5 is checked against the source's where
 * it has one, and stored as metadata by completeUpload so a later `diff --checksum` can compare.
 * A source that states the whole object's CRC32C as well (GCS) is checked, into CRC32C parts,
 * by the parts' CRC32Cs combined (hashing.ts), with no MD5 chained: a resumed copy needs no
 * hash state either, since its committed parts' CRC32Cs are recorded.
 *
 * A source that reports its part layout (an S3 multipart object) lets the bytes read be checked
 * against the source part by part instead of by a whole-object MD5:
 * - into a destination whose parts carry MD5s (Azure), parts are the source's parts, and the
 *   part MD5s the destination needs also prove, by the MD5 of their MD5s (S3's ETag), that the
 *   bytes read are the source's; no whole-object MD5 is chained (none is stored either: the
 *   source has none to compare with, as rclone and azcopy leave such a blob);
 * - into one whose parts carry CRC32Cs (S3, GCS), from a source that kept each part's CRC32C,
 *   a part is a run of whole source parts, each checked against its CRC32C (hardware-fast; the
 *   service's record of the part, asked If-Match the ETag, so a changed object fails the check).
 * With the source's whole MD5 known, no whole-object MD5 is chained then (into CRC32C parts the
 * layout is used only then). A layout that does not check out (S3 does not promise equal
 * parts) is set aside for that object, which is copied again the usual way.
 *
 * A destination that needs the MD5 at the start (S3) from a source that lacks it (a local file)
 * gets one pass before the upload: the MD5 and every part's CRC32C. Parts then go with those
 * CRC32Cs, so the service refuses bytes that changed since, and no MD5 is chained during the
 * upload. A restart of such an upload has no chained state: it reads its committed parts once
 * more to hash them (never sending them again).
 */
import pLimit from "p-limit";
import type { Adapter, ObjectInfo, PartChecksum, PartLayout } from "../adapters/types.js";
import type { CheckpointStore, UploadRecord, WorkItem } from "../checkpoints/types.js";
import { Interrupted, MigrateError, toMigrateError } from "./errors.js";
import { MD5_LANES, Md5Batch, isMd5State, md5Continue, md5Finish, warmHashThread, type BatchedMd5 } from "./hash-thread.js";
import { fillFrom } from "./fill.js";
import { combinedCrc32cBase64, crc32cBase64, md5OfPartMd5s } from "./hashing.js";
import { BufferPool, ByteBudget } from "./memory.js";
import { withRetry, type RetryPolicy } from "./retry.js";

export interface MultipartSettings {
  /** Objects at least this big go in parts; unset: the destination's default (else 64 MiB). */
  threshold?: number;
  /**
   * Preferred part size; unset: the destination's default (else 16 MiB). Raised when the object
   * would need more parts than the service allows.
   */
  partSize?: number;
  /** Parts in flight per object. */
  partConcurrency: number;
  /** Cap on bytes buffered for parts, all objects together. */
  maxMemory: number;
}

export interface MultipartHooks {
  /** Bytes sent to the destination (negative: a failed attempt's bytes taken back). */
  onBytes(n: number): void;
  /** The run is stopping: finish parts in flight, start no more. */
  shouldStop(): boolean;
  retry: RetryPolicy;
  /** A part's read or upload is being retried. */
  onRetry?(key: string, err: MigrateError, attempt: number, delayMs: number): void;
}

const MiB = 1024 * 1024;
const DEFAULT_THRESHOLD = 64 * MiB;
const DEFAULT_PART_SIZE = 16 * MiB;
/**
 * Bytes of parts read ahead of those uploading, per object: enough to hide a read's latency
 * (8 MiB parts: 4 ahead; 64 MiB: 1), not a second round of big parts in memory (with 4 × 64 MiB
 * ahead, 1 GiB S3→GCS peaked at 651 MB RSS against 366 MB).
 */
const READ_AHEAD_BYTES = 32 * MiB;
/**
 * Parts that carry MD5s may read further ahead, up to the hashing thread's lanes (MD5_LANES),
 * so their MD5s are hashed side by side: 8 × 8 MiB in x8 lanes cost about what 4 do in x4.
 */
const MD5_READ_AHEAD_BYTES = 64 * MiB;
/** Part reads in flight at an object's start (see `reading` in MultipartCopier.copy). */
const READS_AT_START = 2;

/** The part size for an object: the preferred size, within the service's limits. */
export function choosePartSize(size: number, preferred: number, limits: { minPartSize: number; maxPartSize: number; maxParts: number }): number {
  let part = Math.max(preferred, limits.minPartSize, Math.ceil(size / limits.maxParts));
  if (part > MiB) part = Math.ceil(part / MiB) * MiB;
  return Math.min(part, limits.maxPartSize);
}

export class MultipartCopier {
  readonly budget: ByteBudget;
  /** Reusable memory for parts, lent also to objects read whole (see Copier.copySingle). */
  readonly buffers: BufferPool;
  /** Objects whose source part layout did not check out: copied without it from then on. */
  private readonly layoutRefused = new Set<string>();

  constructor(
    private readonly source: Adapter,
    private readonly destination: Adapter,
    private readonly store: CheckpointStore,
    private readonly settings: MultipartSettings,
    private readonly hooks: MultipartHooks,
  ) {
    this.budget = new ByteBudget(settings.maxMemory);
    this.buffers = new BufferPool(settings.maxMemory);
  }

  /** Whether an object of this size goes in parts here. */
  applies(size: number): boolean {
    const caps = this.destination.capabilities.multipart;
    const threshold = this.settings.threshold ?? caps?.defaultThreshold ?? DEFAULT_THRESHOLD;
    return Boolean(this.destination.multipart && caps && this.source.capabilities.readRange && size >= threshold);
  }

  /** Copy one large object, continuing a recorded upload if there is one. Returns its size. */
  async copy(item: WorkItem): Promise<number> {
    const steps = this.destination.multipart!;
    const caps = this.destination.capabilities.multipart!;
    // Parts into MD5 destinations are hashed on the hashing thread: it boots while we stat and start.
    if ((caps.partChecksum ?? "md5") === "md5") warmHashThread();
    const info = await this.source.stat(item.key);
    const via = await this.sourceLayout(item.key, info);
    const partSize = via?.partSize ?? choosePartSize(info.size, this.settings.partSize ?? caps.defaultPartSize ?? DEFAULT_PART_SIZE, caps);
    const partCount = Math.max(1, Math.ceil(info.size / partSize));
    const { upload, partCrc32c } = await this.uploadFor(item.key, info, partSize);
    // A source that states the whole object's CRC32C and MD5 (GCS), into parts that carry
    // CRC32Cs: the parts' CRC32Cs, combined, check the bytes read against the source's.
    const byCombinedCrc = info.crc32c !== undefined && info.md5 !== undefined && caps.partChecksum === "crc32c";
    // The whole MD5 is already known and the bytes read are checked another way: by the pass
    // before the upload (its CRC32Cs go with the parts), against the source's layout, or by
    // the combined CRC32C.
    const knownMd5 = partCrc32c || (via && info.md5) || byCombinedCrc ? info.md5 : undefined;
    // The whole-object MD5 is chained only where nothing else checks the bytes read, or where
    // it is all the destination keeps of them. Parts checked against the source's layout by
    // their MD5s need none: it would only be stored, and as one stream in part order it would
    // cap the object at one core's MD5 speed (S3→Azure, 1 GiB: a quarter of the copy's CPU).
    const chainMd5 = !knownMd5 && via?.check !== "md5";
    if (chainMd5) warmHashThread();
    // Each source part read is checked against its CRC32C (destination parts carry CRC32Cs).
    const checkedPartSize = via?.check === "crc32c" ? via.layout.partSize : undefined;

    const committed = new Map(upload.parts.map((p) => [p.partNumber, p]));
    // The whole-object MD5, advanced part by part in order on the hashing thread.
    let hashState = upload.hashState && upload.hashedParts > 0 && isMd5State(upload.hashState) ? upload.hashState : undefined;
    let hashedUpTo = hashState ? upload.hashedParts : 0;
    let bytesDone = [...committed.values()].reduce((n, p) => n + p.size, 0);
    this.store.progress(item.id, bytesDone, committed.size, partCount);

    // Parts are hashed strictly in order: part n waits for part n-1's turn. Once a part fails,
    // turns will not come: every waiting part is failed too, so the upload settles.
    const turns = new Map<number, { go(): void; fail(e: unknown): void }>();
    let broken: unknown;
    const waitTurn = (n: number) =>
      broken !== undefined ? Promise.reject(broken)
      : n === hashedUpTo + 1 ? Promise.resolve()
      : new Promise<void>((go, fail) => turns.set(n, { go, fail }));
    const passTurn = (n: number) => {
      hashedUpTo = n;
      this.store.saveHashState(item.key, n, hashState!);
      turns.get(n + 1)?.go();
      turns.delete(n + 1);
    };
    const breakTurns = (err: unknown) => {
      broken ??= err;
      for (const t of turns.values()) t.fail(broken);
      turns.clear();
    };

    // Up to partConcurrency parts upload at once, and a few more are read ahead meanwhile:
    // with each part read, then sent, in turn, the destination waited on the reads (S3→Azure,
    // 1 GiB: Azurite busy ~90 % of the run against ~108 % under rclone's 16 blocks in flight).
    // Parts that carry MD5s read ahead enough to fill the MD5 lanes.
    const partsCarryMd5 = !partCrc32c && caps.partChecksum !== "crc32c";
    const [aheadParts, aheadBytes] = partsCarryMd5
      ? [Math.max(this.settings.partConcurrency, MD5_LANES), MD5_READ_AHEAD_BYTES]
      : [this.settings.partConcurrency, READ_AHEAD_BYTES];
    const ahead = Math.min(aheadParts, Math.max(1, Math.floor(aheadBytes / partSize)));
    const held = pLimit(this.settings.partConcurrency + ahead);
    const sending = pLimit(this.settings.partConcurrency);
    // Reads start narrow and widen by one as each completes, up to every part held: all of
    // them started at once share the source's bandwidth and finish together, so the first
    // upload waited for the whole first round and its MD5s (S3→Azure, 1 GiB: first Put Block
    // ~265 ms after the object's HEAD, against ~40 ms for one 8 MiB read and its MD5).
    const reading = pLimit(Math.min(READS_AT_START, this.settings.partConcurrency + ahead));
    const widen = () => {
      reading.concurrency = Math.min(this.settings.partConcurrency + ahead, reading.concurrency + 1);
    };
    // Part MD5s wait for parts read after them, to be hashed together (see Md5Batch), in
    // batches no bigger than the parts read ahead: no more can wait while every upload slot is
    // busy, and a batch that can never fill would make each part wait for its MD5 in its slot.
    const md5s = new Md5Batch(Math.min(MD5_LANES, ahead));
    const work: Promise<void>[] = [];
    for (let n = 1; n <= partCount; n++) {
      const needsHash = chainMd5 && n > hashedUpTo;
      if (!needsHash && committed.has(n)) continue;
      const start = (n - 1) * partSize;
      const length = Math.min(partSize, info.size - start);
      work.push(
        held(async () => {
          if (this.hooks.shouldStop()) {
            breakTurns(new Interrupted(item.key));
            throw new Interrupted(item.key);
          }
          await this.budget.acquire(length);
          const body = this.buffers.take(length);
          let settled: Promise<unknown> = Promise.resolve();
          let batched: BatchedMd5 | undefined;
          try {
            // Asked while the part is read; a failure is taken when awaited (not unhandled if the read fails first).
            const sourceParts = checkedPartSize ? this.sourcePartChecksums(item.key, info, checkedPartSize, start, length) : undefined;
            sourceParts?.catch(() => undefined);
            await reading(() => this.readPart(item.key, start, body));
            widen();
            if (checkedPartSize && sourceParts) this.checkSourceParts(item.key, body, start, checkedPartSize, await sourceParts);
            // The checksum the part goes with; a committed part, read again only for the
            // whole-object MD5, needs none.
            let checksum: (() => Promise<string>) | undefined;
            if (!committed.has(n)) {
              const known = partCrc32c?.[n - 1] ?? (caps.partChecksum === "crc32c" ? crc32cBase64(body) : undefined);
              if (known !== undefined) checksum = () => Promise.resolve(known);
              else checksum = (batched = md5s.add(body)).take;
            }
            // The whole-object MD5 advances in part order beside the upload, which need not wait for it.
            const chained = needsHash
              ? (async () => {
                  await waitTurn(n);
                  hashState = await md5Continue(hashState, body);
                  passTurn(n);
                })()
              : undefined;
            settled = Promise.all([batched?.result, chained].map((p) => p?.catch(() => undefined)));
            if (checksum) {
              let partSum = "";
              const etag = await sending(async () => {
                // A part read ahead is not sent once the run is stopping: resume sends it.
                if (this.hooks.shouldStop()) throw new Interrupted(item.key);
                partSum = await checksum();
                return withRetry(this.hooks.retry, async () => {
                  this.hooks.onBytes(length);
                  try {
                    return await steps.uploadPart(item.key, upload.uploadId, n, body, partSum);
                  } catch (err) {
                    this.hooks.onBytes(-length);
                    throw err;
                  }
                }, this.retryHooks(item.key));
              });
              const part = { partNumber: n, size: length, checksum: partSum, etag };
              this.store.savePart(item.key, part);
              committed.set(n, part);
              bytesDone += length;
              this.store.progress(item.id, bytesDone, committed.size, partCount);
            }
            await chained;
          } catch (err) {
            breakTurns(err);
            throw err;
          } finally {
            // A hash still reading the buffer must finish before it is reused; one not asked yet never will.
            batched?.drop();
            await settled;
            this.buffers.give(body);
            this.budget.release(length);
          }
        }),
      );
    }
    const outcomes = await Promise.allSettled(work);
    const failure = outcomes.find((o): o is PromiseRejectedResult => o.status === "rejected");
    if (failure) {
      const err = toMigrateError(failure.reason);
      if (!err.temporary && !(err instanceof Interrupted) && err.kind !== "Integrity") {
        // A permanent failure: this upload cannot be finished, so it must not be left billed.
        await this.abandon(item.key, upload.uploadId);
        if (err.kind === "ConditionNotMatch" && via?.check === "crc32c") {
          // A source part's checksum, asked If-Match the listed ETag: the object changed since.
          // Its parts already sent are gone with the upload; the retry copies the new version.
          throw new MigrateError("Integrity", `${item.key}: changed at the source while being copied; copying it again`, { temporary: true, cause: err });
        }
      } else if (partCrc32c && err.kind === "Integrity") {
        // The source changed since its digest pass: parts already sent hold the old bytes.
        await this.abandon(item.key, upload.uploadId);
      }
      throw err;
    }

    const parts = [...committed.values()].sort((a, b) => a.partNumber - b.partNumber);
    if (via?.check === "md5") {
      const read = md5OfPartMd5s(parts.map((p) => p.checksum));
      if (read !== via.layout.md5OfPartMd5s) {
        this.layoutRefused.add(item.key);
        await this.abandon(item.key, upload.uploadId);
        throw new MigrateError(
          "Integrity",
          `${item.key}: the ${partCount} parts read (MD5 of MD5s ${read}) do not match the source's ${via.layout.md5OfPartMd5s}; copying it again, hashed whole`,
          { temporary: true },
        );
      }
    }
    if (byCombinedCrc) {
      const read = combinedCrc32cBase64(parts.map((p) => ({ crc32c: p.checksum, size: p.size })));
      if (read !== info.crc32c) {
        await this.abandon(item.key, upload.uploadId);
        throw new MigrateError("Integrity", `${item.key}: CRC32C of bytes read ${read} differs from source's ${info.crc32c}`, { temporary: true });
      }
    }
    const wholeMd5 = knownMd5 ?? (chainMd5 ? await md5Finish(hashState) : undefined);
    if (info.md5 && info.md5 !== wholeMd5) {
      await this.abandon(item.key, upload.uploadId);
      throw new MigrateError("Integrity", `${item.key}: md5 of bytes read ${wholeMd5} differs from source's ${info.md5}`, { temporary: true });
    }
    let result;
    try {
      result = await steps.completeUpload(item.key, upload.uploadId, parts, info, wholeMd5);
    } catch (raw) {
      const err = toMigrateError(raw);
      if (err.temporary || err.scope === "run") throw err;
      // The service refuses parts we recorded as committed (seen: a stalled duplicate of a part
      // request landing late and replacing it). This upload cannot be finished: start over.
      await this.abandon(item.key, upload.uploadId);
      throw new MigrateError("Integrity", `${item.key}: the upload could not be completed (${err.message}); starting it again`, { temporary: true, cause: err });
    }
    this.store.deleteUpload(item.key);
    if (result.size !== info.size) {
      throw new MigrateError("Integrity", `${item.key}: destination stored ${result.size} bytes, expected ${info.size}`, { temporary: true });
    }
    if (result.md5 && wholeMd5 && result.md5 !== wholeMd5) {
      throw new MigrateError("Integrity", `${item.key}: destination md5 ${result.md5} differs from sent ${wholeMd5}`, { temporary: true });
    }
    return info.size;
  }

  /**
   * The source's part layout and the destination part size that follows it, when reading along
   * it checks the bytes read: into MD5 parts (one source part each), or into CRC32C parts (whole
   * source parts, as many as fit the destination's preferred part size) from a source that kept
   * part CRC32Cs and whose whole MD5 is known. Only when the user set no part size, the parts fit
   * the destination's limits and half the memory budget, and no upload under way has another
   * part size.
   */
  private async sourceLayout(key: string, info: ObjectInfo): Promise<{ layout: PartLayout; partSize: number; check: "md5" | "crc32c" } | undefined> {
    const caps = this.destination.capabilities.multipart!;
    const check = caps.partChecksum ?? "md5";
    if (this.settings.partSize || !this.source.partLayout || this.layoutRefused.has(key)) return undefined;
    if (check === "crc32c" && (!info.md5 || !this.source.partChecksum)) return undefined;
    const layout = await this.source.partLayout(key, info);
    if (!layout || (check === "crc32c" && !layout.partCrc32c)) return undefined;
    const group = check === "md5" ? 1 : Math.max(1, Math.floor((caps.defaultPartSize ?? DEFAULT_PART_SIZE) / layout.partSize));
    const partSize = layout.partSize * group;
    const recorded = this.store.getUpload(key);
    const fits =
      partSize >= caps.minPartSize && partSize <= caps.maxPartSize && Math.ceil(info.size / partSize) <= caps.maxParts &&
      partSize <= this.settings.maxMemory / 2 && layout.parts === Math.max(1, Math.ceil(info.size / layout.partSize)) &&
      (!recorded || recorded.partSize === partSize);
    return fits ? { layout, partSize, check } : undefined;
  }

  /**
   * What the source recorded for each of its parts in the `length` bytes from `start`. A
   * ConditionNotMatch error if the object changed since `info`.
   */
  private sourcePartChecksums(key: string, info: ObjectInfo, sourcePartSize: number, start: number, length: number): Promise<(PartChecksum | undefined)[]> {
    const first = start / sourcePartSize + 1;
    const count = Math.ceil(length / sourcePartSize);
    return Promise.all(
      Array.from({ length: count }, (_, i) =>
        withRetry(this.hooks.retry, () => this.source.partChecksum!(key, first + i, info), this.retryHooks(key)),
      ),
    );
  }

  /**
   * The bytes read against the source's parts: a part of another size means unequal parts (the
   * layout is set aside and the object copied again the usual way); another CRC32C means bytes
   * that are not the source's (read again).
   */
  private checkSourceParts(key: string, body: Buffer, start: number, sourcePartSize: number, recorded: (PartChecksum | undefined)[]): void {
    recorded.forEach((part, i) => {
      const n = start / sourcePartSize + 1 + i;
      const from = i * sourcePartSize;
      const length = Math.min(sourcePartSize, body.length - from);
      if (!part || part.size !== length) {
        this.layoutRefused.add(key);
        throw new MigrateError(
          "Integrity",
          `${key}: source part ${n} is ${part ? `${part.size} bytes, not ${length}` : "without a CRC32C"}; copying it again, hashed whole`,
          { temporary: true },
        );
      }
      const read = crc32cBase64(body.subarray(from, from + length));
      if (read !== part.crc32c) {
        throw new MigrateError("Integrity", `${key}: bytes read for source part ${n} have CRC32C ${read}, the source's is ${part.crc32c}`, { temporary: true });
      }
    });
  }

  /**
   * The recorded upload if it still fits this object; otherwise abort it and start a new one.
   * `partCrc32c`: each part's CRC32C from the pass that found the MD5 for a new upload.
   */
  private async uploadFor(key: string, info: ObjectInfo, partSize: number): Promise<{ upload: UploadRecord; partCrc32c?: string[] }> {
    const recorded = this.store.getUpload(key);
    const partChecksum = this.destination.capabilities.multipart?.partChecksum ?? "md5";
    // An upload whose parts carry another kind of checksum (started by an older cloudmigrate)
    // cannot be completed with parts of this kind: it starts again.
    const fits = recorded && recorded.size === info.size && recorded.mtime === info.mtime && recorded.partSize === partSize;
    if (fits && recorded.partChecksum === partChecksum) return { upload: recorded };
    if (recorded) await this.abandon(key, recorded.uploadId);
    let partCrc32c: string[] | undefined;
    if (!info.md5 && this.destination.capabilities.multipart?.md5AtStart) {
      // Cheaper than the alternative (the service copying the object onto itself to add it),
      // and the parts read later are then checked against it end to end.
      if (partChecksum === "crc32c" && this.source.digestParts) {
        const d = await this.source.digestParts(key, partSize);
        if (d.partCrc32c.length !== Math.max(1, Math.ceil(info.size / partSize))) {
          throw new MigrateError("Integrity", `${key}: changed size while being read`, { temporary: true });
        }
        ({ md5: info.md5, partCrc32c } = d);
      } else if (this.source.computeMd5) info.md5 = await this.source.computeMd5(key);
    }
    const uploadId = await this.destination.multipart!.startUpload(key, info, partSize);
    const fresh = { key, uploadId, partSize, size: info.size, mtime: info.mtime, partChecksum };
    this.store.saveUpload(fresh);
    return { upload: { ...fresh, parts: [], hashedParts: 0 }, partCrc32c };
  }

  private async abandon(key: string, uploadId: string): Promise<void> {
    await this.destination.multipart!.abortUpload(key, uploadId).catch(() => undefined);
    this.store.deleteUpload(key);
  }

  /** Fill `body` with the part at `start`; fewer or more bytes is a temporary Integrity error. */
  private async readPart(key: string, start: number, body: Buffer): Promise<void> {
    const length = body.length;
    await withRetry(this.hooks.retry, async () => {
      const got = this.source.readInto
        ? await this.source.readInto(key, start, body)
        : await fillFrom(await this.source.read(key, { start, end: start + length - 1 }), body, key);
      if (got !== length) throw new MigrateError("Integrity", `${key}: ranged read returned ${got} of ${length} bytes`, { temporary: true });
    }, this.retryHooks(key));
  }

  private retryHooks(key: string) {
    return {
      shouldStop: this.hooks.shouldStop,
      onRetry: (err: MigrateError, attempt: number, delayMs: number) => this.hooks.onRetry?.(key, err, attempt, delayMs),
    };
  }
}
