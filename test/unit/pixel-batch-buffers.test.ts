import assert from 'node:assert/strict';
import { it } from 'node:test';
import { PixelBatchBuffers } from '@vecmill/worker/model/pixel-batch-buffers';

it('PixelBatchBuffers keeps every buffer given back: as many exist as were ever in use at once', () => {
  const buffers = new PixelBatchBuffers(2, 3);
  // Two splits in flight: four batches at once, each one batch preparing and one in inference.
  const first = [buffers.acquire(), buffers.acquire(), buffers.acquire(), buffers.acquire()];
  assert.equal(new Set(first).size, 4);
  assert.ok(first.every((b) => b.length === 6 && b.buffer instanceof SharedArrayBuffer));
  for (const b of first) buffers.release(b);
  buffers.release(first[0]!);
  const again = [buffers.acquire(), buffers.acquire(), buffers.acquire(), buffers.acquire()];
  assert.deepEqual(new Set(again), new Set(first), 'all four are reused, none made anew');
  assert.notEqual(buffers.acquire(), first[0], 'a buffer given back twice is handed out once');
});
