import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InputError, StorageError } from '@vecmill/shared/errors';
import { LocalQueue, SplitFailedError } from '@vecmill/shared/queue/local-queue';
import type { RunEvent } from '@vecmill/shared/queue/run-events';

const jobs = (n: number) => Array.from({ length: n }, (_, split) => ({ split, bytes: 10 }));

describe('LocalQueue', () => {
  it('runs every job once, at most `concurrency` at a time, then merges', async () => {
    const q = new LocalQueue({ concurrency: 3, backoffMs: 1 });
    let active = 0;
    let peak = 0;
    const seen: number[] = [];
    const result = await q.runFlow(
      jobs(10),
      async (job) => {
        active++;
        peak = Math.max(peak, active);
        await new Promise((r) => setTimeout(r, 2));
        seen.push(job.split);
        active--;
      },
      async () => 'merged',
      () => undefined,
    );
    assert.equal(result, 'merged');
    assert.deepEqual([...seen].sort((a, b) => a - b), [...Array(10).keys()]);
    assert.equal(peak, 3);
  });

  it('retries transient failures with backoff and reports them', async () => {
    const q = new LocalQueue({ attempts: 3, backoffMs: 1 });
    const events: RunEvent[] = [];
    let calls = 0;
    await q.runFlow(
      jobs(1),
      async () => {
        calls++;
        if (calls < 3) throw new StorageError('S3 503 SlowDown', {}, { transient: true });
      },
      async () => undefined,
      (e) => events.push(e),
    );
    assert.equal(calls, 3);
    assert.deepEqual(events.map((e) => e.type), ['split-retry', 'split-retry']);
  });

  it('does not retry final errors, and never merges after a failed split', async () => {
    const q = new LocalQueue({ attempts: 5, backoffMs: 1 });
    let calls = 0;
    let merged = false;
    await assert.rejects(
      q.runFlow(
        jobs(3),
        async (job) => {
          if (job.split === 1) {
            calls++;
            throw new InputError('input changed');
          }
        },
        async () => {
          merged = true;
        },
        () => undefined,
      ),
      (err: unknown) => err instanceof SplitFailedError && err.failures.length === 1 && err.failures[0]?.split === 1 && /split 1: input changed/.test(err.message),
    );
    assert.equal(calls, 1);
    assert.equal(merged, false);
  });

  it('gives up after the configured attempts', async () => {
    const q = new LocalQueue({ attempts: 2, backoffMs: 1 });
    let calls = 0;
    await assert.rejects(
      q.runFlow(jobs(1), async () => {
        calls++;
        throw new Error('boom');
      }, async () => undefined, () => undefined),
      SplitFailedError,
    );
    assert.equal(calls, 2);
  });
});
