import { createRequire } from 'node:module';
import type { ImageHeader, RgbImage } from './image-decode.js';
import { resizeSourceBuffer, type PixelWindow } from './resize-bicubic.js';

/**
 * The optional native addon built from packages/worker/native/jpeg-decode.c by the root `build`
 * (and `prepare`) script: libjpeg-turbo called the way Pillow calls it (default ISLOW IDCT and
 * fancy upsampling, RGB output), so its pixels are Pillow's by construction, at native SIMD speed
 * and without sharp's per-call pipeline (libuv hand-off, libvips threads, fresh output buffers).
 * Both functions are synchronous and print nothing; they return false on any libjpeg error or
 * warning, and the image then goes to sharp, which reports it as before.
 */
interface JpegAddon {
  /** Fills `out` with width, height, components, libjpeg colour space, precision, EXIF orientation (0 absent, -1 malformed), Adobe marker (1 present). */
  header(bytes: Uint8Array, out: Int32Array): boolean;
  /**
   * Decodes at `eighths / 8` of the size into `dest` (exactly the scaled width x height x 3 bytes),
   * turned upright for `orientation`; with `region` ([left, top, width, height], orientation 1
   * only), only the pixels inside it are written as a whole decode would write them.
   */
  decode(bytes: Uint8Array, eighths: number, dest: Uint8Array, orientation: number, region?: Int32Array): boolean;
}

/** libjpeg's J_COLOR_SPACE values for the cases the addon decodes. */
const JCS_GRAYSCALE = 1;
const JCS_YCBCR = 3;
const JCS_CMYK = 4;
const JCS_YCCK = 5;

function load(): { addon: JpegAddon | undefined; why: string } {
  try {
    return { addon: createRequire(import.meta.url)('../../native/build/jpeg-decode.node') as JpegAddon, why: '' };
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return { addon: undefined, why: code === 'MODULE_NOT_FOUND' ? 'the native decoder was not built' : (err instanceof Error ? err.message : String(err)).split('\n', 1)[0]! };
  }
}

const loaded = load();
const fields = new Int32Array(7);
const regionFields = new Int32Array(4);

/**
 * Which decoder plain JPEGs go to, for startup logs: the native libjpeg-turbo addon, or sharp and
 * why the addon is not in use (not built on this machine, or its library missing at run time).
 */
export function jpegDecoderDescription(): string {
  return loaded.addon !== undefined ? 'libjpeg-turbo (native addon)' : `sharp (${loaded.why})`;
}

/** True when the native addon loaded on this thread. */
export function nativeJpegAvailable(): boolean {
  return loaded.addon !== undefined;
}

/** A JPEG header read natively; like every ImageHeader, its sizes are after EXIF orientation. */
export interface NativeJpegHeader extends ImageHeader {
  /** The EXIF orientation (1 when absent) that `decodeJpegNative` undoes. */
  readonly orientation: number;
}

/**
 * The header of an 8-bit greyscale, YCbCr or Adobe CMYK/YCCK JPEG within `maxPixels`, read natively
 * without a sharp call; `plainJpeg` when it has no EXIF rotation. Undefined for anything else
 * (CMYK without the Adobe marker, 12-bit, an EXIF block that does not parse, a header libjpeg warns
 * about or rejects): `readImageHeader` (sharp) then reads it and names any error, exactly as
 * without this decoder.
 */
export function readNativeJpegHeader(bytes: Uint8Array, maxPixels: number): NativeJpegHeader | undefined {
  const addon = loaded.addon;
  if (addon === undefined || bytes.length < 3 || bytes[0] !== 0xff || bytes[1] !== 0xd8 || bytes[2] !== 0xff) return undefined;
  if (!addon.header(bytes, fields)) return undefined;
  const [width, height, components, space, precision, exifOrientation, adobe] = fields as unknown as [number, number, number, number, number, number, number];
  const colour =
    (components === 3 && space === JCS_YCBCR) || (components === 1 && space === JCS_GRAYSCALE) || (components === 4 && (space === JCS_CMYK || space === JCS_YCCK) && adobe === 1);
  if (precision !== 8 || !colour || exifOrientation < 0 || width * height > maxPixels) return undefined;
  const orientation = Math.max(1, exifOrientation);
  const sideways = orientation >= 5;
  return {
    format: 'jpeg',
    width: sideways ? height : width,
    height: sideways ? width : height,
    ...(orientation === 1 ? { plainJpeg: true } : { jpegOrientation: orientation }),
    ...(components === 4 ? { cmyk: true } : {}),
    orientation,
  };
}

/**
 * Decodes a JPEG (its header from `readNativeJpegHeader`) at `eighths / 8` of its size, upright,
 * straight into this thread's resize-kernel memory, where `resizeBicubic` reads it without a copy.
 * `region` (upright JPEGs only; in pixels of the decoded size) names the only pixels the caller
 * will read, as a center crop's resize does: the columns and rows outside it, less a margin, are
 * not decoded (their bytes in the result are left as they were), which saves a fifth to a half of
 * the decode on photos whose aspect ratio is not the crop's.
 * The pixels are valid only until the next decode or resize on this thread, so the caller resizes
 * them before any await. Returns undefined, never throws, when the addon is absent, the image does
 * not fit the kernels' memory, or libjpeg reports anything (damaged or truncated data): sharp then
 * decodes it, or names the row's error.
 */
export function decodeJpegNative(bytes: Uint8Array, header: NativeJpegHeader, eighths: number, region?: PixelWindow): RgbImage | undefined {
  const addon = loaded.addon;
  if (addon === undefined) return undefined;
  const width = Math.ceil((header.width * eighths) / 8);
  const height = Math.ceil((header.height * eighths) / 8);
  const dest = resizeSourceBuffer(width * height * 3);
  if (dest === undefined) return undefined;
  let decoded: boolean;
  if (region !== undefined && header.orientation === 1) {
    regionFields.set([region.left, region.top, region.width, region.height]);
    decoded = addon.decode(bytes, eighths, dest, 1, regionFields);
  } else {
    decoded = addon.decode(bytes, eighths, dest, header.orientation);
  }
  return decoded ? { data: dest, width, height } : undefined;
}
