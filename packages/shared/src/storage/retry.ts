import { setTimeout as sleep } from 'node:timers/promises';
import { backoffDelay } from '../backoff.js';
import { failurePolicy } from '../failure-policy.js';

/** How `withRetry` retries. All fields are optional; see `DEFAULT_RETRY_OPTIONS`. */
export interface RetryOptions {
  /** Total tries including the first one. */
  readonly attempts?: number;
  /** Upper bound of the first backoff; doubles on each retry. */
  readonly baseDelayMs?: number;
  /** Cap on any single backoff, so a long outage does not produce hour-long sleeps. */
  readonly maxDelayMs?: number;
  /** Called before each sleep, e.g. to log or count retries. `attempt` is the try that just failed (1-based). */
  readonly onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

export const DEFAULT_RETRY_OPTIONS = { attempts: 5, baseDelayMs: 200, maxDelayMs: 10_000 } as const;

/**
 * Runs `fn`, retrying errors whose `failurePolicy` is `retry-now` after `backoffDelay` (exponential,
 * full jitter). Other errors and the last transient one are rethrown unchanged.
 */
export async function withRetry<T>(fn: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = Math.max(1, Math.floor(options.attempts ?? DEFAULT_RETRY_OPTIONS.attempts));
  const base = options.baseDelayMs ?? DEFAULT_RETRY_OPTIONS.baseDelayMs;
  const max = options.maxDelayMs ?? DEFAULT_RETRY_OPTIONS.maxDelayMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= attempts || failurePolicy(err) !== 'retry-now') throw err;
      const delayMs = backoffDelay(attempt, { baseDelayMs: base, maxDelayMs: max });
      options.onRetry?.(err, attempt, delayMs);
      await sleep(delayMs);
    }
  }
}
