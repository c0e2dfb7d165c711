import { ResourceError, RowError, VecmillError, type ErrorCode } from './errors.js';

/**
 * What to do after an operation failed:
 * - `retry-now`: a passing fault of a remote service (S3 5xx, SlowDown, a dropped connection);
 *   the operation itself is retried in place, with `backoffDelay`, before anything else fails.
 * - `retry-attempt`: a failure of ours or of the machine that another attempt may not meet (an
 *   inference or preprocessing thread that died, a commit race, Redis gone for a while, a merge
 *   that ran before a shard was committed, any error vecmill does not know); the split's attempt
 *   fails and is retried, never committed.
 * - `final`: the same attempt would fail the same way again (bad payload, changed or missing
 *   input, refused access, a malformed model, a WebAssembly trap or an out-of-memory), so it
 *   is reported at once instead of being retried until the attempts run out.
 */
export type FailurePolicy = 'retry-now' | 'retry-attempt' | 'final';

/** The policy of each VecmillError code; one table, so `run` and `worker` cannot disagree. */
const byCode: Readonly<Record<ErrorCode, FailurePolicy>> = {
  E_STORAGE_TRANSIENT: 'retry-now',
  E_INTERNAL: 'retry-attempt',
  E_COMMIT: 'retry-attempt',
  E_REDIS: 'retry-attempt',
  // A merge that finds a shard missing may run before a late attempt commits it (a stalled job
  // handed to another worker); merging again costs little, and the counts are checked each time.
  E_MERGE: 'retry-attempt',
  E_CONFIG: 'final',
  E_INPUT: 'final',
  E_MODEL: 'final',
  E_STORAGE: 'final',
  E_NOT_FOUND: 'final',
  E_PAYLOAD: 'final',
  E_DOWNLOAD: 'final',
  E_RESOURCE: 'final',
  // Only `export pgvector` meets the database, outside any queue: its error is reported, and
  // running the export again resumes it.
  E_DATABASE: 'final',
};

/**
 * vecmill's one failure classifier: storage retries, resumed reads, the in-process queue of `run`
 * and the BullMQ jobs of `worker` all decide through it. Errors that are not VecmillErrors are
 * `retry-attempt`, except the exhaustion errors `asResourceError` recognizes, which are `final`.
 * A RowError never reaches a queue (it becomes an error row); if one does, it is a bug of ours.
 */
export function failurePolicy(err: unknown): FailurePolicy {
  if (err instanceof VecmillError) return byCode[err.code];
  if (err instanceof RowError) return 'retry-attempt';
  return exhaustionKind(err) === undefined ? 'retry-attempt' : 'final';
}

/** True for a passing fault of a remote service: retry the operation in place (`retry-now`). */
export function isTransient(err: unknown): boolean {
  return failurePolicy(err) === 'retry-now';
}

/**
 * The error to report for a failed job (`what`: "split 3", "the merge of run X"): a WebAssembly
 * trap or an out-of-memory becomes a ResourceError saying what it means and what to change;
 * anything else is returned unchanged.
 */
export function explainFailure(err: unknown, what: string): unknown {
  switch (exhaustionKind(err)) {
    case 'wasm':
      return new ResourceError(
        `${what} failed in WebAssembly (${(err as Error).message}): the Parquet writer and reader run in 32-bit WebAssembly with at most 4 GiB of memory, which this shard needed more than; lower --split-size so each split holds fewer rows (or use --out-dtype float16) and run again`,
        { job: what },
        { cause: err },
      );
    case 'heap':
      return new ResourceError(
        `${what} ran out of memory (${(err as Error).message}): lower --split-size, --batch-size or --concurrency, or give the process more memory, and run again`,
        { job: what },
        { cause: err },
      );
    case undefined:
      return err;
  }
}

/** Which resource an error says ran out: WebAssembly memory (any trap, a WebAssembly.RuntimeError) or the JS heap. */
function exhaustionKind(err: unknown): 'wasm' | 'heap' | undefined {
  if (err instanceof Error && err.name === 'RuntimeError') return 'wasm';
  if (err instanceof RangeError && /array buffer allocation failed/i.test(err.message)) return 'heap';
  if (err instanceof Error && (err as { code?: unknown }).code === 'ERR_WORKER_OUT_OF_MEMORY') return 'heap';
  return undefined;
}
