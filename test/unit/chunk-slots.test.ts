import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChunkSlots } from '@vecmill/worker/chunk-slots';

describe('ChunkSlots', () => {
  it('lets as many holders in as it has slots, the next ones in arrival order as slots come back', async () => {
    const slots = new ChunkSlots(2);
    const order: string[] = [];
    const a = await slots.acquire();
    const b = await slots.acquire();
    const c = slots.acquire().then((release) => (order.push('c'), release));
    const d = slots.acquire().then((release) => (order.push('d'), release));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(order, [], 'both slots are taken');
    b();
    b();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(order, ['c'], 'a slot given back twice counts once');
    a();
    (await c)();
    (await d)();
    assert.deepEqual(order, ['c', 'd']);
    const e = await Promise.race([slots.acquire(), new Promise<undefined>((resolve) => setImmediate(() => resolve(undefined)))]);
    assert.ok(e !== undefined, 'every slot is free again');
  });

  it('refuses a bound that is not a positive integer', () => {
    assert.throws(() => new ChunkSlots(0), RangeError);
    assert.throws(() => new ChunkSlots(1.5), RangeError);
  });
});
