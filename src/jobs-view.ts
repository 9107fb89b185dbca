/**
 * Commands that only read job state: `migrate jobs` and `migrate status`.
 */
import type { Counts, JobRecord } from "../checkpoints/types.js";
import { JobDirectory } from "../checkpoints/jobs.js";
import { ExitCode } from "./errors.js";
import { planSummary } from "./report.js";
import { formatBytes, formatCount, plural } from "./format.js";
import { describeOptions } from "./migrate.js";
import type { Output } from "./output.js";

function jobLine(job: JobRecord, counts?: Counts): string {
  const done = counts ? ` ${formatCount(counts.byState.done.objects)}/${formatCount(counts.byState.done.objects + counts.byState.pending.objects + counts.byState.failed.objects)} done` : "";
  return `${job.id}  ${job.status.padEnd(11)} ${new Date(job.updatedAt).toISOString()}${done}  ${job.source} → ${job.destination}`;
}

/** `migrate jobs`: every job in the state directory. */
export function listJobs(stateDir: string, out: Output): number {
  const jobs = new JobDirectory(stateDir);
  const all = jobs.list();
  if (!all.length) {
    out.info(`No jobs in ${jobs.dir}.`);
    return ExitCode.Ok;
  }
  for (const l of all) {
    if (!l.job) {
      out.info(`${l.id}  unreadable   ${l.problem}`);
      out.event("job", { id: l.id, problem: l.problem });
      continue;
    }
    out.info(jobLine(l.job));
    out.event("job", { ...l.job });
  }
  return ExitCode.Ok;
}

/** `migrate status [job]`: counts, failures with their errors, large objects' part progress. */
export function status(jobArg: string | undefined, stateDir: string, out: Output): number {
  const jobs = new JobDirectory(stateDir);
  const id = jobArg ? jobs.resolve(jobArg) : (jobs.latestUnfinished()?.id ?? latestAny(jobs));
  if (!id) {
    out.info(`No jobs in ${jobs.dir}.`);
    return ExitCode.Ok;
  }
  const store = jobs.open(id);
  try {
    const job = store.job;
    const counts = store.counts();
    out.info(`Job ${job.id}: ${job.source} → ${job.destination}`);
    out.info(`  status ${job.status}, runs ${job.runs}, plan ${job.planComplete ? "complete" : "incomplete"}, options ${describeOptions(job.options)}`);
    out.info(`  updated ${new Date(job.updatedAt).toISOString()}, created ${new Date(job.createdAt).toISOString()}`);
    for (const line of planSummary(counts, job.options.delete)) out.info(line);
    const s = counts.byState;
    out.info(`  state: ${formatCount(s.done.objects)} done, ${formatCount(s.pending.objects)} pending (${formatBytes(counts.pendingBytes)}), ${formatCount(s.failed.objects)} failed`);
    const failures: { key: string; error?: string; attempts: number }[] = [];
    const partial: { key: string; partsDone: number; partsTotal: number; bytesDone: number; size: number }[] = [];
    for (const r of store.rows()) {
      if (r.state === "failed" && failures.length < 50) failures.push({ key: r.key, error: r.error, attempts: r.attempts });
      if (r.state === "pending" && r.partsTotal) partial.push(r);
    }
    for (const f of failures) out.info(`  ! ${f.key}: ${f.error} (${plural(f.attempts, "attempt")})`);
    if (s.failed.objects > failures.length) out.info(`  … and ${formatCount(s.failed.objects - failures.length)} more failed`);
    for (const p of partial) out.info(`  ~ ${p.key}: ${p.partsDone}/${p.partsTotal} parts, ${formatBytes(p.bytesDone)} of ${formatBytes(p.size)}`);
    out.event("status", { job, counts, failures, partial });
    return ExitCode.Ok;
  } finally {
    store.close();
  }
}

function latestAny(jobs: JobDirectory): string | undefined {
  return jobs
    .list()
    .map((l) => l.job)
    .filter((j): j is JobRecord => j !== undefined)
    .sort((a, b) => b.updatedAt - a.updatedAt)[0]?.id;
}

