/**
 * The effectful step: given parsed options, find or create the job, plan, copy, report.
 * Service-agnostic: adapters come from the registry, state from the checkpoint store.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Adapter, AdapterOptions, Location } from "../adapters/types.js";
import { createAdapter, locationContains, locationId, parseLocation } from "../adapters/index.js";
import { isWork, type CheckpointStore, type Counts, type JobOptions } from "../checkpoints/types.js";
import { SqliteCheckpoint } from "../checkpoints/sqlite.js";
import { JobDirectory, jobIdFor } from "../checkpoints/jobs.js";
import { ExitCode, describeError, usageError } from "./errors.js";
import { plan } from "./planner.js";
import { Copier, RowFeed, type RunResult } from "./copier.js";
import type { RetryPolicy } from "./retry.js";
import type { MultipartSettings } from "./multipart.js";
import { hasDifferences, planSummary, writeReport } from "./report.js";
import { BarProgress, LineProgress, silentProgress, type ProgressSink } from "./progress.js";
import { formatBytes, formatCount, formatDuration, plural } from "./format.js";
import type { Output } from "./output.js";
import { TokenBucket, withLimits, type AdaptiveLimit, type LimitSettings } from "./limits.js";

export interface RunSettings {
  concurrency: number;
  /** Requests per second per service. */
  tpsLimit?: number;
  /** Bytes per second, whole run. */
  bwLimit?: number;
  retry: RetryPolicy;
  multipart: MultipartSettings;
  progress: "auto" | "none";
  reportFile?: string;
  stateDir: string;
  requestTimeoutMs?: number;
}

export interface MigrateRequest {
  source: string;
  destination: string;
  options: JobOptions;
  fresh: boolean;
  /** "dry-run": plan and report only; "diff": the same, exit code says whether they differ. */
  mode: "run" | "dry-run" | "diff";
}

function adapterOptions(options: JobOptions, settings: RunSettings): AdapterOptions {
  return { ...options.endpoints, requestTimeoutMs: settings.requestTimeoutMs };
}

async function openPair(source: Location, destination: Location, opts: AdapterOptions, settings: RunSettings): Promise<[Adapter, Adapter]> {
  if (locationContains(source, destination) || locationContains(destination, source)) {
    const same = locationId(source) === locationId(destination);
    throw usageError(
      same
        ? `source and destination are the same location (${source.display})`
        : `${destination.display} and ${source.display} overlap: one lies inside the other`,
    );
  }
  const bandwidth = settings.bwLimit ? new TokenBucket(settings.bwLimit) : undefined;
  const limits = (): LimitSettings => ({
    retry: settings.retry,
    tps: settings.tpsLimit,
    bandwidth,
    // Objects in flight, growing to room for every object's parts while nothing is throttled.
    initialInFlight: settings.concurrency,
    maxInFlight: settings.concurrency * Math.max(1, settings.multipart.partConcurrency),
  });
  const src = withLimits(await createAdapter(source, opts), limits());
  const dst = withLimits(await createAdapter(destination, opts), limits());
  try {
    await Promise.all([src.check("source"), dst.check("destination")]);
  } catch (err) {
    await Promise.all([src.close?.(), dst.close?.()]);
    throw err;
  }
  return [src, dst];
}

function sameOptions(a: JobOptions, b: JobOptions): boolean {
  const pick = (o: JobOptions) => JSON.stringify([o.include, o.exclude, o.compare, o.delete]);
  return pick(a) === pick(b);
}

export function describeOptions(o: JobOptions): string {
  const parts = [`compare=${o.compare}`, `delete=${o.delete}`];
  if (o.include.length) parts.push(`include=${o.include.join(",")}`);
  if (o.exclude.length) parts.push(`exclude=${o.exclude.join(",")}`);
  return parts.join(" ");
}

export async function migrate(req: MigrateRequest, settings: RunSettings, out: Output): Promise<number> {
  const source = parseLocation(req.source);
  const destination = parseLocation(req.destination);
  const [src, dst] = await openPair(source, destination, adapterOptions(req.options, settings), settings);
  try {
    if (req.mode !== "run") return await dryRun(req, src, dst, settings, out);
    const jobs = new JobDirectory(settings.stateDir);
    const id = jobIdFor(locationId(source), locationId(destination));
    const release = jobs.lock(id);
    try {
      const store = await prepareJob(jobs, id, source, destination, req, dst, out);
      try {
        return await execute(store, src, dst, settings, out);
      } finally {
        store.close();
      }
    } finally {
      release();
    }
  } finally {
    await Promise.all([src.close?.(), dst.close?.()]);
  }
}

/** Find the pair's job: resume it if unfinished, start over if finished or --fresh. */
async function prepareJob(
  jobs: JobDirectory,
  id: string,
  source: Location,
  destination: Location,
  req: MigrateRequest,
  dst: Adapter,
  out: Output,
): Promise<SqliteCheckpoint> {
  const create = () =>
    jobs.create({ id, source: locationId(source), destination: locationId(destination), options: req.options });
  if (!jobs.exists(id)) return create();
  if (req.fresh) {
    await discardJob(jobs, id, dst, out);
    return create();
  }
  const store = jobs.open(id);
  const job = store.job;
  if (job.status === "done") {
    // A finished job: this is a new run over the same pair.
    store.close();
    jobs.remove(id);
    return create();
  }
  if (!sameOptions(job.options, req.options)) {
    store.close();
    throw usageError(
      `an unfinished job ${id} for this pair was started with other options (${describeOptions(job.options)}); ` +
        `run \`migrate resume ${id}\` to finish it, or add --fresh to start over with the new options`,
    );
  }
  out.info(`Resuming job ${id} (${job.status}, started ${new Date(job.createdAt).toISOString()}); --fresh starts over.`);
  out.event("resume", { job: id });
  return store;
}

/** --fresh: abort the old job's multipart uploads (so nothing is left to be billed), keep its file aside. */
async function discardJob(jobs: JobDirectory, id: string, dst: Adapter, out: Output): Promise<void> {
  let old: SqliteCheckpoint | undefined;
  try {
    old = jobs.open(id);
  } catch {
    /* unreadable: nothing we can abort from it */
  }
  if (old) {
    await abortUploads(old, dst, out, () => true);
    old.close();
  }
  const aside = jobs.setAside(id);
  if (aside) out.info(`Starting job ${id} afresh; the previous checkpoint is kept as ${aside}`);
}

/** Abort recorded multipart uploads that `which` selects, and forget them. */
export async function abortUploads(store: CheckpointStore, dst: Adapter, out: Output, which: (key: string) => boolean): Promise<void> {
  for (const u of store.uploads()) {
    if (!which(u.key)) continue;
    try {
      await dst.multipart?.abortUpload(u.key, u.uploadId);
    } catch (err) {
      out.error(`warning: could not abort the unfinished upload of ${u.key}: ${describeError(err)}`);
    }
    store.deleteUpload(u.key);
  }
}

async function dryRun(req: MigrateRequest, src: Adapter, dst: Adapter, settings: RunSettings, out: Output): Promise<number> {
  // The plan goes to a throwaway store: bounded memory, nothing left in the state dir.
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "cloudmigrate-plan-"));
  const store = SqliteCheckpoint.create(path.join(tmp, "plan.sqlite"), {
    id: "dry-run",
    source: src.display,
    destination: dst.display,
    options: req.options,
  });
  try {
    const progress = makeProgress(settings, out);
    await plan({ source: src, destination: dst, store, options: req.options, onProgress: (p) => progress.planning(p.planned), retry: settings.retry });
    progress.stop();
    const counts = store.counts();
    out.info(`${req.mode === "diff" ? "Differences" : "Plan (dry run, nothing changed)"}: ${src.display} → ${dst.display}`);
    for (const line of planSummary(counts, req.options.delete)) out.info(line);
    out.event("plan", { source: src.display, destination: dst.display, counts });
    if (settings.reportFile) {
      const n = await writeReport(settings.reportFile, { kind: "plan", source: src.display, destination: dst.display, counts }, store.rows());
      out.info(`Report: ${settings.reportFile} (${plural(n, "row")})`);
    }
    return hasDifferences(counts) || counts.byState.failed.objects ? ExitCode.Failures : ExitCode.Ok;
  } finally {
    store.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function makeProgress(settings: RunSettings, out: Output): ProgressSink {
  if (settings.progress === "none" || out.json) return silentProgress;
  if (process.stdout.isTTY) return new BarProgress(process.stdout);
  const interval = Number(process.env.MIGRATE_PROGRESS_INTERVAL_MS) || 5000;
  return new LineProgress((l) => out.info(l), interval);
}

/** Run a job from wherever it is: plan what is unplanned, copy what is pending. */
async function execute(store: SqliteCheckpoint, src: Adapter, dst: Adapter, settings: RunSettings, out: Output): Promise<number> {
  const started = Date.now();
  const job = store.job;
  const progress = makeProgress(settings, out);
  let copier: Copier | undefined;
  let stopRequested = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopRequested) {
      out.error(`${sig} again: stopping now. The checkpoint is consistent; \`migrate resume ${job.id}\` continues.`);
      process.exit(ExitCode.Interrupted);
    }
    stopRequested = true;
    out.error(`${sig}: finishing objects in flight, then stopping (again to stop at once)…`);
    copier?.stop();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    out.event("start", { job: job.id, source: src.display, destination: dst.display, run: job.runs + 1 });
    store.requeueFailed();
    store.startRun();
    out.info(`Job ${job.id}: ${src.display} → ${dst.display}`);
    const planning = !job.planComplete;
    if (!planning) store.setStatus("copying");
    // Planning and copying overlap: the copier takes rows as the planner commits them, so a
    // big listing does not hold up the first copy. (Safe with the listing still running: rows
    // are planned in key order, and a listing never returns keys behind its own cursor again.)
    const feed = new RowFeed();
    const pendingNow = store.counts();
    progress.start(pendingNow.byState.pending.objects, pendingNow.pendingBytes, planning);
    copier = new Copier(src, dst, store, {
      concurrency: settings.concurrency,
      retry: settings.retry,
      multipart: settings.multipart,
      onBytes: (n) => progress.bytes(n),
      onEvent: (e) => {
        if (e.type === "object") progress.objectDone();
        out.event(e.type, e);
      },
      moreRows: planning ? () => feed.next() : undefined,
    });
    if (stopRequested) copier.stop();
    const copying = copier; // a const for the closures below (`copier` is the signal handler's `let`)
    let planError: unknown;
    const planned: Promise<boolean> = planning
      ? plan({
          source: src,
          destination: dst,
          store,
          options: job.options,
          onRows: (rows) => {
            let objects = 0;
            let bytes = 0;
            for (const r of rows) {
              if (r.error) {
                // Refused at planning (a key the destination cannot hold): reported like any failure.
                out.event("object", { type: "object", key: r.key, action: r.action, state: "failed", bytes: 0, error: r.error });
                continue;
              }
              if (!isWork(r.action)) continue;
              objects++;
              if (r.action !== "delete") bytes += r.size;
            }
            progress.grow(objects, bytes);
            feed.notify();
          },
          shouldStop: () => stopRequested || copying.ending,
          retry: settings.retry,
        })
          .catch((err: unknown) => {
            planError = err;
            copying.stop();
            return false;
          })
          .finally(() => {
            progress.listed();
            feed.end();
          })
      : Promise.resolve(true);
    const [result, whole] = await Promise.all([copier.run(), planned]);
    progress.stop();
    if (planError !== undefined) throw planError;
    const counts = store.counts();
    for (const line of planSummary(counts, job.options.delete)) out.info(line);
    out.event("plan", { job: job.id, counts });
    return finish(store, result, counts, Date.now() - started, settings, src, dst, out, whole);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

async function finish(
  store: SqliteCheckpoint,
  result: RunResult,
  planned: Counts,
  elapsedMs: number,
  settings: RunSettings,
  src: Adapter,
  dst: Adapter,
  out: Output,
  planWhole: boolean,
): Promise<number> {
  const after = store.counts();
  const id = store.job.id;
  const failed = after.byState.failed.objects;
  const interrupted = result.interrupted || !planWhole;
  const status = result.fatal ? "failed" : interrupted ? "interrupted" : failed ? "failed" : "done";
  store.setStatus(after.byState.pending.objects && status === "done" ? "interrupted" : status);
  const rate = elapsedMs > 0 ? (result.copiedBytes / elapsedMs) * 1000 : 0;
  const unchanged = planned.byAction.skip.objects;
  const throttle = throttleNote(src, dst);
  if (throttle) out.info(throttle);
  out.info(
    `${status === "done" ? "Done" : "Stopped"} in ${formatDuration(elapsedMs)}: copied ${plural(result.copied, "object")} ` +
      `(${formatBytes(result.copiedBytes)}, ${formatBytes(rate)}/s, ${formatCount(Math.round(elapsedMs > 0 ? (result.copied / elapsedMs) * 1000 : 0))} objects/s), ${formatCount(unchanged)} unchanged, ` +
      `${formatCount(result.deleted)} deleted, ${formatCount(failed)} failed.`,
  );
  out.event("summary", {
    job: id,
    status,
    copied: result.copied,
    copiedBytes: result.copiedBytes,
    bytesSent: result.bytesSent,
    deleted: result.deleted,
    failed,
    unchanged,
    pending: after.byState.pending.objects,
    elapsedMs,
    lowestInFlight: { source: gateOf(src)?.floor, destination: gateOf(dst)?.floor },
  });
  if (settings.reportFile) {
    await writeReport(settings.reportFile, { kind: "run", source: src.display, destination: dst.display, job: id, counts: after }, store.rows());
    out.info(`Report: ${settings.reportFile}`);
  }
  if (result.fatal) {
    out.error(`error: ${describeError(result.fatal)}`);
    out.error(`Nothing more was attempted; fix that and run \`migrate resume ${id}\`.`);
    return ExitCode.Usage;
  }
  if (interrupted) {
    const what = planWhole ? `Interrupted; ${plural(after.byState.pending.objects, "object")} left` : "Interrupted while planning";
    out.info(`${what}. \`migrate resume ${id}\` continues.`);
    return ExitCode.Interrupted;
  }
  if (failed) {
    out.error(`${plural(failed, "object")} failed; \`migrate status ${id}\` lists them, \`migrate resume ${id}\` retries them.`);
    return ExitCode.Failures;
  }
  return ExitCode.Ok;
}

function gateOf(a: Adapter): AdaptiveLimit | undefined {
  return (a as Adapter & { concurrency?: AdaptiveLimit }).concurrency;
}

/** Say so when a service throttled us enough to cut the requests in flight. */
function throttleNote(src: Adapter, dst: Adapter): string | undefined {
  const notes: string[] = [];
  for (const [role, a] of [["source", src], ["destination", dst]] as const) {
    const g = gateOf(a);
    if (g?.cuts) notes.push(`${role} ${a.display} throttled us: requests in flight cut ${g.cuts} times, to ${g.floor} at worst`);
  }
  return notes.length ? `Note: ${notes.join("; ")}.` : undefined;
}

/** `migrate resume [job]`: the given job, or the most recent unfinished one. */
export async function resume(jobArg: string | undefined, settings: RunSettings, out: Output): Promise<number> {
  const jobs = new JobDirectory(settings.stateDir);
  let id: string;
  if (jobArg) id = jobs.resolve(jobArg);
  else {
    const latest = jobs.latestUnfinished();
    if (!latest) {
      out.info(`Nothing to resume: no unfinished job in ${jobs.dir}.`);
      return ExitCode.Ok;
    }
    id = latest.id;
  }
  const release = jobs.lock(id);
  let store: SqliteCheckpoint | undefined;
  let src: Adapter | undefined;
  let dst: Adapter | undefined;
  try {
    store = jobs.open(id);
    const job = store.job;
    if (job.status === "done") {
      out.info(`Job ${id} is already done (${job.source} → ${job.destination}).`);
      return ExitCode.Ok;
    }
    out.info(`Resuming job ${id}: ${job.source} → ${job.destination}`);
    [src, dst] = await openPair(parseLocation(job.source), parseLocation(job.destination), adapterOptions(job.options, settings), settings);
    return await execute(store, src, dst, settings, out);
  } finally {
    store?.close();
    await Promise.all([src?.close?.(), dst?.close?.()]);
    release();
  }
}

