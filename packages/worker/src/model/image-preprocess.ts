import { decodeJpegNative, readNativeJpegHeader } from './decode-jpeg-native.js';
import { jpegScaleEighths } from './decode-jpeg-wasm.js';
import { decodeImage, readImageHeader, type DecodeOptions, type PixelSize, type RgbImage } from './image-decode.js';
import { resizedSize, type PreprocessSpec } from './preprocess-spec.js';
import { chwFloats } from './chw-tensor.js';
import { cropBytes, type PixelBatch } from './pixel-batch.js';
import { resizeBicubicCrop, resizeSourceWindow, type PixelWindow } from './resize-bicubic.js';

/** The whole preprocessing API (spec, options, entry points) is importable from this one module. */
export { parsePreprocessSpec, type PreprocessSpec } from './preprocess-spec.js';
export { defaultDecodeOptions, type DecodeOptions } from './image-decode.js';

/**
 * Rescale and normalize map each 8-bit value to one float per channel, so they are a 3 x 256
 * lookup table. Its entries repeat Hugging Face's float32 arithmetic step by step
 * (`float32(x * factor)`, then `(x - mean) / std` in float32), so values match bit for bit.
 */
const valueTables = new WeakMap<PreprocessSpec, Float32Array>();

/** The 3 x 256 table of `spec` that a PixelBatch carries; one per spec, computed once. */
function pixelValueTable(spec: PreprocessSpec): Float32Array {
  const cached = valueTables.get(spec);
  if (cached !== undefined) return cached;
  const table = new Float32Array(3 * 256);
  const { rescaleFactor, normalize } = spec;
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(normalize?.mean[c] ?? 0);
    const std = Math.fround(normalize?.std[c] ?? 1);
    for (let v = 0; v < 256; v++) {
      const scaled = rescaleFactor === undefined ? v : Math.fround(v * rescaleFactor);
      table[c * 256 + v] = normalize === undefined ? scaled : Math.fround(Math.fround(scaled - mean) / std);
    }
  }
  valueTables.set(spec, table);
  return table;
}

/**
 * Where Hugging Face's `center_crop` takes its window from a resized image: offsets
 * `floor((size - crop) / 2)`, negative when the image is smaller than the crop (it is then
 * padded with zero pixels, centered with `ceil` on the leading side, which lands at the same
 * offset). Returns the part of the resized image inside the crop and where it lands.
 */
function cropPlacement(resized: { width: number; height: number }, crop: { width: number; height: number }): { window: PixelWindow; dx: number; dy: number } {
  const left = Math.floor((resized.width - crop.width) / 2);
  const top = Math.floor((resized.height - crop.height) / 2);
  const x0 = Math.max(0, left);
  const y0 = Math.max(0, top);
  const window = {
    left: x0,
    top: y0,
    width: Math.min(resized.width, left + crop.width) - x0,
    height: Math.min(resized.height, top + crop.height) - y0,
  };
  return { window, dx: x0 - left, dy: y0 - top };
}

/**
 * Writes one image's crop into `out` at `offset` (bytes: `3 x outHeight x outWidth` of 8-bit RGB,
 * interleaved); throws RowError on a bad image. Follows Hugging Face's CLIPImageProcessor up to the
 * floats: convert to RGB, bicubic resize exactly as PIL does, center crop (padding with zero pixels
 * when too small). Rescale and normalize are `pixelValueTable(spec)`, applied where the model runs
 * (see PixelBatch). Writing in place lets a batch share one buffer instead of copying each image
 * into it.
 *
 * An 8-bit greyscale or YCbCr JPEG goes to the native libjpeg-turbo decoder when it is built
 * (header and decode with no sharp call, EXIF orientation undone, pixels written where the resize
 * kernels read them; at a DCT scale under `fastDecode`, rotated or not, with the same pixels as
 * `decodeImage` gives without the addon); everything else, and anything it declines, goes to sharp
 * through `decodeImage`.
 */
export async function preprocessImageInto(bytes: Buffer, spec: PreprocessSpec, options: DecodeOptions, out: Uint8Array, offset: number): Promise<void> {
  const size = 3 * spec.outHeight * spec.outWidth;
  if (!Number.isInteger(offset) || offset < 0 || offset + size > out.length) {
    throw new RangeError(`cannot write ${size} bytes at offset ${offset} into a buffer of ${out.length}`);
  }
  const jpeg = options.nativeJpeg === false ? undefined : readNativeJpegHeader(bytes, options.maxPixels);
  const header = jpeg ?? (await readImageHeader(bytes, options));
  const target = spec.resize === undefined ? undefined : resizedSize(spec.resize, header.width, header.height);
  if (jpeg !== undefined) {
    const eighths = options.fastDecode && target !== undefined ? jpegScaleEighths(header.width, header.height, target) : 8;
    // Decoded into the resize kernels' memory: resized before any await, as decodeJpegNative requires.
    const native = decodeJpegNative(bytes, jpeg, eighths, target === undefined ? undefined : readRegion(header, eighths, target, spec));
    if (native !== undefined) return cropInto(native, target, spec, out, offset);
  }
  cropInto(await decodeImage(bytes, header, options, target), target, spec, out, offset);
}

/** The pixels of a JPEG decoded at `eighths / 8` of `header`'s size that its resize to `target` and center crop read. */
function readRegion(header: PixelSize, eighths: number, target: PixelSize, spec: PreprocessSpec): PixelWindow {
  const { window } = cropPlacement(target, spec.crop ?? target);
  return resizeSourceWindow(Math.ceil((header.width * eighths) / 8), Math.ceil((header.height * eighths) / 8), target.width, target.height, window);
}

/** Resize to `target` (none: as decoded) and center crop into `out` at `offset` (`resizeBicubicCrop`). */
function cropInto(image: RgbImage, target: PixelSize | undefined, spec: PreprocessSpec, out: Uint8Array, offset: number): void {
  const resized = target ?? image;
  const crop = spec.crop ?? resized;
  const { window, dx, dy } = cropPlacement(resized, crop);
  resizeBicubicCrop(image, resized.width, resized.height, window, { width: crop.width, height: crop.height, dx, dy, out, offset });
}

/** The first `count` crops of `spec`'s size in `crops` (as `preprocessImageInto` wrote them), as the vision tower's embedder takes them. */
export function pixelBatch(spec: PreprocessSpec, crops: Uint8Array, count: number): PixelBatch {
  return { crops: crops.subarray(0, count * cropBytes(spec.outHeight, spec.outWidth)), count, height: spec.outHeight, width: spec.outWidth, table: pixelValueTable(spec) };
}

/** One image as a fresh `3 x outHeight x outWidth` float32 array, the model's input; see `preprocessImageInto`. */
export async function preprocessImage(bytes: Buffer, spec: PreprocessSpec, options: DecodeOptions): Promise<Float32Array> {
  const crop = new Uint8Array(cropBytes(spec.outHeight, spec.outWidth));
  await preprocessImageInto(bytes, spec, options, crop, 0);
  return chwFloats(pixelBatch(spec, crop, 1));
}
