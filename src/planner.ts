/**
 * The planner: a streaming merge-join of the source and destination listings (both in key
 * order), deciding per key whether to copy, update, skip, keep or delete, and writing those rows
 * to the checkpoint store in batches. Memory is bounded by the batch and read-ahead sizes, never
 * by the listings.
 */
import { createRequire } from "node:module";
import type picomatchModule from "picomatch";
import type { Adapter, Capabilities, ObjectInfo } from "../adapters/types.js";
import type { Action, CheckpointStore, JobOptions, PlanRow } from "../checkpoints/types.js";
import { compareKeys } from "./keys.js";
import { MigrateError } from "./errors.js";
import { readAhead } from "./readahead.js";
import { listPagesOf } from "./listing.js";
import { defaultRetryPolicy, withRetry, type RetryPolicy } from "./retry.js";

export type CompareMode = JobOptions["compare"];

export interface Decision {
  action: Action;
  reason: string;
}

interface Side {
  info: ObjectInfo;
  caps: Capabilities;
}

/**
 * Compare one key present on both sides. Pure: checksums the listing lacks must be filled in
 * by the caller (see `fillChecksums`).
 *
 * default: sizes, then modification times. Where the destination keeps the source's mtime, they
 * must match; where it cannot (S3 listings give the upload time), the destination must not be
 * older than the source. Equal MD5s override an mtime difference.
 */
export function compareObjects(src: Side, dst: Side, mode: CompareMode): Decision {
  const s = src.info;
  const d = dst.info;
  if (s.size !== d.size) return { action: "update", reason: `size ${s.size} → ${d.size}` };
  if (mode === "size-only") return { action: "skip", reason: "same size" };
  const sameMd5 = s.md5 !== undefined && d.md5 !== undefined ? s.md5 === d.md5 : undefined;
  const sameCrc = s.crc32c !== undefined && d.crc32c !== undefined ? s.crc32c === d.crc32c : undefined;
  if (mode === "checksum") {
    if (sameMd5 === false) return { action: "update", reason: "md5 differs" };
    if (sameMd5 === true) return { action: "skip", reason: "same md5" };
    if (sameCrc === false) return { action: "update", reason: "crc32c differs" };
    if (sameCrc === true) return { action: "skip", reason: "same crc32c" };
    return { action: "skip", reason: "same size (no checksum both sides can give)" };
  }
  if (s.mtime === undefined || d.mtime === undefined) return { action: "skip", reason: "same size (no modified time)" };
  const tolerance = Math.max(src.caps.mtimePrecisionMs, dst.caps.mtimePrecisionMs, 1);
  const delta = s.mtime - d.mtime;
  const differs = dst.caps.preservesMtime ? Math.abs(delta) > tolerance : delta > tolerance;
  if (!differs) return { action: "skip", reason: "same size and modified time" };
  if (sameMd5 === true) return { action: "skip", reason: "same md5 (modified time differs)" };
  return {
    action: "update",
    reason: dst.caps.preservesMtime ? "modified time differs" : "source modified after destination",
  };
}

export interface Pair {
  src?: ObjectInfo;
  dst?: ObjectInfo;
}

/**
 * Pairs of objects with the same key, or one side alone, in key order, from listings in pages;
 * a batch at a time (what both sides' current pages decide).
 */
export async function* mergeJoin(src: AsyncIterable<ObjectInfo[]>, dst: AsyncIterable<ObjectInfo[]>): AsyncGenerator<Pair[]> {
  const s = new PageCursor(src, "source");
  const d = new PageCursor(dst, "destination");
  try {
    for (;;) {
      await Promise.all([s.fill(), d.fill()]);
      if (s.ended && d.ended) return;
      const pairs: Pair[] = [];
      // Until a side that has more runs out of its page.
      for (;;) {
        const a = s.head;
        const b = d.head;
        if ((a === undefined && !s.ended) || (b === undefined && !d.ended) || (a === undefined && b === undefined)) break;
        const order = a === undefined ? 1 : b === undefined ? -1 : compareKeys(a.key, b.key);
        if (order < 0) {
          pairs.push({ src: a });
          s.next();
        } else if (order > 0) {
          pairs.push({ dst: b });
          d.next();
        } else {
          pairs.push({ src: a, dst: b });
          s.next();
          d.next();
        }
      }
      if (pairs.length) yield pairs;
    }
  } catch (err) {
    // The error goes on at once, not after a listing with a request in flight has stopped.
    for (const c of [s, d]) c.close().catch(() => undefined);
    throw err;
  } finally {
    // Stopped early: the listings (and their read-ahead) stop too.
    await Promise.all([s.close(), d.close()]);
  }
}

/** A position in a paged listing, failing loudly if the listing is ever out of order (the join relies on it). */
class PageCursor {
  private readonly it: AsyncIterator<ObjectInfo[]>;
  private page: ObjectInfo[] = [];
  private at = 0;
  private last?: string;
  ended = false;

  constructor(
    pages: AsyncIterable<ObjectInfo[]>,
    private readonly side: string,
  ) {
    this.it = pages[Symbol.asyncIterator]();
  }

  /** The current object; undefined when the page is used up (fill() loads the next) or the listing ended. */
  get head(): ObjectInfo | undefined {
    return this.page[this.at];
  }

  /** Load pages until there is a current object or the listing has ended. */
  async fill(): Promise<void> {
    while (!this.ended && this.at >= this.page.length) {
      const n = await this.it.next();
      if (n.done) {
        this.ended = true;
        return;
      }
      this.page = n.value;
      this.at = 0;
      if (this.page.length && this.last !== undefined) this.check(this.last, this.page[0].key);
    }
  }

  /** Stop the listing, if it has not ended (at once: a second call resolves without waiting). */
  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await this.it.return?.();
  }

  /** Move past the current object. */
  next(): void {
    const key = this.page[this.at++].key;
    if (this.at < this.page.length) this.check(key, this.page[this.at].key);
    else this.last = key;
  }

  private check(prev: string, key: string): void {
    if (compareKeys(prev, key) >= 0) {
      throw new MigrateError("Unexpected", `${this.side} listing is not in key order ("${prev}" before "${key}")`, { scope: "run" });
    }
  }
}

export type KeyFilter = (key: string) => boolean;

/** Listing pages read ahead of the join, per side (a service's page is about 1,000 objects). */
const READ_AHEAD_PAGES = 8;
/** Decisions in flight at once while planning. */
const DECISION_WINDOW = 64;
/** Rows in the first transaction: a copier running alongside starts after these. */
const FIRST_BATCH = 256;

/**
 * rclone-like filters: a pattern without "/" matches a name at any depth ("*.jpg"); a pattern
 * with "/" matches the whole key ("photos/**"). Dotfiles match like any other name.
 */
export function makeFilter(include: string[], exclude: string[]): KeyFilter {
  const inc = include.length ? globSet(include) : undefined;
  const exc = exclude.length ? globSet(exclude) : undefined;
  return (key) => (!inc || inc(key)) && !(exc && exc(key));
}

function globSet(patterns: string[]): KeyFilter {
  // Loaded here, for runs with --include or --exclude only: 4-7 ms of every other start.
  const picomatch = createRequire(import.meta.url)("picomatch") as typeof picomatchModule;
  const byName = patterns.filter((p) => !p.includes("/"));
  const byPath = patterns.filter((p) => p.includes("/")).map((p) => p.replace(/^\//, ""));
  const name = byName.length ? picomatch(byName, { dot: true }) : undefined;
  const full = byPath.length ? picomatch(byPath, { dot: true }) : undefined;
  return (key) => Boolean((name && name(key.slice(key.lastIndexOf("/") + 1))) || (full && full(key)));
}

export interface PlanProgress {
  planned: number;
}

export interface PlanInput {
  source: Adapter;
  destination: Adapter;
  store: CheckpointStore;
  options: JobOptions;
  onProgress?: (p: PlanProgress) => void;
  /** Rows per transaction (the first is smaller, so copying can start early). */
  batchSize?: number;
  /** Rows just committed to the store: a copier running alongside may now claim them. */
  onRows?: (rows: readonly PlanRow[]) => void;
  /** Checked between rows: stop planning (the plan stays resumable). */
  shouldStop?: () => boolean;
  /** Retries for the few requests planning makes (a stat or checksum per same-size object). */
  retry?: RetryPolicy;
}

/**
 * List both sides, decide every key, write rows to the store. Resumable: planned keys are kept.
 * Returns false when stopped before the plan was whole.
 */
export async function plan(input: PlanInput): Promise<boolean> {
  const { source, destination, store, options } = input;
  const batchSize = input.batchSize ?? 2000;
  const keep = makeFilter(options.include, options.exclude);
  const resumeAfter = store.lastPlannedKey();
  const pending: PlanRow[] = [];
  let planned = 0;

  const flush = () => {
    if (!pending.length) return;
    store.addPlanRows(pending);
    planned += pending.length;
    input.onRows?.(pending);
    pending.length = 0;
    input.onProgress?.({ planned });
  };

  /** Add a row in key order; true when that wrote a batch. */
  const add = (row: PlanRow): boolean => {
    pending.push(row);
    if (pending.length < (planned ? batchSize : Math.min(batchSize, FIRST_BATCH))) return false;
    flush();
    return true;
  };
  // Most decisions need no I/O; those that do (a checksum, a source mtime) run up to
  // DECISION_WINDOW at a time, and rows are still written in key order.
  const window: Promise<PlanRow>[] = [];
  const take = async () => {
    add(await window.shift()!);
  };
  const srcList = readAhead(listPagesOf(source), READ_AHEAD_PAGES);
  const dstList = readAhead(listPagesOf(destination), READ_AHEAD_PAGES);
  for await (const pairs of mergeJoin(srcList, dstList)) {
    for (const pair of pairs) {
      const key = (pair.src ?? pair.dst)!.key;
      if (!keep(key)) continue;
      if (resumeAfter !== undefined && compareKeys(key, resumeAfter) <= 0) continue;
      // Most rows need no request: with no decision in flight ahead of them, they skip the window.
      const now = decideNow(pair, source, destination, options);
      if (now && !window.length) {
        if (add(now) && input.shouldStop?.()) return false;
        continue;
      }
      const decision = now
        ? Promise.resolve(now)
        : withRetry(input.retry ?? defaultRetryPolicy, () => decideWithRequests(pair.src!, pair.dst!, source, destination, options));
      decision.catch(() => undefined); // awaited in order below; don't report it unhandled meanwhile
      window.push(decision);
      if (window.length >= DECISION_WINDOW) {
        await take();
        if (input.shouldStop?.()) {
          while (window.length) await take();
          flush();
          return false;
        }
      }
    }
  }
  while (window.length) await take();
  flush();
  store.finishPlan();
  return true;
}

/** The row for two same-size objects (decideNow left them): compare, fetching what the mode needs. */
async function decideWithRequests(
  src: ObjectInfo,
  dst: ObjectInfo,
  source: Adapter,
  destination: Adapter,
  options: JobOptions,
): Promise<PlanRow> {
  if (options.compare === "checksum") await fillChecksums(src, dst, source, destination);
  if (options.compare === "default") await fillSourceMtime(src, dst, source, destination);
  const decision = compareObjects({ info: src, caps: source.capabilities }, { info: dst, caps: destination.capabilities }, options.compare);
  return sourceRow(src, decision.action, decision.reason);
}

const sourceRow = (src: ObjectInfo, action: Action, reason: string): PlanRow => ({
  key: src.key,
  action,
  reason,
  size: src.size,
  mtime: src.mtime,
  md5: src.md5,
});

/**
 * The row for a key decided without a request: on one side only, a key the destination cannot
 * hold, or sizes that differ. Undefined when same-size objects need comparing (which may stat).
 */
function decideNow(pair: Pair, source: Adapter, destination: Adapter, options: JobOptions): PlanRow | undefined {
  const { src, dst } = pair;
  if (!src) {
    const d = dst!;
    return options.delete
      ? { key: d.key, action: "delete", reason: "only at destination", size: d.size }
      : { key: d.key, action: "extra", reason: "only at destination", size: d.size };
  }
  const problem = destination.keyProblem?.(src.key);
  if (problem) return { ...sourceRow(src, "copy", "cannot exist at destination"), error: `cannot exist at destination: ${problem}` };
  if (!dst) return sourceRow(src, "copy", "missing at destination");
  if (src.size !== dst.size) {
    const decision = compareObjects({ info: src, caps: source.capabilities }, { info: dst, caps: destination.capabilities }, options.compare);
    return sourceRow(src, decision.action, decision.reason);
  }
  return undefined;
}

/**
 * A source whose listing gives the upload time rather than the mtime we preserve (S3), copied to
 * a destination that keeps mtimes: the destination holds the source's true mtime (from its
 * metadata), so compare against that. Costs one stat per same-size object, as rclone's default
 * does; equal MD5s on both sides make it unnecessary.
 */
async function fillSourceMtime(src: ObjectInfo, dst: ObjectInfo, source: Adapter, destination: Adapter): Promise<void> {
  if (source.capabilities.preservesMtime || !destination.capabilities.preservesMtime) return;
  if (src.md5 && dst.md5) return;
  try {
    const st = await source.stat(src.key);
    if (st.mtime !== undefined) src.mtime = st.mtime;
  } catch (err) {
    if (!(err instanceof MigrateError && err.kind === "NotFound")) throw err;
  }
}

/** For --checksum: compute MD5s a listing lacks, where one side can give an MD5 to compare with. */
async function fillChecksums(src: ObjectInfo, dst: ObjectInfo, source: Adapter, destination: Adapter): Promise<void> {
  if (src.md5 && dst.md5) return;
  if (src.crc32c && dst.crc32c) return;
  if (!src.md5 && source.computeMd5) src.md5 = await source.computeMd5(src.key);
  if (!dst.md5 && destination.computeMd5) dst.md5 = await destination.computeMd5(dst.key);
}
