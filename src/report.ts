/**
 * Reports: the plan (dry run / diff) or the outcome of a run, as a terminal summary and, with
 * --report FILE, every key with its action and reason as JSON, NDJSON or CSV (by extension), or
 * rclone's combined format (.txt). Rows are streamed from the store, never held whole.
 *
 * Symbols follow rclone's combined report: + new, * differs, = same, - only at destination,
 * ! error.
 */
import fs from "node:fs";
import path from "node:path";
import type { Action, Counts, ObjectRecord } from "../checkpoints/types.js";
import { usageError } from "./errors.js";
import { formatBytes, formatCount } from "./format.js";

export type ReportFormat = "json" | "ndjson" | "csv" | "txt";

export function reportFormat(file: string): ReportFormat {
  const ext = path.extname(file).toLowerCase();
  if (ext === ".json") return "json";
  if (ext === ".ndjson" || ext === ".jsonl") return "ndjson";
  if (ext === ".csv") return "csv";
  if (ext === ".txt" || ext === ".log") return "txt";
  throw usageError(`--report ${file}: unknown report format "${ext}" (use .json, .ndjson, .csv or .txt)`);
}

export function symbolOf(r: Pick<ObjectRecord, "action" | "state" | "error">): string {
  if (r.state === "failed" || r.error) return "!";
  switch (r.action) {
    case "copy":
      return "+";
    case "update":
      return "*";
    case "skip":
      return "=";
    default:
      return "-";
  }
}

export interface ReportRow {
  symbol: string;
  action: Action;
  key: string;
  size: number;
  reason: string;
  state: string;
  error?: string;
  attempts: number;
  partsDone?: number;
  partsTotal?: number;
}

function toRow(r: ObjectRecord, dryRun: boolean): ReportRow {
  const row: ReportRow = {
    symbol: symbolOf(r),
    action: r.action,
    key: r.key,
    size: r.size,
    reason: r.reason,
    // In a dry run nothing was done: the state is what the plan says.
    state: dryRun ? (r.error ? "error" : "planned") : r.state,
    attempts: r.attempts,
  };
  if (r.error) row.error = r.error;
  if (r.partsTotal) {
    row.partsDone = r.partsDone;
    row.partsTotal = r.partsTotal;
  }
  return row;
}

export interface ReportMeta {
  kind: "plan" | "run";
  source: string;
  destination: string;
  job?: string;
  counts: Counts;
}

const CSV_COLUMNS = ["symbol", "action", "key", "size", "reason", "state", "error", "attempts"] as const;

function csvCell(v: unknown): string {
  const s = v === undefined ? "" : String(v);
  return /[",\r\n]/.test(s) || /^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Write the report file. Returns the number of rows written. */
export async function writeReport(file: string, meta: ReportMeta, rows: Iterable<ObjectRecord>): Promise<number> {
  const format = reportFormat(file);
  const out = fs.createWriteStream(file);
  const write = (s: string) =>
    out.write(s) ? Promise.resolve() : new Promise<void>((r) => out.once("drain", () => r()));
  const dryRun = meta.kind === "plan";
  let n = 0;
  if (format === "json") await write(`{"meta":${JSON.stringify(meta)},"objects":[\n`);
  if (format === "csv") await write(CSV_COLUMNS.join(",") + "\n");
  for (const r of rows) {
    const row = toRow(r, dryRun);
    if (format === "json") await write((n ? ",\n" : "") + JSON.stringify(row));
    else if (format === "ndjson") await write(JSON.stringify(row) + "\n");
    else if (format === "csv") await write(CSV_COLUMNS.map((c) => csvCell(row[c])).join(",") + "\n");
    else await write(`${row.symbol} ${row.key}\n`);
    n++;
  }
  if (format === "json") await write("\n]}\n");
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return n;
}

/** Read a report back (tests, and comparing a dry run with a run). */
export function readReportRows(file: string): ReportRow[] {
  const text = fs.readFileSync(file, "utf8");
  const format = reportFormat(file);
  if (format === "json") return (JSON.parse(text) as { objects: ReportRow[] }).objects;
  if (format === "ndjson") return text.split("\n").filter(Boolean).map((l) => JSON.parse(l) as ReportRow);
  throw new Error(`readReportRows: ${format} not supported`);
}

const LABELS: Record<Action, string> = {
  copy: "+ copy  ",
  update: "* update",
  skip: "= same  ",
  extra: "- extra ",
  delete: "- delete",
};

/** The per-action table for a plan. */
export function planSummary(counts: Counts, deleteExtras: boolean): string[] {
  const lines: string[] = [];
  for (const action of ["copy", "update", "skip", "extra", "delete"] as Action[]) {
    const c = counts.byAction[action];
    if (!c.objects && action !== "copy") continue;
    let note = "";
    if (action === "extra") note = deleteExtras ? "" : "  (kept; --delete removes them)";
    if (action === "skip") note = "  (unchanged)";
    lines.push(`  ${LABELS[action]} ${formatCount(c.objects).padStart(10)} objects ${formatBytes(c.bytes).padStart(11)}${note}`);
  }
  if (counts.byState.failed.objects) {
    lines.push(`  ! error  ${formatCount(counts.byState.failed.objects).padStart(10)} objects  (cannot be carried out; see the report)`);
  }
  return lines;
}

/** Whether a plan found anything that differs between source and destination. */
export function hasDifferences(counts: Counts): boolean {
  const a = counts.byAction;
  return a.copy.objects + a.update.objects + a.extra.objects + a.delete.objects > 0;
}
