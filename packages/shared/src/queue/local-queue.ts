import { backoffDelay } from '../backoff.js';
import { describeError, VecmillError } from '../errors.js';
import { explainFailure, failurePolicy } from '../failure-policy.js';
import type { RunEventSink } from './run-events.js';

/** How the in-process queue schedules and retries split jobs. */
export interface LocalQueueOptions {
  /** Splits processed at once (default 2). They share one embedder, so this overlaps I/O and decode, not inference. */
  readonly concurrency?: number;
  /** Attempts per split before the run fails (default 3), as BullMQ's `attempts`. */
  readonly attempts?: number;
  /** Upper bound of the first retry delay in ms (`backoffDelay`: doubled each attempt, full jitter; default 500). */
  readonly backoffMs?: number;
}

/** Cap on one wait between attempts of a split. */
const maxBackoffMs = 60_000;

/** One split job: the same job objects BullMQ carries in distributed mode. */
export interface LocalJob {
  readonly split: number;
  readonly bytes: number;
}

/** A split that failed every attempt. */
export class SplitFailedError extends VecmillError {
  constructor(readonly failures: readonly { split: number; error: string }[]) {
    super(
      'E_INTERNAL',
      `${failures.length} split(s) failed, nothing was published; first: split ${failures[0]?.split ?? '?'}: ${failures[0]?.error ?? ''}. Fix the cause and re-run the same command: finished splits are kept`,
      { splits: failures.map((f) => f.split).join(',') },
    );
  }
}

/**
 * The embedded default's queue: runs split jobs with bounded concurrency and BullMQ-like retries,
 * then the merge job once every split succeeded — the fan-in a FlowProducer parent gives in
 * distributed mode. No Redis involved.
 */
export class LocalQueue {
  private readonly concurrency: number;
  private readonly attempts: number;
  private readonly backoffMs: number;

  constructor(options: LocalQueueOptions = {}) {
    this.concurrency = options.concurrency ?? 2;
    this.attempts = options.attempts ?? 3;
    this.backoffMs = options.backoffMs ?? 500;
  }

  /**
   * Runs every job through `embed`, then `merge`. Errors whose `failurePolicy` is `final` (a bad
   * payload, a changed input, a WebAssembly trap) are not retried; all others are, as in `worker`. Throws SplitFailedError, without merging,
   * when any split failed every attempt.
   */
  async runFlow<M>(
    jobs: readonly LocalJob[],
    embed: (job: LocalJob) => Promise<void>,
    merge: () => Promise<M>,
    events: RunEventSink,
  ): Promise<M> {
    const failures: { split: number; error: string }[] = [];
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < jobs.length) {
        const job = jobs[next++] as LocalJob;
        const error = await this.runWithRetries(job, embed, events);
        if (error !== undefined) failures.push({ split: job.split, error });
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(this.concurrency, jobs.length)) }, lane));
    if (failures.length > 0) throw new SplitFailedError(failures.sort((a, b) => a.split - b.split));
    try {
      return await merge();
    } catch (err) {
      throw explainFailure(err, 'the merge');
    }
  }

  private async runWithRetries(job: LocalJob, embed: (job: LocalJob) => Promise<void>, events: RunEventSink): Promise<string | undefined> {
    for (let attempt = 1; ; attempt++) {
      try {
        await embed(job);
        return undefined;
      } catch (err) {
        const explained = explainFailure(err, `split ${job.split}`);
        const message = describeError(explained);
        if (failurePolicy(explained) === 'final' || attempt >= this.attempts) {
          events({ type: 'split-failed', split: job.split, error: message });
          return message;
        }
        const delayMs = backoffDelay(attempt, { baseDelayMs: this.backoffMs, maxDelayMs: maxBackoffMs });
        events({ type: 'split-retry', split: job.split, attempt, delayMs, error: message });
        await new Promise((r) => setTimeout(r, delayMs));
      }
    }
  }
}
