/** Bounds of vecmill's one backoff policy: exponential growth, capped, with full jitter. */
export interface BackoffOptions {
  /** Upper bound of the first delay in ms; it doubles with each further failure. */
  readonly baseDelayMs: number;
  /** Cap on any single delay, so a long outage does not produce hour-long sleeps. */
  readonly maxDelayMs: number;
}

/**
 * The delay before retrying after the `failures`-th consecutive failure (1-based): uniform in
 * [0, min(max, base·2^(failures-1))]. Full jitter spreads a fleet of workers that hit the same S3
 * throttle or lost the same Redis, instead of having them retry in lockstep. Every retry loop in
 * vecmill (storage calls, resumed reads, hub downloads, split attempts in `run` and BullMQ jobs in
 * `worker`) sleeps for this, so they all behave the same under load.
 */
export function backoffDelay(failures: number, options: BackoffOptions, random: () => number = Math.random): number {
  const n = Math.max(1, Math.floor(failures));
  const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** Math.min(n - 1, 52));
  return Math.round(random() * Math.max(0, ceiling));
}
