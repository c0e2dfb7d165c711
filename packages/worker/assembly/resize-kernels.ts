// AssemblyScript source of the WebAssembly SIMD kernels behind resize-bicubic.ts and chw-tensor.ts
// (instantiated by wasm-kernels.ts). Built by `npm run build:wasm`
// (tools/src/wasm/build-resize-kernels.ts) into src/model/resize-kernels-wasm.ts; a unit test
// rebuilds it and checks the committed bytes match. The arithmetic is Pillow's ImagingResample
// for 8-bit images: int32 sums of u8 x fixed-point weights from half a unit, >> 22, clipped to
// 0..255, horizontal pass before vertical, so the result is bit-identical to Pillow's.

const PRECISION_BITS: i32 = 22;
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/** Packs four i32 sums, shifted and clipped to 0..255, into the low four bytes. */
@inline
function clip4(acc: v128): v128 {
  const shifted = i32x4.shr_s(acc, PRECISION_BITS);
  const words = i16x8.narrow_i32x4_s(shifted, shifted);
  return i8x16.narrow_i16x8_u(words, words);
}

/**
 * Gathers two neighbouring RGB pixels (the low six bytes) as 16-bit lanes `R0 R1 G0 G1 B0 B1 0 0`,
 * the layout `i32x4.dot_i16x8_s` multiplies pairwise with `w0 w1 w0 w1 w0 w1 0 0`.
 */
const PAIR = i8x16(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1);

/**
 * Horizontal pass over `rows` rows of interleaved RGB (`inStride` bytes apart) into `width` output
 * pixels per row. `bounds` holds `[first input column, taps]` per output pixel. Pillow's weights
 * have 22 fractional bits, too wide for 16-bit lanes, so each is split as `hi * 2048 + lo` (`lo` in
 * 0..2047): `weights` holds, per output pixel, `pairs` pairs of taps (`ceil(taps / 2)` of them
 * used, the odd tap's partner weighing 0), each pair as two vectors of 16-bit lanes,
 * `lo0 lo1 lo0 lo1 lo0 lo1 0 0` then the same of `hi`. One `dot` per vector sums two taps of all
 * three channels; `sum(hi) * 2048 + sum(lo)` is Pillow's integer sum exactly (wrapping 32-bit
 * arithmetic, whose final value fits). Each pair reads eight bytes (two past its pixels) and each
 * output pixel writes four (the fourth is overwritten next), so both buffers need slack.
 */
export function horizontal(src: usize, inStride: i32, rows: i32, bounds: usize, weights: usize, pairs: i32, width: i32, dst: usize): void {
  const half = i32x4.splat(HALF);
  const zero = i32x4.splat(0);
  for (let y = 0; y < rows; y++) {
    const row = src + <usize>(y * inStride);
    let o = dst + <usize>(y * width * 3);
    for (let x = 0; x < width; x++) {
      const first = load<i32>(bounds + <usize>(x << 3));
      const used = (load<i32>(bounds + <usize>(x << 3) + 4) + 1) >> 1;
      let p = row + <usize>(first * 3);
      let w = weights + <usize>((x * pairs) << 5);
      let lo = zero;
      let hi = zero;
      for (let t = 0; t < used; t++) {
        const px = i8x16.swizzle(v128.load64_zero(p), PAIR);
        lo = i32x4.add(lo, i32x4.dot_i16x8_s(px, v128.load(w)));
        hi = i32x4.add(hi, i32x4.dot_i16x8_s(px, v128.load(w, 16)));
        p += 6;
        w += 32;
      }
      v128.store32_lane(o, clip4(i32x4.add(i32x4.add(i32x4.shl(hi, 11), lo), half)), 0);
      o += 3;
    }
  }
}

/**
 * Vertical pass: output row `y` sums input rows `[bounds[2y], bounds[2y] + bounds[2y+1])`
 * (relative to `src`) of `stride` bytes, 16 bytes at a time. Reads and writes up to 15 bytes past
 * a row's end, so both buffers need 16 bytes of slack; a row's overrun is rewritten by the next.
 */
export function vertical(src: usize, stride: i32, height: i32, bounds: usize, weights: usize, ksize: i32, dst: usize): void {
  const half = i32x4.splat(HALF);
  for (let y = 0; y < height; y++) {
    const first = load<i32>(bounds + <usize>(y << 3));
    const taps = load<i32>(bounds + <usize>(y << 3) + 4);
    const base = src + <usize>(first * stride);
    const wy = weights + <usize>(y * ksize * 4);
    const out = dst + <usize>(y * stride);
    for (let i = 0; i < stride; i += 16) {
      let a0 = half;
      let a1 = half;
      let a2 = half;
      let a3 = half;
      let p = base + <usize>i;
      for (let t = 0; t < taps; t++) {
        const k = i32x4.splat(load<i32>(wy + <usize>(t << 2)));
        const bytes = v128.load(p);
        const lo = i16x8.extend_low_i8x16_u(bytes);
        const hi = i16x8.extend_high_i8x16_u(bytes);
        a0 = i32x4.add(a0, i32x4.mul(i32x4.extend_low_i16x8_u(lo), k));
        a1 = i32x4.add(a1, i32x4.mul(i32x4.extend_high_i16x8_u(lo), k));
        a2 = i32x4.add(a2, i32x4.mul(i32x4.extend_low_i16x8_u(hi), k));
        a3 = i32x4.add(a3, i32x4.mul(i32x4.extend_high_i16x8_u(hi), k));
        p += <usize>stride;
      }
      const s0 = i32x4.shr_s(a0, PRECISION_BITS);
      const s1 = i32x4.shr_s(a1, PRECISION_BITS);
      const s2 = i32x4.shr_s(a2, PRECISION_BITS);
      const s3 = i32x4.shr_s(a3, PRECISION_BITS);
      v128.store(out + <usize>i, i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_s(s0, s1), i16x8.narrow_i32x4_s(s2, s3)));
    }
  }
}

/**
 * Rescale, normalize and CHW in one pass: `pixels` interleaved RGB bytes at `src` (a crop, padding
 * already in place) become three float32 planes of `pixels` values each at `dst`. Each value is
 * looked up in `table` (3 x 256 float32, channel-major), which holds Hugging Face's float32
 * arithmetic for every byte value, so the floats are bit-identical to it. Reads four bytes per
 * pixel (one past it), so the source needs 1 byte of slack.
 */
export function chw(src: usize, pixels: i32, table: usize, dst: usize): void {
  const plane = <usize>pixels << 2;
  const t1 = table + 1024;
  const t2 = table + 2048;
  let p = src;
  let r = dst;
  const end = dst + plane;
  while (r < end) {
    const px = load<u32>(p);
    store<f32>(r, load<f32>(table + ((px & 0xff) << 2)));
    store<f32>(r + plane, load<f32>(t1 + ((px >> 6) & 0x3fc)));
    store<f32>(r + 2 * plane, load<f32>(t2 + ((px >> 14) & 0x3fc)));
    p += 3;
    r += 4;
  }
}
