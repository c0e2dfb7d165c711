// AssemblyScript source of the WebAssembly SIMD kernels behind resize-bicubic.ts. Built by
// `npm run build:wasm` (tools/build-wasm.mjs) into src/model/resize-kernels-wasm.ts; a unit test
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
 * Horizontal pass over `rows` rows of interleaved RGB (`inStride` bytes apart) into `width` output
 * pixels per row. `bounds` holds `[first input column, taps]` per output pixel, `weights` `ksize`
 * i32 weights per output pixel. Each tap reads four bytes (one past the pixel), and each output
 * pixel writes four bytes (the fourth is overwritten next), so both buffers need 1 byte of slack.
 */
export function horizontal(src: usize, inStride: i32, rows: i32, bounds: usize, weights: usize, ksize: i32, width: i32, dst: usize): void {
  const half = i32x4.splat(HALF);
  for (let y = 0; y < rows; y++) {
    const row = src + <usize>(y * inStride);
    let o = dst + <usize>(y * width * 3);
    for (let x = 0; x < width; x++) {
      const first = load<i32>(bounds + <usize>(x << 3));
      const taps = load<i32>(bounds + <usize>(x << 3) + 4);
      let p = row + <usize>(first * 3);
      let w = weights + <usize>(x * ksize * 4);
      let acc = half;
      for (let t = 0; t < taps; t++) {
        const px = i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(p)));
        acc = i32x4.add(acc, i32x4.mul(px, i32x4.splat(load<i32>(w))));
        p += 3;
        w += 4;
      }
      v128.store32_lane(o, clip4(acc), 0);
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
