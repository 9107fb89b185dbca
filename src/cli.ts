/**
 * The command-line program: commands, options, help, and the one error boundary that turns
 * errors into one-line messages and exit codes.
 */
import { createRequire } from "node:module";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { ExitCode, MigrateError, describeError, toMigrateError, usageError } from "./errors.js";
import { Output } from "./output.js";
import { defaultStateDir } from "../checkpoints/jobs.js";
import { reportFormat } from "./report.js";
import { migrate, resume, type RunSettings } from "./migrate.js";
import { listJobs, status } from "./jobs-view.js";
import type { JobOptions } from "../checkpoints/types.js";
import { parseSize } from "./size.js";

const require = createRequire(import.meta.url);
const { version } = require("../../package.json") as { version: string };

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a whole number ≥ 1`);
    return n;
  };
}

function size(name: string) {
  return (v: string): number => {
    try {
      return parseSize(v);
    } catch {
      throw new InvalidArgumentError(`${name} takes a size like 8M, 64MiB or 1G`);
    }
  };
}

const collect = (v: string, prev: string[]) => [...prev, v];

/** A size option whose default shows as written ("64M"), not in bytes. */
function sizeOption(flags: string, description: string, dflt: string): Option {
  const name = flags.split(" ")[0];
  return new Option(flags, description).argParser(size(name)).default(parseSize(dflt), dflt);
}

interface CommonOpts {
  concurrency: number;
  report?: string;
  stateDir?: string;
  progress: boolean;
  json: boolean;
  debug: boolean;
  retries: number;
  multipartThreshold?: number;
  partSize?: number;
  partConcurrency: number;
  maxMemory: number;
  timeout: number;
  tpsLimit?: number;
  bwlimit?: number;
}

interface MigrateOpts extends CommonOpts {
  dryRun: boolean;
  delete: boolean;
  include: string[];
  exclude: string[];
  checksum: boolean;
  sizeOnly: boolean;
  fresh: boolean;
  s3Endpoint?: string;
  s3Region?: string;
  s3ForcePathStyle?: boolean;
}

/** Options every command that runs a job accepts. */
function addRunOptions(cmd: Command): Command {
  return cmd
    .option("-c, --concurrency <n>", "objects in flight at once", positiveInt("--concurrency"), 16)
    .option("--report <file>", "write every key with its action and outcome (.json, .ndjson, .csv, .txt)")
    .option("--state-dir <dir>", "where job checkpoints live (env MIGRATE_STATE_DIR)")
    .option("--no-progress", "no progress bars or progress lines")
    .option("--json", "one NDJSON event per line on stdout, for scripts", false)
    .option("--debug", "stack traces on errors", false)
    .option("--retries <n>", "attempts per object for temporary errors", positiveInt("--retries"), 5)
    .option("--multipart-threshold <size>", "objects at least this big go in parts (default: 200M into S3, 256M into GCS or Azure, 8G into a local folder)", size("--multipart-threshold"))
    .option("--part-size <size>", "part size for multipart transfers (default: 16M, 64M into GCS; raised to fit the service's part limit)", size("--part-size"))
    .option("--part-concurrency <n>", "parts uploading at once per large object (a few more are read ahead)", positiveInt("--part-concurrency"), 4)
    .addOption(sizeOption("--max-memory <size>", "cap on bytes buffered for parts and local files read whole, all objects together", "512M"))
    .option("--timeout <seconds>", "per-request timeout (of silence) for cloud services", positiveInt("--timeout"), 60)
    .option("--tps-limit <n>", "at most this many requests per second to each service", positiveInt("--tps-limit"))
    .option("--bwlimit <size>", "at most this many bytes per second, e.g. 10M", size("--bwlimit"));
}

function settingsOf(o: CommonOpts): RunSettings {
  if (o.report) reportFormat(o.report); // fail on a bad extension before doing any work
  return {
    concurrency: o.concurrency,
    tpsLimit: o.tpsLimit,
    bwLimit: o.bwlimit,
    retry: { attempts: o.retries, baseDelayMs: Number(process.env.MIGRATE_RETRY_BASE_MS) || 200, maxDelayMs: 20_000 },
    multipart: {
      threshold: o.multipartThreshold,
      partSize: o.partSize,
      partConcurrency: o.partConcurrency,
      maxMemory: o.maxMemory,
    },
    progress: o.progress ? "auto" : "none",
    reportFile: o.report,
    stateDir: o.stateDir ?? defaultStateDir(),
    requestTimeoutMs: o.timeout * 1000,
  };
}

function jobOptionsOf(o: MigrateOpts): JobOptions {
  if (o.checksum && o.sizeOnly) throw usageError("--checksum and --size-only cannot be used together");
  const endpoints: JobOptions["endpoints"] = {};
  if (o.s3Endpoint) endpoints.s3Endpoint = o.s3Endpoint;
  if (o.s3Region) endpoints.s3Region = o.s3Region;
  if (o.s3ForcePathStyle) endpoints.s3ForcePathStyle = true;
  return {
    include: o.include,
    exclude: o.exclude,
    compare: o.checksum ? "checksum" : o.sizeOnly ? "size-only" : "default",
    delete: o.delete,
    ...(Object.keys(endpoints).length ? { endpoints } : {}),
  };
}

function addPlanOptions(cmd: Command): Command {
  return cmd
    .option("--delete", "delete objects that exist only at the destination", false)
    .option("--include <glob>", "only keys matching (repeatable; a pattern without / matches a name at any depth)", collect, [])
    .option("--exclude <glob>", "skip keys matching (repeatable)", collect, [])
    .option("--checksum", "compare by checksum (MD5/CRC32C) instead of size and modification time", false)
    .option("--size-only", "compare by size only", false)
    .option("--fresh", "ignore an unfinished job for this pair and start over", false)
    .option("--s3-endpoint <url>", "S3 endpoint (env AWS_ENDPOINT_URL)")
    .option("--s3-region <region>", "S3 region (env AWS_REGION)")
    .option("--s3-force-path-style", "path-style S3 addressing (on by default with a custom endpoint)");
}

export function buildProgram(run: (p: Promise<number>) => void): Command {
  const program = new Command("migrate")
    .description(
      "Copy objects between S3, Google Cloud Storage, Azure Blob and the local filesystem.\n" +
        "Resumable (a killed run continues with `migrate resume`), verified, with dry-run reports.",
    )
    .version(version, "-V, --version")
    .argument("<source>", "s3://bucket/prefix, gs://bucket/prefix, az://account/container/prefix, or a path")
    .argument("<destination>", "same forms as source")
    .option("-n, --dry-run", "show what would change, change nothing (exit 0 same, 1 differences)", false)
    .addHelpText(
      "after",
      `
Exit codes: 0 done; 1 finished but some objects failed (dry run/diff: differences found);
            2 usage or configuration error; 130 interrupted (resumable).

Examples:
  migrate ./photos s3://archive/photos
  migrate s3://old/data gs://new/data --dry-run --report plan.csv
  migrate resume
  migrate status`,
    )
    .showSuggestionAfterError(true)
    // Options after a subcommand belong to it (`migrate status --json`), not to the program.
    .enablePositionalOptions()
    .exitOverride();
  addRunOptions(addPlanOptions(program)).action((src: string, dst: string, o: MigrateOpts) => {
    const out = new Output(o.json);
    run(
      guard(out, o.debug, () =>
        migrate({ source: src, destination: dst, options: jobOptionsOf(o), fresh: o.fresh, mode: o.dryRun ? "dry-run" : "run" }, settingsOf(o), out),
      ),
    );
  });

  addRunOptions(addPlanOptions(program.command("diff")))
    .description("compare source and destination: exit 0 when they match, 1 when they differ, 2 on error")
    .argument("<source>")
    .argument("<destination>")
    .addHelpText("after", "\nExample:\n  migrate diff ./photos s3://archive/photos --checksum --report diff.ndjson")
    .action((src: string, dst: string, o: MigrateOpts) => {
      const out = new Output(o.json);
      run(guard(out, o.debug, () => migrate({ source: src, destination: dst, options: jobOptionsOf(o), fresh: false, mode: "diff" }, settingsOf(o), out)));
    });

  addRunOptions(program.command("resume"))
    .description("finish an interrupted or partly failed job (default: the most recent unfinished one)")
    .argument("[job]", "job id (or a unique prefix), from `migrate jobs`")
    .action((job: string | undefined, o: CommonOpts) => {
      const out = new Output(o.json);
      run(guard(out, o.debug, () => resume(job, settingsOf(o), out)));
    });

  const stateCommand = (name: string, desc: string, withJob: boolean, fn: (job: string | undefined, stateDir: string, out: Output) => number) => {
    const c = program
      .command(name)
      .description(desc)
      .option("--state-dir <dir>", "where job checkpoints live (env MIGRATE_STATE_DIR)")
      .option("--json", "NDJSON on stdout", false)
      .option("--debug", "stack traces on errors", false);
    if (withJob) c.argument("[job]", "job id or unique prefix (default: the most recent unfinished job)");
    c.action((...args: unknown[]) => {
      const job = withJob ? (args[0] as string | undefined) : undefined;
      const o = args[withJob ? 1 : 0] as { stateDir?: string; json: boolean; debug: boolean };
      const out = new Output(o.json);
      run(guard(out, o.debug, () => fn(job, o.stateDir ?? defaultStateDir(), out)));
    });
  };
  stateCommand("status", "show a job's progress, failures and large objects' parts", true, status);
  stateCommand("jobs", "list the jobs in the state directory", false, (_j, s, out) => listJobs(s, out));
  for (const c of program.commands) c.exitOverride();
  return program;
}

/** The one error boundary: errors become one line on stderr and an exit code. */
async function guard(out: Output, debug: boolean, fn: () => Promise<number> | number): Promise<number> {
  try {
    return await fn();
  } catch (raw) {
    const err = toMigrateError(raw);
    out.error(`error: ${describeError(err)}`);
    out.event("error", { kind: err.kind, message: err.message });
    if (debug) out.error(String((raw as Error)?.stack ?? raw));
    return err.scope === "run" || isUsage(err) ? ExitCode.Usage : ExitCode.Failures;
  }
}

function isUsage(err: MigrateError): boolean {
  return err.kind === "ConfigInvalid" || err.kind === "PermissionDenied";
}

/**
 * A reader that goes away (`migrate … | head`) ends our output, not the run: later writes to
 * that stream are dropped (Node ignores SIGPIPE, so each would otherwise be an EPIPE error that
 * crashes the process), and the copy, its checkpoint and its report go on to the end.
 */
function tolerateClosedReader(stream: NodeJS.WriteStream): void {
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE") throw err;
  });
}

export async function main(argv: string[]): Promise<number> {
  tolerateClosedReader(process.stdout);
  tolerateClosedReader(process.stderr);
  let pending: Promise<number> | undefined;
  const program = buildProgram((p) => (pending = p));
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.code === "commander.help") return ExitCode.Ok;
      return ExitCode.Usage; // commander already printed its one-line message
    }
    process.stderr.write(`error: ${describeError(err)}\n`);
    return ExitCode.Usage;
  }
  return pending ? await pending : ExitCode.Ok;
}

export { MigrateError };
