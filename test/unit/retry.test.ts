import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StorageError } from '@vecmill/shared/errors';
import { withRetry } from '@vecmill/shared/storage/retry';

const transient = (): StorageError => new StorageError('S3 read failed: SlowDown', {}, { transient: true });

describe('withRetry', () => {
  it('returns the first success without retrying', async () => {
    let calls = 0;
    assert.equal(await withRetry(async () => ++calls, { baseDelayMs: 1 }), 1);
    assert.equal(calls, 1);
  });

  it('retries transient errors until success, reporting each retry', async () => {
    let calls = 0;
    const retries: Array<[number, number]> = [];
    const result = await withRetry(
      async () => {
        calls++;
        if (calls < 3) throw transient();
        return 'ok';
      },
      { attempts: 5, baseDelayMs: 2, maxDelayMs: 3, onRetry: (_err, attempt, delayMs) => retries.push([attempt, delayMs]) },
    );
    assert.equal(result, 'ok');
    assert.equal(calls, 3);
    assert.deepEqual(
      retries.map(([attempt]) => attempt),
      [1, 2],
    );
    // Full jitter: each delay lies in [0, min(max, base * 2^(attempt-1))].
    assert.ok(retries[0]![1] >= 0 && retries[0]![1] <= 2);
    assert.ok(retries[1]![1] >= 0 && retries[1]![1] <= 3);
  });

  it('gives up after `attempts` tries and rethrows the last transient error', async () => {
    let calls = 0;
    const errors: unknown[] = [];
    await assert.rejects(
      withRetry(
        async () => {
          calls++;
          const err = transient();
          errors.push(err);
          throw err;
        },
        { attempts: 3, baseDelayMs: 1 },
      ),
      (err: unknown) => err === errors[2],
    );
    assert.equal(calls, 3);
  });

  it('does not retry final errors', async () => {
    let calls = 0;
    await assert.rejects(
      withRetry(
        async () => {
          calls++;
          throw new StorageError('permission denied');
        },
        { attempts: 5, baseDelayMs: 1 },
      ),
      /permission denied/,
    );
    await assert.rejects(
      withRetry(
        async () => {
          calls++;
          throw new TypeError('bug');
        },
        { baseDelayMs: 1 },
      ),
      TypeError,
    );
    assert.equal(calls, 2);
  });

  it('caps every delay at maxDelayMs', async () => {
    const delays: number[] = [];
    await assert.rejects(
      withRetry(
        async () => {
          throw transient();
        },
        { attempts: 6, baseDelayMs: 1000, maxDelayMs: 2, onRetry: (_e, _a, d) => delays.push(d) },
      ),
      StorageError,
    );
    assert.equal(delays.length, 5);
    for (const d of delays) assert.ok(d >= 0 && d <= 2, String(d));
  });
});
