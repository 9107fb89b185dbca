/**
 * Retries with exponential backoff and full jitter, for temporary errors only. A service's
 * Retry-After is honoured (it replaces the computed delay when longer).
 */
import { MigrateError, toMigrateError } from "./errors.js";

export interface RetryPolicy {
  /** Total attempts, including the first. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const defaultRetryPolicy: RetryPolicy = { attempts: 5, baseDelayMs: 200, maxDelayMs: 20_000 };

/** Full jitter: a random delay in [0, min(max, base * 2^attempt)). */
export function backoffDelay(policy: RetryPolicy, attempt: number, err?: MigrateError, random = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  const jittered = Math.floor(random() * ceiling);
  return Math.max(jittered, err?.retryAfterMs ?? 0);
}

export interface RetryHooks {
  /** Called before each wait; `attempt` is the 1-based attempt that failed. */
  onRetry?(err: MigrateError, attempt: number, delayMs: number): void;
  /** Stop retrying early (e.g. the run is being interrupted). */
  shouldStop?(): boolean;
}

export async function withRetry<T>(policy: RetryPolicy, fn: (attempt: number) => Promise<T>, hooks: RetryHooks = {}): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (raw) {
      const err = toMigrateError(raw);
      // A run-scoped error that is temporary (a throttled bucket check) is retried like any other.
      if (!err.temporary || attempt >= policy.attempts || hooks.shouldStop?.()) throw err;
      const delay = backoffDelay(policy, attempt - 1, err);
      hooks.onRetry?.(err, attempt, delay);
      await sleep(delay);
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
