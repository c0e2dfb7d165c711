import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReadBufferPool } from '@vecmill/shared/storage/read-buffer-pool';

describe('ReadBufferPool', () => {
  it('refills only buffers whose every byte lies before the released offset', () => {
    const pool = new ReadBufferPool({ bufferBytes: 8 });
    const lease = pool.lease();
    const a = lease.take(0, 8);
    const b = lease.take(8, 8);
    const c = lease.take(16, 5);
    assert.equal(c.length, 5);
    lease.release(15);
    const d = lease.take(21, 8);
    assert.equal(d.buffer, a.buffer, 'the buffer of bytes 0-7 is free');
    lease.release(16);
    assert.equal(lease.take(29, 8).buffer, b.buffer, 'bytes 8-15 are free once 16 is released');
    assert.notEqual(lease.take(37, 8).buffer, c.buffer, 'bytes 16-20 are still held');
  });

  it('keeps at most maxFree free buffers, forgets held ones past maxHeldPerLease, and refuses reads larger than a buffer', () => {
    const pool = new ReadBufferPool({ bufferBytes: 4, maxFree: 1, maxHeldPerLease: 2 });
    const lease = pool.lease();
    const taken = [lease.take(0, 4), lease.take(4, 4), lease.take(8, 4)];
    lease.release(100);
    // The first was forgotten (three held, two tracked), and only one of the other two is kept free.
    const next = pool.lease();
    const refilled = [next.take(0, 4), next.take(4, 4)].map((b) => b.buffer);
    assert.equal(refilled.filter((buffer) => taken.some((t) => t.buffer === buffer)).length, 1);
    assert.ok(!refilled.includes(taken[0]!.buffer), 'a forgotten buffer is never refilled');
    assert.throws(() => next.take(8, 5), RangeError);
  });

  it('shares free buffers between leases, each releasing by its own offsets', () => {
    const pool = new ReadBufferPool({ bufferBytes: 4 });
    const first = pool.lease();
    const second = pool.lease();
    const x = first.take(1000, 4);
    const y = second.take(0, 4);
    second.release(1004);
    assert.equal(first.take(1004, 4).buffer === y.buffer, true, 'the second lease gave its buffer back');
    first.release(4);
    assert.notEqual(second.take(4, 4).buffer, x.buffer, 'an offset of one lease says nothing of the other');
  });

  it('takes back a chunk its reader never exposed, by the buffer, and ignores anything else', () => {
    const pool = new ReadBufferPool({ bufferBytes: 8 });
    const lease = pool.lease();
    const a = lease.take(0, 8);
    const b = lease.take(8, 8);
    lease.reuse(Buffer.alloc(8));
    lease.reuse(b.subarray(2, 4));
    assert.equal(lease.take(16, 8).buffer, b.buffer, 'the buffer of bytes 8-15 was given back while bytes 0-7 are held');
    lease.release(8);
    assert.equal(lease.take(24, 8).buffer, a.buffer);
  });
});
