import type { RgbImage } from './image-decode.js';

/** A rectangle of a resized image, in the resized image's pixel coordinates. */
export interface PixelWindow {
  readonly left: number;
  readonly top: number;
  readonly width: number;
  readonly height: number;
}

/**
 * Pillow's 8-bit fixed-point precision (`PRECISION_BITS` in Resample.c): coefficients are
 * scaled by 2^22 and sums start at half a unit so the final shift rounds to nearest.
 */
const PRECISION_BITS = 22;
const HALF = 1 << (PRECISION_BITS - 1);
const CLIP_HIGH = 1 << (PRECISION_BITS + 8);

/** Keys cubic convolution with a = -0.5, Pillow's `bicubic_filter`; support 2. */
function bicubic(x: number): number {
  const a = -0.5;
  const t = x < 0 ? -x : x;
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

/** Per-output-pixel taps for one axis: input start, tap count and fixed-point weights. */
interface AxisCoefficients {
  /** `[first input index, tap count]` per output pixel of the window. */
  readonly bounds: Int32Array;
  /** `ksize` weights per output pixel, scaled by 2^22. */
  readonly weights: Int32Array;
  readonly ksize: number;
}

/**
 * Coefficients depend only on the sizes and the window, and a dataset repeats a few photo
 * sizes endlessly, so they are computed once per combination. The cap keeps a dataset of
 * all-different sizes from growing the cache without bound.
 */
const coefficientCache = new Map<string, AxisCoefficients>();
const COEFFICIENT_CACHE_LIMIT = 512;

/**
 * Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for output pixels `[start, start + count)`:
 * the kernel is widened by the downscale factor (antialiasing), weights are normalized in
 * double precision, then rounded to fixed point away from zero.
 */
function axisCoefficients(inSize: number, outSize: number, start: number, count: number): AxisCoefficients {
  const key = `${inSize}:${outSize}:${start}:${count}`;
  const cached = coefficientCache.get(key);
  if (cached !== undefined) return cached;

  const scale = inSize / outSize;
  const filterScale = scale < 1 ? 1 : scale;
  const support = 2 * filterScale;
  const inverseScale = 1 / filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(count * 2);
  const weights = new Int32Array(count * ksize);
  const w = new Float64Array(ksize);
  for (let i = 0; i < count; i++) {
    const center = (start + i + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let total = 0;
    for (let x = 0; x < xmax; x++) {
      const v = bicubic((x + xmin - center + 0.5) * inverseScale);
      w[x] = v;
      total += v;
    }
    for (let x = 0; x < xmax; x++) {
      const v = total === 0 ? w[x]! : w[x]! / total;
      weights[i * ksize + x] = Math.trunc(v < 0 ? v * (1 << PRECISION_BITS) - 0.5 : v * (1 << PRECISION_BITS) + 0.5);
    }
    bounds[i * 2] = xmin;
    bounds[i * 2 + 1] = xmax;
  }
  const coefficients = { bounds, weights, ksize };
  if (coefficientCache.size >= COEFFICIENT_CACHE_LIMIT) coefficientCache.clear();
  coefficientCache.set(key, coefficients);
  return coefficients;
}

function clip8(sum: number): number {
  if (sum <= 0) return 0;
  if (sum >= CLIP_HIGH) return 255;
  return sum >> PRECISION_BITS;
}

/**
 * Resizes an RGB image to `outWidth` x `outHeight` exactly as Pillow's `Image.resize(size,
 * BICUBIC)` does on an 8-bit RGB image (what Hugging Face's CLIP image processor calls), but
 * computes only `window` of the result. Every output pixel depends only on its own taps, so
 * the window is bit-identical to cropping the full resize, without paying for the discarded
 * part (or allocating it: a 2000x1 strip resized to a 224 short edge is 448,000 pixels wide).
 *
 * Like Pillow it runs the horizontal pass first into an 8-bit intermediate, only over the input
 * rows the vertical pass needs, and skips a pass whose size does not change.
 */
export function resizeBicubic(src: RgbImage, outWidth: number, outHeight: number, window: PixelWindow): RgbImage {
  const { left, top, width, height } = window;
  if (left < 0 || top < 0 || width < 1 || height < 1 || left + width > outWidth || top + height > outHeight) {
    throw new RangeError(`resize window ${width}x${height}+${left}+${top} lies outside ${outWidth}x${outHeight}`);
  }
  const needVertical = outHeight !== src.height;
  const vertical = needVertical ? axisCoefficients(src.height, outHeight, top, height) : undefined;
  const firstRow = vertical === undefined ? top : vertical.bounds[0]!;
  const lastRow = vertical === undefined ? top + height : vertical.bounds[(height - 1) * 2]! + vertical.bounds[(height - 1) * 2 + 1]!;

  const rows = horizontalPass(src, outWidth, left, width, firstRow, lastRow - firstRow);
  if (vertical === undefined) return rows;
  return verticalPass(rows, vertical, firstRow, height);
}

/** Resamples rows `[firstRow, firstRow + rowCount)` horizontally into columns `[left, left + width)` of `outWidth`. */
function horizontalPass(src: RgbImage, outWidth: number, left: number, width: number, firstRow: number, rowCount: number): RgbImage {
  const data = new Uint8Array(rowCount * width * 3);
  const input = src.data;
  const inStride = src.width * 3;
  if (outWidth === src.width) {
    for (let y = 0; y < rowCount; y++) {
      const from = (firstRow + y) * inStride + left * 3;
      data.set(input.subarray(from, from + width * 3), y * width * 3);
    }
    return { data, width, height: rowCount };
  }
  const { bounds, weights, ksize } = axisCoefficients(src.width, outWidth, left, width);
  let o = 0;
  for (let y = 0; y < rowCount; y++) {
    const rowStart = (firstRow + y) * inStride;
    for (let x = 0; x < width; x++) {
      const taps = bounds[x * 2 + 1]!;
      const k0 = x * ksize;
      let p = rowStart + bounds[x * 2]! * 3;
      let s0 = HALF;
      let s1 = HALF;
      let s2 = HALF;
      for (let t = 0; t < taps; t++, p += 3) {
        const k = weights[k0 + t]!;
        s0 += input[p]! * k;
        s1 += input[p + 1]! * k;
        s2 += input[p + 2]! * k;
      }
      data[o++] = clip8(s0);
      data[o++] = clip8(s1);
      data[o++] = clip8(s2);
    }
  }
  return { data, width, height: rowCount };
}

/**
 * Resamples vertically. Each output row accumulates whole input rows (tap-major) rather than
 * Pillow's pixel-major order: the integer sums are identical, and memory is read sequentially.
 */
function verticalPass(rows: RgbImage, coefficients: AxisCoefficients, firstRow: number, height: number): RgbImage {
  const { bounds, weights, ksize } = coefficients;
  const stride = rows.width * 3;
  const input = rows.data;
  const data = new Uint8Array(height * stride);
  const sums = new Int32Array(stride);
  for (let y = 0; y < height; y++) {
    sums.fill(HALF);
    const taps = bounds[y * 2 + 1]!;
    const rowBase = (bounds[y * 2]! - firstRow) * stride;
    for (let t = 0; t < taps; t++) {
      const k = weights[y * ksize + t]!;
      const from = rowBase + t * stride;
      for (let i = 0; i < stride; i++) sums[i] = sums[i]! + input[from + i]! * k;
    }
    const o = y * stride;
    for (let i = 0; i < stride; i++) data[o + i] = clip8(sums[i]!);
  }
  return { data, width: rows.width, height };
}
