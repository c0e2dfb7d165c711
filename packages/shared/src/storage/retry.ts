import { setTimeout as sleep } from 'node:timers/promises';
import { isTransient } from '../errors.js';

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
 * Runs `fn`, retrying errors marked transient (`isTransient`) with exponential backoff and full
 * jitter: each sleep is uniform in [0, min(max, base·2^(n-1))]. Full jitter spreads a fleet of
 * workers that all hit the same S3 throttle, instead of having them retry in lockstep. Other errors
 * and the last transient one are rethrown unchanged.
 */
export async function withRetry<T>(fn: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = Math.max(1, Math.floor(options.attempts ?? DEFAULT_RETRY_OPTIONS.attempts));
  const base = options.baseDelayMs ?? DEFAULT_RETRY_OPTIONS.baseDelayMs;
  const max = options.maxDelayMs ?? DEFAULT_RETRY_OPTIONS.maxDelayMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= attempts || !isTransient(err)) throw err;
      const delayMs = Math.random() * Math.min(max, base * 2 ** (attempt - 1));
      options.onRetry?.(err, attempt, delayMs);
      await sleep(delayMs);
    }
  }
}
