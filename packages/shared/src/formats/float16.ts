/**
 * IEEE 754 binary16 ("half") conversions over whole arrays. Node 20 has no Float16Array, so half
 * values travel as their bit patterns in a Uint16Array: that is also how Arrow JS stores Float16
 * vectors and how .npy `<f2` files lay them out, so no further copy is needed anywhere.
 *
 * float32 → float16 rounds to nearest, ties to even, with subnormals, ±0, ±Inf and NaN handled
 * exactly; it works on the integer bits (no per-value allocation) so that a float16 output never
 * takes a slow path. float16 → float32 is a lookup in a 65,536-entry table built on first use.
 */

/** Bits of float32 65536.0: the first magnitude that no longer rounds to a finite half. */
const F32_HALF_OVERFLOW = 0x47800000;
/** Bits of float32 2^-14: below it a half is subnormal. */
const F32_HALF_MIN_NORMAL = 0x38800000;
/** Bits of float32 2^-25: at or below it a half rounds to zero (2^-25 itself is a tie to even 0). */
const F32_HALF_ZERO_LIMIT = 0x33000000;
const F32_INF = 0x7f800000;
const HALF_INF = 0x7c00;
const HALF_QUIET_NAN = 0x7e00;

/**
 * Converts float32 values to float16 bit patterns. Writes into `out` when given (it must hold at
 * least `values.length` elements; callers pass a subarray of a larger buffer to avoid an
 * allocation per batch) and returns it.
 */
export function float32ToFloat16(values: Float32Array, out: Uint16Array = new Uint16Array(values.length)): Uint16Array {
  if (out.length < values.length) {
    throw new RangeError(`float32ToFloat16: output holds ${out.length} values, input has ${values.length}`);
  }
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const n = bits.length;
  for (let i = 0; i < n; i++) {
    const x = bits[i]!;
    const sign = (x >>> 16) & 0x8000;
    const abs = x & 0x7fffffff;
    let h: number;
    if (abs >= F32_HALF_OVERFLOW) {
      h = abs > F32_INF ? HALF_QUIET_NAN : HALF_INF;
    } else if (abs >= F32_HALF_MIN_NORMAL) {
      // Rebias the exponent (127 → 15) and round the 13 dropped mantissa bits to nearest even:
      // adding 0xfff plus the lowest kept bit carries exactly when the dropped part is above
      // half, or equal to half with an odd kept part. A carry out of the mantissa bumps the
      // exponent, which is also how 65520 becomes Inf.
      h = (abs - 0x38000000 + 0xfff + ((abs >>> 13) & 1)) >>> 13;
    } else if (abs > F32_HALF_ZERO_LIMIT) {
      // Subnormal half: shift the full 24-bit significand down to units of 2^-24 and round.
      const shift = 126 - (abs >>> 23);
      const significand = (abs & 0x7fffff) | 0x800000;
      h = significand >>> shift;
      const rest = significand & ((1 << shift) - 1);
      const halfway = 1 << (shift - 1);
      if (rest > halfway || (rest === halfway && (h & 1) === 1)) h++;
    } else {
      h = 0;
    }
    out[i] = h | sign;
  }
  return out;
}

let halfTable: Float32Array | undefined;

/** Every half bit pattern decoded once: decoding becomes one indexed load per value. */
function halfToFloatTable(): Float32Array {
  if (halfTable !== undefined) return halfTable;
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >>> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    if (exponent === 0) table[h] = sign * mantissa * 2 ** -24;
    else if (exponent === 0x1f) table[h] = mantissa === 0 ? sign * Infinity : NaN;
    else table[h] = sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }
  halfTable = table;
  return table;
}

/** Converts float16 bit patterns to float32 values (exact: every half is a float32). */
export function float16ToFloat32(halves: Uint16Array, out: Float32Array = new Float32Array(halves.length)): Float32Array {
  if (out.length < halves.length) {
    throw new RangeError(`float16ToFloat32: output holds ${out.length} values, input has ${halves.length}`);
  }
  const table = halfToFloatTable();
  const n = halves.length;
  for (let i = 0; i < n; i++) out[i] = table[halves[i]!]!;
  return out;
}
