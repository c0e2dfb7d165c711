/**
 * IEEE 754 half-precision bits of each value, rounded to nearest even. Out-of-range values
 * saturate to +-65504 instead of becoming infinite, as onnxconverter-common's fp16 conversion
 * does, so a "minus float max" mask constant stays a large finite negative in fp16 graphs.
 * (Node 20 has no Float16Array, hence the bit arithmetic.)
 */
export function toFloat16Bits(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) {
    out[i] = halfBits(bits[i] ?? 0);
  }
  return out;
}

const HALF_MAX = 0x7bff;

function halfBits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;
  if (exponent === 0xff) return mantissa === 0 ? sign | HALF_MAX : 0x7e00;
  const e = exponent - 127 + 15;
  if (e >= 31) return sign | HALF_MAX;
  if (e <= 0) {
    if (e < -10) return sign;
    const full = mantissa | 0x800000;
    const shift = 14 - e;
    return sign | roundShift(full, shift);
  }
  const rounded = ((e << 10) | (mantissa >>> 13)) + roundingCarry(mantissa, 13, mantissa >>> 13);
  return rounded >= 0x7c00 ? sign | HALF_MAX : sign | rounded;
}

function roundShift(value: number, shift: number): number {
  const kept = value >>> shift;
  return kept + roundingCarry(value, shift, kept);
}

/** 1 when the bits dropped by a right shift round the kept part up (ties to even). */
function roundingCarry(value: number, shift: number, kept: number): number {
  const rest = value & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return rest > half || (rest === half && (kept & 1) === 1) ? 1 : 0;
}
