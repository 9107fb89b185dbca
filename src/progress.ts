/**
 * Progress: cli-progress bars (objects, bytes, rate, ETA) when the output is a terminal; plain
 * periodic lines otherwise; nothing with --no-progress or --json.
 */
import { createRequire } from "node:module";
import type cliProgress from "cli-progress";
import { formatBytes, formatCount, formatDuration } from "./format.js";

export interface ProgressSink {
  planning(planned: number): void;
  /** `listing`: planning goes on while copying; totals grow (grow) until listed(). */
  start(totalObjects: number, totalBytes: number, listing?: boolean): void;
  grow(objects: number, bytes: number): void;
  listed(): void;
  objectDone(): void;
  bytes(n: number): void;
  stop(): void;
}

export const silentProgress: ProgressSink = {
  planning() {},
  start() {},
  grow() {},
  listed() {},
  objectDone() {},
  bytes() {},
  stop() {},
};

/** Tracks counts and a smoothed rate; shared by both displays. */
class Tally {
  objects = 0;
  bytes = 0;
  totalObjects = 0;
  totalBytes = 0;
  /** Totals are still growing (planning runs alongside). */
  listing = false;
  readonly startedAt = Date.now();
  private samples: { t: number; b: number }[] = [];

  rate(): number {
    const now = Date.now();
    this.samples.push({ t: now, b: this.bytes });
    while (this.samples.length > 2 && now - this.samples[0].t > 10_000) this.samples.shift();
    const first = this.samples[0];
    const dt = (now - first.t) / 1000;
    return dt > 0.5 ? (this.bytes - first.b) / dt : 0;
  }

  grow(objects: number, bytes: number): void {
    this.totalObjects += objects;
    this.totalBytes += bytes;
  }

  /** "1,234" or, while still listing, "1,234+". */
  allObjects(): string {
    return formatCount(this.totalObjects) + (this.listing ? "+" : "");
  }

  allBytes(): string {
    return formatBytes(this.totalBytes) + (this.listing ? "+" : "");
  }

  eta(rate: number): string {
    if (this.listing || rate <= 0 || this.totalBytes <= this.bytes) return "-";
    return formatDuration(((this.totalBytes - this.bytes) / rate) * 1000);
  }
}

export class BarProgress implements ProgressSink {
  private readonly tally = new Tally();
  private bars?: cliProgress.MultiBar;
  private objBar?: cliProgress.SingleBar;
  private byteBar?: cliProgress.SingleBar;
  private timer?: NodeJS.Timeout;

  constructor(private readonly stream: NodeJS.WriteStream) {}

  planning(planned: number): void {
    this.stream.write(`\rPlanning… ${formatCount(planned)} objects listed`);
  }

  start(totalObjects: number, totalBytes: number, listing = false): void {
    this.stream.write("\n");
    Object.assign(this.tally, { totalObjects, totalBytes, listing });
    // Loaded here, for bars on a terminal only: 7-13 ms of every other start.
    const bars = createRequire(import.meta.url)("cli-progress") as typeof cliProgress;
    this.bars = new bars.MultiBar(
      { stream: this.stream, clearOnComplete: false, hideCursor: true, format: "{label} |{bar}| {done} / {all} {extra}", barsize: 30, autopadding: true },
      bars.Presets.shades_classic,
    );
    this.objBar = this.bars.create(Math.max(totalObjects, 1), 0, { label: "objects", done: "0", all: this.tally.allObjects(), extra: "" });
    this.byteBar = this.bars.create(Math.max(totalBytes, 1), 0, { label: "bytes  ", done: "0 B", all: this.tally.allBytes(), extra: "" });
    this.timer = setInterval(() => this.render(), 250);
    this.timer.unref();
  }

  grow(objects: number, bytes: number): void {
    this.tally.grow(objects, bytes);
  }

  listed(): void {
    this.tally.listing = false;
  }

  private render(): void {
    const t = this.tally;
    const rate = t.rate();
    this.objBar?.setTotal(Math.max(t.totalObjects, 1));
    this.byteBar?.setTotal(Math.max(t.totalBytes, 1));
    this.objBar?.update(t.objects, { done: formatCount(t.objects), all: t.allObjects(), extra: t.listing ? "(still listing)" : "" });
    this.byteBar?.update(Math.max(0, t.bytes), { done: formatBytes(Math.max(0, t.bytes)), all: t.allBytes(), extra: `${formatBytes(rate)}/s  ETA ${t.eta(rate)}` });
  }

  objectDone(): void {
    this.tally.objects++;
  }

  bytes(n: number): void {
    this.tally.bytes += n;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.render();
    this.bars?.stop();
  }
}

export class LineProgress implements ProgressSink {
  private readonly tally = new Tally();
  private timer?: NodeJS.Timeout;
  private lastPlanLine = 0;

  constructor(
    private readonly write: (line: string) => void,
    private readonly intervalMs = 5000,
  ) {}

  planning(planned: number): void {
    const now = Date.now();
    if (now - this.lastPlanLine >= this.intervalMs) {
      this.lastPlanLine = now;
      this.write(`planning: ${formatCount(planned)} objects listed`);
    }
  }

  start(totalObjects: number, totalBytes: number, listing = false): void {
    Object.assign(this.tally, { totalObjects, totalBytes, listing });
    this.timer = setInterval(() => this.line(), this.intervalMs);
    this.timer.unref();
  }

  grow(objects: number, bytes: number): void {
    this.tally.grow(objects, bytes);
  }

  listed(): void {
    this.tally.listing = false;
  }

  private line(): void {
    const t = this.tally;
    const rate = t.rate();
    this.write(
      `progress: ${formatCount(t.objects)}/${t.allObjects()} objects, ` +
        `${formatBytes(Math.max(0, t.bytes))}/${t.allBytes()}, ${formatBytes(rate)}/s, ETA ${t.eta(rate)}` +
        (t.listing ? " (still listing)" : ""),
    );
  }

  objectDone(): void {
    this.tally.objects++;
  }

  bytes(n: number): void {
    this.tally.bytes += n;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
