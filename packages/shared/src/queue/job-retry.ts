import { UnrecoverableError, type BackoffOptions, type MinimalJob } from 'bullmq';
import { backoffDelay } from '../backoff.js';
import { describeError, VecmillError } from '../errors.js';
import { explainFailure, failurePolicy } from '../failure-policy.js';

/**
 * The backoff type jobs are enqueued with. BullMQ looks a non-builtin type up in the worker's
 * `settings.backoffStrategy`, which is `jobBackoffStrategy`: worker jobs wait exactly as split
 * attempts of `run` do.
 */
export const JOB_BACKOFF_TYPE = 'vecmill';

/** Cap on one wait between attempts of a job, as in `run`. */
const maxJobBackoffMs = 60_000;

/** The job options that make BullMQ retry with vecmill's backoff; `delayMs` bounds the first wait. */
export function jobBackoff(delayMs: number): BackoffOptions {
  return { type: JOB_BACKOFF_TYPE, delay: delayMs };
}

/** BullMQ's custom backoff strategy: `backoffDelay` over the job's own `backoff.delay`. */
export function jobBackoffStrategy(attemptsMade: number, _type?: string, _err?: Error, job?: MinimalJob): number {
  const backoff = job?.opts.backoff;
  const base = typeof backoff === 'number' ? backoff : (backoff?.delay ?? 0);
  return backoffDelay(attemptsMade, { baseDelayMs: base, maxDelayMs: maxJobBackoffMs });
}

/**
 * What a BullMQ processor throws for a failed job (`what`: "split 3 of run X"): the error explained
 * by `explainFailure`, wrapped in an UnrecoverableError when `failurePolicy` says `final`, so BullMQ
 * retries exactly what `run` retries.
 */
export function jobFailure(err: unknown, what: string): Error {
  const explained = explainFailure(err, what);
  if (failurePolicy(explained) === 'final') {
    const message = describeError(explained);
    return new UnrecoverableError(explained instanceof VecmillError ? `${message} [${explained.code}]` : message);
  }
  return explained instanceof Error ? explained : new Error(describeError(explained));
}
