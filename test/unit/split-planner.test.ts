import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, InputError } from '@vecmill/shared/errors';
import { planSplits } from '@vecmill/shared/tsv/split-planner';
import type { Split } from '@vecmill/shared/tsv/split-planner';

const object = (key: string, size: number) => ({ key, size, etag: `etag-${key}` });

describe('planSplits', () => {
  it('cuts an object into ceil(size/splitSize) balanced, contiguous ranges', () => {
    const splits = planSplits([object('a.tsv', 10)], 4);
    assert.deepEqual(
      splits.map((s) => [s.start, s.end]),
      [
        [0, 4],
        [4, 7],
        [7, 10],
      ],
    );
    for (const split of splits) {
      assert.equal(split.objectSize, 10);
      assert.equal(split.etag, 'etag-a.tsv');
    }
  });

  it('keeps one split for an object no larger than the split size', () => {
    assert.deepEqual(planSplits([object('a', 5)], 5), [{ index: 0, key: 'a', etag: 'etag-a', start: 0, end: 5, objectSize: 5 }]);
    assert.deepEqual(
      planSplits([object('a', 3)], 1000).map((s) => [s.start, s.end]),
      [[0, 3]],
    );
  });

  it('numbers splits globally in input order and skips empty objects', () => {
    const splits = planSplits([object('b', 5), object('empty', 0), object('a', 3)], 2);
    assert.deepEqual(
      splits.map((s) => [s.index, s.key, s.start, s.end]),
      [
        [0, 'b', 0, 2],
        [1, 'b', 2, 4],
        [2, 'b', 4, 5],
        [3, 'a', 0, 2],
        [4, 'a', 2, 3],
      ],
    );
  });

  it('returns no splits for an empty input or only empty objects', () => {
    assert.deepEqual(planSplits([], 10), []);
    assert.deepEqual(planSplits([object('e', 0)], 10), []);
  });

  it('covers every byte exactly once, with parts differing by at most one byte and never above splitSize', () => {
    for (const size of [1, 2, 7, 100, 1023, 4096, 1_000_003]) {
      for (const splitSize of [1, 2, 3, 10, 64, 1000, 4096, 2_000_000]) {
        const splits = planSplits([object('x', size)], splitSize);
        assert.equal(splits.length, Math.ceil(size / splitSize));
        let expectedStart = 0;
        const lengths = splits.map((s: Split) => {
          assert.equal(s.start, expectedStart);
          expectedStart = s.end;
          return s.end - s.start;
        });
        assert.equal(expectedStart, size);
        const longest = lengths.reduce((a, b) => Math.max(a, b));
        const shortest = lengths.reduce((a, b) => Math.min(a, b));
        assert.ok(longest <= splitSize, `size ${size} splitSize ${splitSize}`);
        assert.ok(longest - shortest <= 1, `size ${size} splitSize ${splitSize}`);
      }
    }
  });

  it('plans terabyte objects without precision loss', () => {
    const size = 3 * 2 ** 40 + 17;
    const splits = planSplits([object('huge', size)], 256 * 2 ** 20);
    assert.equal(splits.length, Math.ceil(size / (256 * 2 ** 20)));
    assert.equal(splits.at(-1)?.end, size);
  });

  it('rejects a split size that is not a positive integer with ConfigError', () => {
    for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => planSplits([object('a', 10)], bad), (err: unknown) => err instanceof ConfigError && /split size/.test(err.message));
    }
  });

  it('rejects an object with a negative or fractional size with InputError naming it', () => {
    assert.throws(() => planSplits([object('bad.tsv', -1)], 10), (err: unknown) => err instanceof InputError && err.message.includes('bad.tsv'));
    assert.throws(() => planSplits([object('bad.tsv', 2.5)], 10), InputError);
  });
});
