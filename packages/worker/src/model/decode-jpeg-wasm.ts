import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cmykToRgb } from './cmyk-to-rgb.js';
import type { PixelSize, RgbImage } from './image-decode.js';
import { hasAdobeMarker } from './jpeg-adobe-marker.js';

/**
 * libjpeg-turbo's TurboJPEG API compiled to WebAssembly, as the `@cwasm/jpeg-turbo` package ships
 * it (a prebuilt module: no compiler on install). It serves `--fast-decode` where the native addon
 * (decode-jpeg-native.ts) is not built, so a machine without a C compiler keeps the DCT-scaled
 * decode and the same pixels (a unit test checks both decoders agree at every scale): TurboJPEG decodes at
 * any eighth of the size through the DCT (sharp's shrink-on-load only halves), with the same ISLOW
 * IDCT and fancy upsampling as Pillow's libjpeg-turbo, so at full size its pixels are identical to
 * Pillow's and sharp's (a unit test checks that on real photos).
 */
interface TurboJpeg {
  readonly memory: { readonly buffer: ArrayBuffer };
  readonly malloc: (size: number) => number;
  readonly free: (ptr: number) => void;
  readonly tjInitDecompress: () => number;
  readonly tjDecompressHeader3: (handle: number, src: number, size: number, width: number, height: number, subsamp: number, colorspace: number) => number;
  readonly tjDecompress2: (handle: number, src: number, size: number, dst: number, width: number, pitch: number, height: number, pixelFormat: number, flags: number) => number;
  readonly tjDestroy: (handle: number) => number;
}

/** The few WebAssembly declarations used here (the project's TypeScript libs do not include them). */
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, (...args: number[]) => number>>) => { exports: Record<string, unknown> };
};

const TJPF_RGB = 0;
const TJPF_CMYK = 11;
const TJCS_YCBCR = 1;
const TJCS_GRAY = 2;
const TJCS_CMYK = 3;
const TJCS_YCCK = 4;
/** Fail on libjpeg warnings (premature end of data, corrupt segments): sharp then decides, as before. */
const TJFLAG_STOPONWARNING = 8192;

/**
 * Decoded pixels plus input stay under this many bytes, or the image goes to sharp: WebAssembly
 * memory never shrinks, so the cap bounds each thread's decoder memory (a 12-megapixel photo fits).
 */
const wasmDecodeLimit = 48 * 1024 * 1024;

let compiled: object | undefined;
let instance: TurboJpeg | undefined;

/**
 * The C library reports fatal errors through longjmp, which this build has no way to unwind, so it
 * throws through the WebAssembly frames instead; the instance is then discarded (its heap may hold
 * the aborted decode) and the next call starts a fresh one.
 */
function turboJpeg(): TurboJpeg {
  if (instance !== undefined) return instance;
  compiled ??= new WebAssembly.Module(readFileSync(createRequire(import.meta.url).resolve('@cwasm/jpeg-turbo/jpeg-turbo.wasm')));
  const fail = (): number => {
    throw new Error('libjpeg-turbo aborted the decode');
  };
  const wasi = { proc_exit: fail, environ_sizes_get: () => 0, environ_get: fail, fd_close: fail, fd_seek: fail, fd_write: fail };
  const created = new WebAssembly.Instance(compiled, { env: { setjmp: () => 0, longjmp: fail }, wasi_snapshot_preview1: wasi });
  instance = created.exports as unknown as TurboJpeg;
  return instance;
}

/**
 * The DCT scale `m/8` with the smallest `m` of 1, 2 and 4 that keeps both sides at least
 * `target`: the cheapest decode the exact resize can still start from. libjpeg-turbo decodes at
 * any eighth, but only these scales (and 8) have its SIMD inverse DCTs: at 3, 5, 6 or 7 eighths
 * the scalar ones (and 12 or 14 point ones for subsampled chroma) made a decode slower than at
 * the next power of two.
 */
export function jpegScaleEighths(width: number, height: number, target: PixelSize): number {
  for (const m of [1, 2, 4]) {
    if (Math.ceil((width * m) / 8) >= target.width && Math.ceil((height * m) / 8) >= target.height) return m;
  }
  return 8;
}

/**
 * Decodes a greyscale, YCbCr or Adobe CMYK/YCCK JPEG (baseline or progressive, 8-bit) to RGB,
 * scaled by `eighths / 8` (8 = full size); CMYK is converted as Pillow converts it (`cmykToRgb`),
 * as the native decoder does. Returns undefined, never throws, for anything it does not decode
 * cleanly (CMYK without the Adobe marker, warnings, corrupt data, over the memory cap): the caller
 * falls back to sharp, which reports the error or handles the format.
 */
export function decodeJpegWasm(bytes: Uint8Array, width: number, height: number, eighths = 8): RgbImage | undefined {
  if (width * height * 4 + bytes.length > wasmDecodeLimit) return undefined;
  try {
    return decodeWith(turboJpeg(), bytes, width, height, eighths);
  } catch {
    instance = undefined;
    return undefined;
  }
}

function decodeWith(tj: TurboJpeg, bytes: Uint8Array, width: number, height: number, eighths: number): RgbImage | undefined {
  const handle = tj.tjInitDecompress();
  if (handle === 0) return undefined;
  const headerOffset = Math.ceil(bytes.length / 4) * 4;
  const src = tj.malloc(headerOffset + 16);
  try {
    if (src === 0) return undefined;
    new Uint8Array(tj.memory.buffer, src, bytes.length).set(bytes);
    const header = src + headerOffset;
    if (tj.tjDecompressHeader3(handle, src, bytes.length, header, header + 4, header + 8, header + 12) !== 0) return undefined;
    const [w, h, , colorspace] = new Int32Array(tj.memory.buffer, header, 4);
    const cmyk = (colorspace === TJCS_CMYK || colorspace === TJCS_YCCK) && hasAdobeMarker(bytes);
    if (w !== width || h !== height || (colorspace !== TJCS_YCBCR && colorspace !== TJCS_GRAY && !cmyk)) return undefined;
    const outWidth = Math.ceil((width * eighths) / 8);
    const outHeight = Math.ceil((height * eighths) / 8);
    const channels = cmyk ? 4 : 3;
    const size = outWidth * outHeight * channels;
    const dst = tj.malloc(size);
    if (dst === 0) return undefined;
    try {
      const format = cmyk ? TJPF_CMYK : TJPF_RGB;
      if (tj.tjDecompress2(handle, src, bytes.length, dst, outWidth, outWidth * channels, outHeight, format, TJFLAG_STOPONWARNING) !== 0) return undefined;
      const pixels = new Uint8Array(tj.memory.buffer, dst, size);
      return { data: cmyk ? cmykToRgb(pixels, outWidth * outHeight, 4, true) : pixels.slice(), width: outWidth, height: outHeight };
    } finally {
      tj.free(dst);
    }
  } finally {
    if (src !== 0) tj.free(src);
    tj.tjDestroy(handle);
  }
}
