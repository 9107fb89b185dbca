/**
 * Reading the proxy's log: requests per window, requests in flight, bytes per window. Times are
 * the proxy's clock (ms since it started).
 */
import { TICK_MS, type LogEntry } from "./proxy.js";

/** Requests started per sliding window of `windowMs` over the log: the highest count. */
export function peakRequestsPerWindow(log: LogEntry[], windowMs: number, from = 0, to = Infinity): number {
  const starts = log.map((e) => e.start).filter((t) => t >= from && t <= to).sort((a, b) => a - b);
  let best = 0;
  let lo = 0;
  for (let hi = 0; hi < starts.length; hi++) {
    while (starts[hi] - starts[lo] >= windowMs) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

/** Highest number of exchanges open at once among those that started in [from, to]. */
export function peakInFlight(log: LogEntry[], from = 0, to = Infinity): number {
  const ev: [number, number][] = [];
  const endOf = (e: LogEntry) => (e.end < 0 ? Infinity : e.end);
  for (const e of log) {
    if (endOf(e) < from || e.start > to) continue;
    ev.push([Math.max(e.start, from), 1], [Math.min(endOf(e), to), -1]);
  }
  ev.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let cur = 0;
  let best = 0;
  for (const [, d] of ev) best = Math.max(best, (cur += d));
  return best;
}

/** Most request-body bytes received in any window of `windowMs` (a multiple of TICK_MS). */
export function peakBytesPerWindow(ticks: number[], windowMs: number): number {
  const n = Math.max(1, Math.round(windowMs / TICK_MS));
  let sum = 0;
  let best = 0;
  for (let i = 0; i < ticks.length; i++) {
    sum += ticks[i];
    if (i >= n) sum -= ticks[i - n];
    best = Math.max(best, sum);
  }
  return best;
}

/** Time-averaged number of exchanges open during [from, to]. */
export function meanInFlight(log: LogEntry[], from: number, to: number): number {
  let busy = 0;
  for (const e of log) {
    const end = e.end < 0 ? to : Math.min(e.end, to);
    const start = Math.max(e.start, from);
    if (end > start) busy += end - start;
  }
  return to > from ? busy / (to - from) : 0;
}
