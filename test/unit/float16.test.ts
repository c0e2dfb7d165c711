import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { float16ToFloat32, float32ToFloat16 } from '@vecmill/shared/formats/float16';

const toHalf = (...values: number[]): number[] => [...float32ToFloat16(Float32Array.from(values))];

describe('float32ToFloat16', () => {
  it('encodes exactly representable values', () => {
    assert.deepEqual(toHalf(1, -2, 0.5, 65504, 2 ** -14), [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0400]);
  });

  it('keeps the sign of zero', () => {
    assert.deepEqual(toHalf(0, -0), [0x0000, 0x8000]);
  });

  it('overflows to infinity at 65520 (a tie rounded to even) but not just below it', () => {
    assert.deepEqual(toHalf(65519.99, 65520, -65520, 1e9, Infinity, -Infinity), [0x7bff, 0x7c00, 0xfc00, 0x7c00, 0x7c00, 0xfc00]);
  });

  it('produces subnormals and rounds at their boundary', () => {
    // 2^-24 is the smallest subnormal; 2^-25 is a tie that rounds to even (zero); anything above it rounds up.
    assert.deepEqual(toHalf(2 ** -24, 3 * 2 ** -24, 2 ** -25, 2 ** -25 * 1.0000001, 2 ** -26, -(2 ** -24)), [0x0001, 0x0003, 0x0000, 0x0001, 0x0000, 0x8001]);
    // The largest subnormal rounds up into the smallest normal.
    assert.deepEqual(toHalf(2 ** -14 - 2 ** -25), [0x0400]);
  });

  it('rounds normal values to nearest, ties to even', () => {
    const ulp = 2 ** -10; // spacing of halves in [1, 2)
    assert.deepEqual(toHalf(1 + ulp / 2, 1 + 1.5 * ulp, 1 + ulp / 2 + 2 ** -20, 1 + ulp / 4), [0x3c00, 0x3c02, 0x3c01, 0x3c00]);
  });

  it('maps NaN to a quiet NaN', () => {
    const [h] = toHalf(NaN);
    assert.equal(h! & 0x7c00, 0x7c00);
    assert.notEqual(h! & 0x03ff, 0);
  });

  it('writes into a caller-provided subarray and refuses a short one', () => {
    const out = new Uint16Array(4);
    float32ToFloat16(Float32Array.of(1, 2), out.subarray(1, 3));
    assert.deepEqual([...out], [0, 0x3c00, 0x4000, 0]);
    assert.throws(() => float32ToFloat16(Float32Array.of(1, 2), new Uint16Array(1)), RangeError);
  });

  it('works on a Float32Array view with a byte offset', () => {
    const backing = Float32Array.of(9, 1, -2);
    assert.deepEqual([...float32ToFloat16(backing.subarray(1))], [0x3c00, 0xc000]);
  });
});

describe('float16ToFloat32', () => {
  it('decodes known bit patterns', () => {
    const out = float16ToFloat32(Uint16Array.of(0x3c00, 0x7bff, 0x0001, 0x8000, 0x7c00, 0xfc00, 0x3555));
    assert.deepEqual([...out.subarray(0, 6)], [1, 65504, 2 ** -24, -0, Infinity, -Infinity]);
    assert.equal(out[6], Math.fround(0.333251953125));
    assert.ok(Object.is(out[3], -0));
    assert.ok(Number.isNaN(float16ToFloat32(Uint16Array.of(0x7e00))[0]));
  });

  it('round-trips every non-NaN half bit pattern through float32', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const back = float32ToFloat16(float16ToFloat32(all));
    for (let h = 0; h < 65536; h++) {
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (!isNaN) assert.equal(back[h], h, `half 0x${h.toString(16)}`);
    }
  });
});
