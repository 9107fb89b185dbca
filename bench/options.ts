/**
 * Benchmark settings: workloads, routes and how hard to push, from argv and BENCH_* env vars.
 *
 *   --quick                 (BENCH_QUICK=1)      a ~3-minute smoke run: smaller workloads, 1 run
 *   --runs N                (BENCH_RUNS)         measured runs per tool (default: 3, and 7 for a case
 *                                                whose tools take under 30 s a round together,
 *                                                where one slow moment moves a median of 3 most;
 *                                                quick 1)
 *   --concurrency C         (BENCH_CONCURRENCY)  objects in flight, both tools (default 16)
 *   --workloads a,b         (BENCH_WORKLOADS)    small,medium,large,plan,resume (default all)
 *   --routes a,b            (BENCH_ROUTES)       fs-fs,fs-s3,s3-az,s3-gcs (default: these four), and
 *                                                gcs-s3,az-s3 (GCS and Azure as sources; only when named)
 *   --scale-objects N       (BENCH_SCALE_OBJECTS) objects for plan/resume (default 1,000,000)
 *   --no-sdk                                     skip the bare baselines (SDK loops; the fs→fs bare loop)
 *   --no-rclone                                  measure cloudmigrate only
 *   --no-warmup                                  no uncounted run before each case's measured rounds
 *   --s3-seed aws-cli|cloudmigrate               how the S3 source bucket is filled (default aws-cli:
 *                                                as `aws s3 cp` writes, 8 MiB parts and no "md5"
 *                                                metadata; cloudmigrate: by cloudmigrate itself, which
 *                                                stores every large object's whole MD5)
 *   --out DIR                                    results directory (default bench/results)
 *   --timeout S                                  kill one measured command after S seconds
 *   --case-budget S         (BENCH_CASE_BUDGET)  after 2 rounds, start another round of a
 *                                                workload × route only if it fits in S seconds
 *                                                (default 420: room for 3 rounds of the slowest
 *                                                cases, 1 GiB S3→GCS and 4 KiB S3→Azure, whose
 *                                                rclone runs take 70-110 s; a median of 2 is a mean)
 */
import { parseArgs } from "node:util";

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
/**
 * A case whose tools' runs take less than this a round, together (the lab's preparation of each
 * run not counted), gets `shortCaseRuns`. At the same engine code, medians of 3 and of 7 told
 * different stories: 10,000 × 4 KiB fs→fs (about 4 s a round) measured 1.65× and 1.79× rclone
 * as medians of 3 in two full runs, 1.25× and 1.28× as medians of 7 (rclone's own times varied
 * most); 1 GiB S3→Azure (about 22 s a round, three tools) 0.96× as a median of 3 in a full run,
 * 0.81× as a median of 7 the same day (one Azurite run in three or four is 30-50 % slower for
 * whichever tool). Cases over 30 s a round (4 KiB into Azure and GCS, 1 GiB into GCS) keep 3.
 */
export const SHORT_ROUND_MS = 30_000;

export type WorkloadName = "small" | "medium" | "large";
export type RouteName = "fs-fs" | "fs-s3" | "s3-az" | "s3-gcs" | "gcs-s3" | "az-s3";
export type ScaleName = "plan" | "resume";
export type S3Seed = "aws-cli" | "cloudmigrate";

export interface Workload {
  name: WorkloadName;
  count: number;
  size: number;
}

/** The routes the benchmark runs by default (the four). */
export const ALL_ROUTES: RouteName[] = ["fs-fs", "fs-s3", "s3-az", "s3-gcs"];
/** Routes run only when named: reading out of GCS and Azure. */
export const EXTRA_ROUTES: RouteName[] = ["gcs-s3", "az-s3"];
const ALL_WORKLOADS: (WorkloadName | ScaleName)[] = ["small", "medium", "large", "plan", "resume"];

export interface BenchOptions {
  quick: boolean;
  runs: number;
  /** Runs per tool for a case whose rounds are short (SHORT_ROUND_MS); `runs` when --runs is given. */
  shortCaseRuns: number;
  concurrency: number;
  workloads: Workload[];
  routes: RouteName[];
  scale: ScaleName[];
  scaleObjects: number;
  sdk: boolean;
  rclone: boolean;
  /** One uncounted run per case first, so no tool's counted run meets cold emulators. */
  warmup: boolean;
  /** Who writes the S3 source bucket (see bench/seed-s3.ts). */
  s3Seed: S3Seed;
  outDir: string;
  timeoutMs: number;
  caseBudgetMs: number;
}

function workloadsFor(quick: boolean): Record<WorkloadName, Workload> {
  return quick
    ? {
        small: { name: "small", count: 1000, size: 4 * KiB },
        medium: { name: "medium", count: 10, size: 10 * MiB },
        large: { name: "large", count: 1, size: 128 * MiB },
      }
    : {
        small: { name: "small", count: 10_000, size: 4 * KiB },
        medium: { name: "medium", count: 100, size: 10 * MiB },
        large: { name: "large", count: 1, size: GiB },
      };
}

function list<T extends string>(v: string | undefined, all: readonly T[], what: string, dflt: readonly T[] = all): T[] {
  if (!v) return [...dflt];
  const picked = v.split(",").map((s) => s.trim()).filter(Boolean);
  for (const p of picked) if (!all.includes(p as T)) throw new Error(`unknown ${what} "${p}" (expected ${all.join(", ")})`);
  return all.filter((a) => picked.includes(a));
}

function posInt(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined || v === "") return dflt;
  const n = Number(v.replace(/_/g, ""));
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a whole number ≥ 1, got "${v}"`);
  return n;
}

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean", default: false },
      runs: { type: "string" },
      concurrency: { type: "string" },
      workloads: { type: "string" },
      routes: { type: "string" },
      "scale-objects": { type: "string" },
      "no-sdk": { type: "boolean", default: false },
      "no-rclone": { type: "boolean", default: false },
      "no-warmup": { type: "boolean", default: false },
      "s3-seed": { type: "string" },
      out: { type: "string" },
      timeout: { type: "string" },
      "case-budget": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      "npm run bench -- [--quick] [--runs N] [--concurrency C] [--workloads small,medium,large,plan,resume]\n" +
        "                 [--routes fs-fs,fs-s3,s3-az,s3-gcs,gcs-s3,az-s3] [--scale-objects N] [--no-sdk] [--no-rclone]\n" +
        "                 [--no-warmup] [--s3-seed aws-cli|cloudmigrate] [--out DIR]\n" +
        "                 [--timeout S] [--case-budget S]\n",
    );
    process.exit(0);
  }
  const quick = values.quick || env.BENCH_QUICK === "1";
  const runsGiven = values.runs ?? env.BENCH_RUNS;
  const picked = list(values.workloads ?? env.BENCH_WORKLOADS, ALL_WORKLOADS, "workload");
  const defs = workloadsFor(quick);
  const s3Seed = (values["s3-seed"] ?? "aws-cli") as S3Seed;
  if (s3Seed !== "aws-cli" && s3Seed !== "cloudmigrate") throw new Error(`--s3-seed must be aws-cli or cloudmigrate, got "${s3Seed as string}"`);
  return {
    quick,
    runs: posInt(runsGiven, "--runs", quick ? 1 : 3),
    shortCaseRuns: posInt(runsGiven, "--runs", quick ? 1 : 7),
    concurrency: posInt(values.concurrency ?? env.BENCH_CONCURRENCY, "--concurrency", 16),
    workloads: picked.filter((w): w is WorkloadName => w in defs).map((w) => defs[w]),
    scale: picked.filter((w): w is ScaleName => w === "plan" || w === "resume"),
    routes: list(values.routes ?? env.BENCH_ROUTES, [...ALL_ROUTES, ...EXTRA_ROUTES], "route", ALL_ROUTES),
    scaleObjects: posInt(values["scale-objects"] ?? env.BENCH_SCALE_OBJECTS, "--scale-objects", quick ? 100_000 : 1_000_000),
    sdk: !values["no-sdk"],
    rclone: !values["no-rclone"],
    warmup: !values["no-warmup"],
    s3Seed,
    outDir: values.out ?? "bench/results",
    timeoutMs: posInt(values.timeout, "--timeout", 900) * 1000,
    caseBudgetMs: posInt(values["case-budget"] ?? env.BENCH_CASE_BUDGET, "--case-budget", 420) * 1000,
  };
}
