import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChwTensor, chwFloats } from '@vecmill/worker/model/chw-tensor';
import { cropBytes, slicePixelBatch, type PixelBatch } from '@vecmill/worker/model/pixel-batch';

/** A table whose every entry differs, so a value from the wrong channel or byte cannot pass. */
const table = Float32Array.from({ length: 3 * 256 }, (_, i) => Math.fround((i % 256) * 0.37 - (i >> 8) * 100 - 1.5));

function batchOf(count: number, height: number, width: number, seed: number): PixelBatch {
  const crops = new Uint8Array(new SharedArrayBuffer(count * cropBytes(height, width)));
  for (let i = 0; i < crops.length; i++) crops[i] = ((i + seed) * 2654435761) >>> 24;
  return { crops, count, height, width, table };
}

/** `[count, 3, height, width]` element by element from the crops, the definition the converters must meet. */
function byHand(b: PixelBatch): Float32Array {
  const pixels = b.height * b.width;
  const out = new Float32Array(b.count * 3 * pixels);
  for (let i = 0; i < b.count; i++) {
    for (let p = 0; p < pixels; p++) {
      for (let c = 0; c < 3; c++) out[(i * 3 + c) * pixels + p] = table[c * 256 + b.crops[(i * pixels + p) * 3 + c]!]!;
    }
  }
  return out;
}

const same = (a: Float32Array, b: Float32Array): boolean => a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

test('ChwTensor fills the float input bit for bit from the crops, in WebAssembly and in the JavaScript fallback, batch after batch', () => {
  const wasm = new ChwTensor();
  const js = new ChwTensor({ maxWasmBytes: 0 });
  // A large batch, then a smaller one into the same memory, then odd sizes (a pixel count that is no multiple of 4).
  for (const [count, height, width, seed] of [
    [5, 64, 64, 1],
    [2, 64, 64, 2],
    [3, 7, 13, 3],
  ] as const) {
    const b = batchOf(count, height, width, seed);
    const want = byHand(b);
    const fromWasm = wasm.fill(b);
    assert.ok(!(fromWasm.buffer instanceof SharedArrayBuffer), 'onnxruntime-node takes the tensor: not shared memory');
    assert.ok(same(fromWasm, want), `${count} x ${width}x${height}: WebAssembly`);
    assert.ok(same(js.fill(b), want), `${count} x ${width}x${height}: JavaScript`);
    assert.ok(same(chwFloats(b), want), `${count} x ${width}x${height}: chwFloats`);
  }
});

test('a slice of a PixelBatch converts as those images of the whole', () => {
  const b = batchOf(4, 9, 11, 9);
  const whole = byHand(b);
  const per = cropBytes(9, 11);
  assert.ok(same(new ChwTensor().fill(slicePixelBatch(b, 1, 2)), whole.subarray(per, 3 * per)));
});

test('ChwTensor refuses crops shorter than the batch or a table of the wrong size', () => {
  const b = batchOf(2, 8, 8, 4);
  assert.throws(() => new ChwTensor().fill({ ...b, count: 3 }), RangeError);
  assert.throws(() => new ChwTensor().fill({ ...b, table: new Float32Array(256) }), RangeError);
});
