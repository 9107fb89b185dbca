/**
 * Summaries of a V8 .cpuprofile (what `node --cpu-prof` writes): self time per function, and
 * self time per area (a package under node_modules, node internals, our own files, GC, idle).
 */
import fs from "node:fs";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface Share {
  name: string;
  ms: number;
  pct: number;
}

export interface ProfileSummary {
  totalMs: number;
  /** Time not idle: what the process actually spent on the CPU (program, GC, JS, native). */
  busyMs: number;
  byFunction: Share[];
  byArea: Share[];
  /** Inclusive time of the functions named in `inclusive`. */
  inclusive: Share[];
}

/** Where a frame's code lives: "node_modules/<pkg>", "node:<module>", "cloudmigrate:<file>", or a V8 pseudo-frame. */
export function areaOf(f: CallFrame): string {
  const u = f.url;
  if (!u) return f.functionName.startsWith("(") ? f.functionName : "(native)";
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u);
  if (nm) return `node_modules/${nm[1]}`;
  if (u.startsWith("node:")) return u;
  const own = /\/dist\/(.+)$/.exec(u);
  if (own) return `cloudmigrate:${own[1]}`;
  return u;
}

function shortUrl(u: string): string {
  const nm = /node_modules\/(.+)$/.exec(u);
  if (nm) return nm[1];
  const own = /\/dist\/(.+)$/.exec(u);
  return own ? own[1] : u;
}

export function summarizeProfile(file: string, top = 25, inclusive: string[] = []): ProfileSummary {
  const p = JSON.parse(fs.readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000; // delta i+1 is the time sample i lasted
    self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + dt);
  }
  const totalMs = (p.endTime - p.startTime) / 1000;
  const fn = new Map<string, number>();
  const area = new Map<string, number>();
  let idle = 0;
  for (const [id, ms] of self) {
    const f = byId.get(id)!.callFrame;
    if (f.functionName === "(idle)") idle += ms;
    const name = f.url ? `${f.functionName || "(anonymous)"} ${shortUrl(f.url)}:${f.lineNumber + 1}` : f.functionName || "(native)";
    fn.set(name, (fn.get(name) ?? 0) + ms);
    const a = areaOf(f);
    area.set(a, (area.get(a) ?? 0) + ms);
  }
  // Inclusive time: a function's own samples plus its callees', counted once per sample.
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const incl = new Map<string, number>(inclusive.map((n) => [n, 0]));
  if (inclusive.length) {
    for (const [id, ms] of self) {
      const seen = new Set<string>();
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        const name = byId.get(cur)!.callFrame.functionName;
        if (incl.has(name) && !seen.has(name)) {
          seen.add(name);
          incl.set(name, incl.get(name)! + ms);
        }
      }
    }
  }
  const busyMs = totalMs - idle;
  const shares = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, ms]) => ({ name, ms, pct: (100 * ms) / totalMs }));
  return { totalMs, busyMs, byFunction: shares(fn, top), byArea: shares(area, top), inclusive: shares(incl, inclusive.length) };
}

/** Where `name`'s self time is spent from: its callers, `depth` frames up, heaviest first. */
export function callersOf(file: string, name: string, depth = 5, top = 8): Share[] {
  const p = JSON.parse(fs.readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const totalMs = (p.endTime - p.startTime) / 1000;
  const stacks = new Map<string, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i];
    if (byId.get(id)!.callFrame.functionName !== name) continue;
    const frames: string[] = [];
    for (let cur = parent.get(id); cur !== undefined && frames.length < depth; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      frames.push(`${f.functionName || "(anonymous)"}@${shortUrl(f.url)}:${f.lineNumber + 1}`);
    }
    const k = frames.join(" < ");
    stacks.set(k, (stacks.get(k) ?? 0) + (p.timeDeltas[i + 1] ?? 0) / 1000);
  }
  return [...stacks.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, ms]) => ({ name: k, ms, pct: (100 * ms) / totalMs }));
}

export function renderProfile(s: ProfileSummary): string {
  const line = (x: Share) => `  ${x.ms.toFixed(0).padStart(7)} ms ${x.pct.toFixed(1).padStart(5)} %  ${x.name}`;
  const out = [`total ${s.totalMs.toFixed(0)} ms, on CPU ${s.busyMs.toFixed(0)} ms (${((100 * s.busyMs) / s.totalMs).toFixed(0)} %)`, "self time by area:"];
  out.push(...s.byArea.map(line), "self time by function:", ...s.byFunction.map(line));
  if (s.inclusive.length) out.push("inclusive time:", ...s.inclusive.map(line));
  return out.join("\n");
}
