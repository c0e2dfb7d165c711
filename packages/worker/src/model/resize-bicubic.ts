import type { RgbImage } from './image-decode.js';
import { instantiateKernels, reserveKernelMemory, type WasmKernels } from './wasm-kernels.js';

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

/** `pairWeights` of coefficients the horizontal kernel has used, made once for each. */
const pairLayouts = new WeakMap<AxisCoefficients, Int16Array>();

/**
 * The weights as the `horizontal` kernel reads them: per output pixel `ceil(ksize / 2)` pairs of
 * taps, each two vectors of eight 16-bit lanes, `lo0 lo1` and then `hi0 hi1` repeated for R, G and
 * B then two zeros, where a weight is `hi * 2048 + lo` with `lo` in 0..2047. Made only for the
 * horizontal pass (the vertical pass and the JavaScript passes read `weights`).
 */
function pairWeights(coefficients: AxisCoefficients): Int16Array {
  const cached = pairLayouts.get(coefficients);
  if (cached !== undefined) return cached;
  const { weights, ksize } = coefficients;
  const count = weights.length / ksize;
  const pairs = Math.ceil(ksize / 2);
  const out = new Int16Array(count * pairs * 16);
  for (let i = 0; i < count; i++) {
    for (let t = 0; t < ksize; t++) {
      const w = weights[i * ksize + t]!;
      const at = (i * pairs + (t >> 1)) * 16 + (t & 1);
      for (let c = 0; c < 3; c++) {
        out[at + 2 * c] = w & 2047;
        out[at + 8 + 2 * c] = w >> 11;
      }
    }
  }
  pairLayouts.set(coefficients, out);
  return out;
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
 * rows the vertical pass needs, and skips a pass whose size does not change. The passes run in
 * WebAssembly SIMD (same integer arithmetic, several times faster) unless the image needs more
 * than `wasmMemoryLimit` bytes of kernel memory; then the JavaScript passes below do it.
 */
export function resizeBicubic(src: RgbImage, outWidth: number, outHeight: number, window: PixelWindow): RgbImage {
  const plan = resizePlan(src, outWidth, outHeight, window);
  const placed = resizeInWasm(src, plan);
  if (placed === undefined) return resizeInJs(src, plan);
  const bytes = new Uint8Array(placed.kernels.memory.buffer);
  return { data: bytes.slice(placed.at, placed.at + window.width * window.height * 3), width: window.width, height: window.height };
}

/** Where `resizeBicubicCrop` writes an image's crop. */
export interface CropTarget {
  /** Size of the crop; the window lands at column `dx`, row `dy` of it. */
  readonly width: number;
  readonly height: number;
  readonly dx: number;
  readonly dy: number;
  /** The batch's crops, and where (in bytes) this one's `width x height x 3` RGB bytes start. */
  readonly out: Uint8Array;
  readonly offset: number;
}

/**
 * `resizeBicubic`, then Hugging Face's center crop, written into `target.out`: the window is copied
 * out of kernel memory once, into its place in the crop, and the part of the crop it does not cover
 * is zero (HF pads with zero pixels). A crop stays 8-bit, a quarter of the model's float input, so
 * the buffers between the preprocessing threads and the inference thread are a quarter the size;
 * the floats are made only where the model runs (`ChwTensor`).
 */
export function resizeBicubicCrop(src: RgbImage, outWidth: number, outHeight: number, window: PixelWindow, target: CropTarget): void {
  const { width, height, dx, dy, out, offset } = target;
  if (dx < 0 || dy < 0 || dx + window.width > width || dy + window.height > height) {
    throw new RangeError(`a ${window.width}x${window.height} window cannot land at +${dx}+${dy} of a ${width}x${height} crop`);
  }
  const bytes = 3 * width * height;
  if (!Number.isInteger(offset) || offset < 0 || offset + bytes > out.length) {
    throw new RangeError(`cannot write ${bytes} bytes at offset ${offset} into a buffer of ${out.length}`);
  }
  const plan = resizePlan(src, outWidth, outHeight, window);
  const placed = resizeInWasm(src, plan);
  const pixels = placed === undefined ? resizeInJs(src, plan).data : new Uint8Array(placed.kernels.memory.buffer, placed.at, window.width * window.height * 3);
  if (window.width === width && window.height === height) {
    out.set(pixels, offset);
    return;
  }
  out.fill(0, offset, offset + bytes);
  const rowBytes = window.width * 3;
  for (let y = 0; y < window.height; y++) out.set(pixels.subarray(y * rowBytes, (y + 1) * rowBytes), offset + ((dy + y) * width + dx) * 3);
}

/** What both passes need: each axis's coefficients (undefined: that pass is skipped) and the input rows read. */
interface ResizePlan {
  readonly window: PixelWindow;
  readonly horizontal: AxisCoefficients | undefined;
  readonly vertical: AxisCoefficients | undefined;
  readonly firstRow: number;
  readonly rowCount: number;
}

function resizePlan(src: RgbImage, outWidth: number, outHeight: number, window: PixelWindow): ResizePlan {
  const { left, top, width, height } = window;
  if (left < 0 || top < 0 || width < 1 || height < 1 || left + width > outWidth || top + height > outHeight) {
    throw new RangeError(`resize window ${width}x${height}+${left}+${top} lies outside ${outWidth}x${outHeight}`);
  }
  const vertical = outHeight === src.height ? undefined : axisCoefficients(src.height, outHeight, top, height);
  const firstRow = vertical === undefined ? top : vertical.bounds[0]!;
  const lastRow = vertical === undefined ? top + height : vertical.bounds[(height - 1) * 2]! + vertical.bounds[(height - 1) * 2 + 1]!;
  const horizontal = outWidth === src.width ? undefined : axisCoefficients(src.width, outWidth, left, width);
  return { window, horizontal, vertical, firstRow, rowCount: lastRow - firstRow };
}

/** Both passes in JavaScript, into fresh arrays. */
function resizeInJs(src: RgbImage, plan: ResizePlan): RgbImage {
  const { window, horizontal, vertical, firstRow, rowCount } = plan;
  const rows = horizontalPass(src, horizontal, window.left, window.width, firstRow, rowCount);
  if (vertical === undefined) return rows;
  return verticalPass(rows, vertical, firstRow, window.height);
}

/**
 * The input pixels `resizeBicubic(src, outWidth, outHeight, window)` reads from a `srcWidth` x
 * `srcHeight` image: the taps of the window's first and last columns and rows. A decoder that can
 * leave out the rest (the native JPEG decoder) decodes only this.
 */
export function resizeSourceWindow(srcWidth: number, srcHeight: number, outWidth: number, outHeight: number, window: PixelWindow): PixelWindow {
  const span = (inSize: number, outSize: number, start: number, count: number): [number, number] => {
    if (outSize === inSize) return [start, count];
    const { bounds } = axisCoefficients(inSize, outSize, start, count);
    const first = bounds[0]!;
    return [first, bounds[(count - 1) * 2]! + bounds[(count - 1) * 2 + 1]! - first];
  };
  const [left, width] = span(srcWidth, outWidth, window.left, window.width);
  const [top, height] = span(srcHeight, outHeight, window.top, window.height);
  return { left, top, width, height };
}

/**
 * Kernel memory never shrinks, so it is capped: one thread's resize buffers stay under 64 MiB
 * (a 20-megapixel photo fits); a larger image is resized by the JavaScript passes instead.
 */
const wasmMemoryLimit = 64 * 1024 * 1024;
/** Slack after each buffer: the kernels read and write up to 16 bytes past a row. */
const slack = 16;
let kernels: WasmKernels | undefined;

/** This thread's resize kernels, instantiated on first use (a module instance is per thread). */
function resizeKernels(): WasmKernels {
  kernels ??= instantiateKernels();
  return kernels;
}

/**
 * Copies coefficients into kernel memory at `at`, first input indices made relative to `origin`:
 * the bounds, then the weights as the pass reads them (`pairWeights` for the horizontal one).
 */
function placeCoefficients(heap: ArrayBuffer, at: number, c: AxisCoefficients, origin: number, weights: Int32Array | Int16Array): void {
  const bounds = new Int32Array(heap, at, c.bounds.length);
  bounds.set(c.bounds);
  for (let i = 0; i < bounds.length; i += 2) bounds[i] = bounds[i]! - origin;
  if (weights instanceof Int16Array) new Int16Array(heap, at + c.bounds.byteLength, weights.length).set(weights);
  else new Int32Array(heap, at + c.bounds.byteLength, weights.length).set(weights);
}

const align = (n: number): number => Math.ceil(n / 16) * 16;

/**
 * A view of `byteLength` bytes at the start of this thread's kernel memory, for a decoder to write
 * an image's pixels into so that `resizeBicubic` reads them where they lie instead of copying them
 * in; undefined when that would take kernel memory over `wasmMemoryLimit`. The view is valid until
 * the next call of either function on this thread: the caller decodes and resizes with no await
 * in between.
 */
export function resizeSourceBuffer(byteLength: number): Uint8Array | undefined {
  if (align(byteLength + slack) > wasmMemoryLimit) return undefined;
  const k = resizeKernels();
  reserveKernelMemory(k, align(byteLength + slack));
  return new Uint8Array(k.memory.buffer, 0, byteLength);
}

/**
 * Both passes in WebAssembly, or undefined when the buffers would exceed `wasmMemoryLimit`. The
 * window's pixels are left in kernel memory at `at`. A source from
 * `resizeSourceBuffer` already lies at the start of kernel memory and is read there; any other
 * source has the rows the passes need copied in.
 */
function resizeInWasm(src: RgbImage, plan: ResizePlan): { kernels: WasmKernels; at: number } | undefined {
  const { window, horizontal, vertical, firstRow, rowCount } = plan;
  const { left, width, height } = window;
  const inStride = src.width * 3;
  const stride = width * 3;
  const inPlace = kernels !== undefined && src.data.buffer === kernels.memory.buffer && src.data.byteOffset === 0;
  const sourceBytes = src.data.byteLength;
  // Layout: [source in place], horizontal coefficients, vertical coefficients, [copied source rows], intermediate, output.
  const hAt = inPlace ? align(sourceBytes + slack) : 0;
  const vAt = align(hAt + (horizontal === undefined ? 0 : horizontal.bounds.byteLength + pairWeights(horizontal).byteLength));
  const srcAt = align(vAt + (vertical === undefined ? 0 : vertical.bounds.byteLength + vertical.weights.byteLength));
  const midAt = align(srcAt + (horizontal === undefined || inPlace ? 0 : rowCount * inStride + slack));
  const dstAt = align(midAt + rowCount * stride + slack);
  const end = vertical === undefined ? dstAt : align(dstAt + height * stride + slack);
  if (end > wasmMemoryLimit) return undefined;
  const k = resizeKernels();
  reserveKernelMemory(k, end);
  const heap = k.memory.buffer;
  const bytes = new Uint8Array(heap);
  if (horizontal === undefined) {
    for (let y = 0; y < rowCount; y++) {
      const from = (firstRow + y) * inStride + left * 3;
      if (inPlace) bytes.copyWithin(midAt + y * stride, from, from + stride);
      else bytes.set(src.data.subarray(from, from + stride), midAt + y * stride);
    }
  } else {
    placeCoefficients(heap, hAt, horizontal, 0, pairWeights(horizontal));
    if (!inPlace) bytes.set(src.data.subarray(firstRow * inStride, (firstRow + rowCount) * inStride), srcAt);
    k.horizontal(inPlace ? firstRow * inStride : srcAt, inStride, rowCount, hAt, hAt + horizontal.bounds.byteLength, Math.ceil(horizontal.ksize / 2), width, midAt);
  }
  if (vertical === undefined) return { kernels: k, at: midAt };
  placeCoefficients(heap, vAt, vertical, firstRow, vertical.weights);
  k.vertical(midAt, stride, height, vAt, vAt + vertical.bounds.byteLength, vertical.ksize, dstAt);
  return { kernels: k, at: dstAt };
}

/** Resamples rows `[firstRow, firstRow + rowCount)` horizontally into columns `[left, left + width)`, or copies them when the width is unchanged. */
function horizontalPass(src: RgbImage, coefficients: AxisCoefficients | undefined, left: number, width: number, firstRow: number, rowCount: number): RgbImage {
  const data = new Uint8Array(rowCount * width * 3);
  const input = src.data;
  const inStride = src.width * 3;
  if (coefficients === undefined) {
    for (let y = 0; y < rowCount; y++) {
      const from = (firstRow + y) * inStride + left * 3;
      data.set(input.subarray(from, from + width * 3), y * width * 3);
    }
    return { data, width, height: rowCount };
  }
  const { bounds, weights, ksize } = coefficients;
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
