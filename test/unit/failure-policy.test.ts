import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UnrecoverableError } from 'bullmq';
import { backoffDelay } from '@vecmill/shared/backoff';
import {
  CommitError,
  ConfigError,
  DatabaseError,
  DownloadError,
  InputError,
  MergeError,
  ModelError,
  NotFoundError,
  PayloadError,
  RedisError,
  ResourceError,
  StorageError,
  VecmillError,
} from '@vecmill/shared/errors';
import { explainFailure, failurePolicy, type FailurePolicy } from '@vecmill/shared/failure-policy';
import { jobBackoffStrategy, jobFailure } from '@vecmill/shared/queue/job-retry';
import { LocalQueue } from '@vecmill/shared/queue/local-queue';

function wasmTrap(): Error {
  const err = new Error('unreachable');
  err.name = 'RuntimeError';
  return err;
}

function workerOom(): Error {
  return Object.assign(new Error('Worker terminated due to reaching memory limit: JS heap out of memory'), { code: 'ERR_WORKER_OUT_OF_MEMORY' });
}

/** Every error class and code a split or merge can fail with, and what must happen to it. */
const table: readonly { name: string; err: () => unknown; policy: FailurePolicy }[] = [
  { name: 'S3 503 SlowDown (transient storage)', err: () => new StorageError('S3 503 SlowDown', {}, { transient: true }), policy: 'retry-now' },
  { name: 'S3 AccessDenied (storage)', err: () => new StorageError('S3 AccessDenied on s3://b/k'), policy: 'final' },
  { name: 'missing object', err: () => new NotFoundError('no such key'), policy: 'final' },
  { name: 'input changed', err: () => new InputError('input changed after planning'), policy: 'final' },
  { name: 'bad payload', err: () => new PayloadError('bad job'), policy: 'final' },
  { name: 'malformed model', err: () => new ModelError('inference failed: Gather indices out of bounds'), policy: 'final' },
  { name: 'bad config', err: () => new ConfigError('bad flag'), policy: 'final' },
  { name: 'merge found a shard missing', err: () => new MergeError('1 of 1 splits have no committed shard'), policy: 'retry-attempt' },
  { name: 'download failed', err: () => new DownloadError('hub refused'), policy: 'final' },
  { name: 'resource exhausted', err: () => new ResourceError('too big'), policy: 'final' },
  { name: 'database refused the export', err: () => new DatabaseError('connection refused'), policy: 'final' },
  { name: 'commit race', err: () => new CommitError('raced'), policy: 'retry-attempt' },
  { name: 'redis gone', err: () => new RedisError('redis unreachable'), policy: 'retry-attempt' },
  { name: 'a thread died (internal)', err: () => new VecmillError('E_INTERNAL', 'the inference thread exited (code 1)'), policy: 'retry-attempt' },
  { name: 'unknown error', err: () => new TypeError('x is undefined'), policy: 'retry-attempt' },
  { name: 'WebAssembly trap', err: wasmTrap, policy: 'final' },
  { name: 'ArrayBuffer allocation failed', err: () => new RangeError('Array buffer allocation failed'), policy: 'final' },
  { name: 'worker thread out of memory', err: workerOom, policy: 'final' },
];

/** How many times `run`'s local queue calls a split that always fails with `err`. */
async function localAttempts(err: () => unknown, attempts: number): Promise<number> {
  let calls = 0;
  await assert.rejects(
    new LocalQueue({ attempts, backoffMs: 1 }).runFlow(
      [{ split: 0, bytes: 1 }],
      async () => {
        calls++;
        throw err();
      },
      async () => undefined,
      () => undefined,
    ),
  );
  return calls;
}

describe('failurePolicy: one classifier for run and worker', () => {
  for (const row of table) {
    it(`${row.name}: ${row.policy}, and run and worker agree`, async () => {
      assert.equal(failurePolicy(explainFailure(row.err(), 'split 0')), row.policy);
      const final = row.policy === 'final';
      assert.equal(await localAttempts(row.err, 3), final ? 1 : 3, 'attempts of vecmill run');
      assert.equal(jobFailure(row.err(), 'split 0') instanceof UnrecoverableError, final, 'vecmill worker gives up at once exactly on final errors');
    });
  }

  it('explains a WebAssembly trap and an out-of-memory with what to change', () => {
    const trap = explainFailure(wasmTrap(), 'split 7');
    assert.ok(trap instanceof ResourceError);
    assert.match(trap.message, /split 7/);
    assert.match(trap.message, /4 GiB/);
    assert.match(trap.message, /--split-size/);
    const oom = jobFailure(new RangeError('Array buffer allocation failed'), 'split 2 of run r1');
    assert.ok(oom instanceof UnrecoverableError);
    assert.match(oom.message, /split 2 of run r1 ran out of memory .*--batch-size/);
    assert.match(oom.message, /\[E_RESOURCE\]$/);
  });
});

describe('backoffDelay: one backoff', () => {
  it('is full jitter under an exponential, capped ceiling', () => {
    const options = { baseDelayMs: 100, maxDelayMs: 1000 };
    assert.equal(backoffDelay(1, options, () => 0), 0);
    assert.equal(backoffDelay(1, options, () => 1), 100);
    assert.equal(backoffDelay(3, options, () => 1), 400);
    assert.equal(backoffDelay(10, options, () => 1), 1000);
    assert.equal(backoffDelay(3, options, () => 0.5), 200);
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(2, options);
      assert.ok(d >= 0 && d <= 200, `delay ${d} within [0, 200]`);
    }
  });

  it('BullMQ jobs back off with the same policy, bounded by their own backoff.delay', () => {
    const job = { opts: { backoff: { type: 'vecmill', delay: 50 } } } as unknown as Parameters<typeof jobBackoffStrategy>[3];
    for (let attempt = 1; attempt <= 6; attempt++) {
      const ceiling = Math.min(60_000, 50 * 2 ** (attempt - 1));
      for (let i = 0; i < 50; i++) {
        const d = jobBackoffStrategy(attempt, 'vecmill', new Error('x'), job);
        assert.ok(d >= 0 && d <= ceiling, `attempt ${attempt}: ${d} within [0, ${ceiling}]`);
      }
    }
  });
});
