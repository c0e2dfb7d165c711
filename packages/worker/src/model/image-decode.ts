import type { Metadata, OutputInfo, Sharp, SharpOptions } from 'sharp';
import { RowError } from '@vecmill/shared/errors';
import { cmykToRgb } from './cmyk-to-rgb.js';
import { decodeJpegWasm, jpegScaleEighths } from './decode-jpeg-wasm.js';
import { hasAdobeMarker } from './jpeg-adobe-marker.js';
import { orientUpright } from './orient-upright.js';

/** Raster formats vecmill decodes: the ones sharp's prebuilt libvips reads from a buffer. */
export type RasterFormat = 'jpeg' | 'png' | 'webp' | 'gif' | 'tiff' | 'avif' | 'heif';

/**
 * Image formats recognised only to be refused with `unsupported_format`: vector and document
 * formats (SVG, PDF) would run a renderer on untrusted input, the rest have no decoder here.
 */
export type ForeignImageFormat = 'svg' | 'pdf' | 'bmp' | 'ico' | 'jp2' | 'jxl' | 'psd';

/** Every format `sniffImageFormat` can name. */
export type ImageFormat = RasterFormat | ForeignImageFormat;

const rasterFormats: ReadonlySet<string> = new Set<RasterFormat>(['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif', 'heif']);

/** True for the formats vecmill decodes. */
export function isRasterFormat(format: ImageFormat): format is RasterFormat {
  return rasterFormats.has(format);
}

/** Limits and trade-offs for decoding untrusted images. */
export interface DecodeOptions {
  /**
   * Largest width x height accepted, read from the header before any pixel is decoded, so a
   * small file declaring a huge canvas (a decompression bomb) cannot exhaust memory.
   * Default 50,000,000 (an 8000x6000 photo fits, with room).
   */
  readonly maxPixels: number;
  /**
   * Decode JPEGs at a reduced scale (libjpeg's DCT shrink-on-load) that stays at least twice
   * the resize target, then resize exactly from there. Several times faster on large photos,
   * at the cost of embeddings that differ slightly from Hugging Face's. Other formats decode
   * at full size either way. Default false.
   */
  readonly fastDecode: boolean;
  /**
   * false: never use the native libjpeg-turbo decoder, even when it is built (sharp decodes every
   * image, as on a machine without the addon); tests use it to compare both paths. Default true.
   */
  readonly nativeJpeg?: boolean;
}

/** The defaults documented on DecodeOptions; the CLI's --max-pixels and --fast-decode override them. */
export const defaultDecodeOptions: DecodeOptions = { maxPixels: 50_000_000, fastDecode: false };

/** 8-bit RGB pixels, interleaved, row-major, no padding. */
export interface RgbImage {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
}

/** What an image's header says, validated before decoding. Sizes are after EXIF orientation. */
export interface ImageHeader {
  readonly format: RasterFormat;
  readonly width: number;
  readonly height: number;
  /**
   * An 8-bit greyscale, YCbCr or Adobe CMYK JPEG with no EXIF rotation: the native libjpeg-turbo decoder takes
   * it when built; otherwise, under `fastDecode`, libjpeg-turbo in WebAssembly decodes it at a
   * reduced DCT scale (an eighth, a quarter or a half: `jpegScaleEighths`).
   */
  readonly plainJpeg?: boolean;
  /**
   * The EXIF orientation (2-8) of a JPEG that would be plain but for it: under `fastDecode` it too
   * is decoded at a reduced DCT scale, then turned upright (`orientUpright`).
   */
  readonly jpegOrientation?: number;
  /** A CMYK image: decoded as CMYK and converted to RGB the way Pillow converts it (`cmykToRgb`). */
  readonly cmyk?: boolean;
}

/** A width and height in pixels. */
export interface PixelSize {
  readonly width: number;
  readonly height: number;
}

function startsWith(bytes: Uint8Array, at: number, signature: readonly number[]): boolean {
  if (bytes.length < at + signature.length) return false;
  return signature.every((b, i) => bytes[at + i] === b);
}

function ascii(text: string): number[] {
  return [...text].map((c) => c.charCodeAt(0));
}

const heifBrands = new Set(['heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'hevm', 'hevs', 'mif1', 'msf1']);
const avifBrands = new Set(['avif', 'avis']);
const bmpHeaderSizes = new Set([12, 40, 52, 56, 64, 108, 124]);

/** Brands of an ISO-BMFF `ftyp` box (major first), or empty when the bytes do not start with one. */
function ftypBrands(bytes: Uint8Array): string[] {
  if (!startsWith(bytes, 4, ascii('ftyp')) || bytes.length < 12) return [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const boxEnd = Math.min(view.getUint32(0), bytes.length);
  const brands = [String.fromCharCode(...bytes.subarray(8, 12))];
  for (let at = 16; at + 4 <= boxEnd; at += 4) brands.push(String.fromCharCode(...bytes.subarray(at, at + 4)));
  return brands;
}

/** SVG is text: optional BOM and whitespace, then markup that contains an `<svg` element early on. */
function looksLikeSvg(bytes: Uint8Array): boolean {
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, 4096)).toString('latin1');
  const text = head.replace(/^(\xef\xbb\xbf)?\s*/, '');
  return text.startsWith('<') && /<svg[\s>]/i.test(text);
}

/**
 * The image format named by the bytes' signature, or undefined when they match none. Cheap (a
 * few bytes are read, nothing is decoded), so it also serves content statistics and hashing.
 * Decoding relies on it to keep SVG, PDF and unknown data away from sharp's loaders entirely.
 */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (startsWith(bytes, 0, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (startsWith(bytes, 0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (startsWith(bytes, 0, ascii('GIF87a')) || startsWith(bytes, 0, ascii('GIF89a'))) return 'gif';
  if (startsWith(bytes, 0, ascii('RIFF')) && startsWith(bytes, 8, ascii('WEBP'))) return 'webp';
  if (
    startsWith(bytes, 0, [0x49, 0x49, 0x2a, 0x00]) ||
    startsWith(bytes, 0, [0x4d, 0x4d, 0x00, 0x2a]) ||
    startsWith(bytes, 0, [0x49, 0x49, 0x2b, 0x00]) ||
    startsWith(bytes, 0, [0x4d, 0x4d, 0x00, 0x2b])
  ) {
    return 'tiff';
  }
  const brands = ftypBrands(bytes);
  if (brands.some((b) => avifBrands.has(b))) return 'avif';
  if (brands.some((b) => heifBrands.has(b))) return 'heif';
  if (startsWith(bytes, 0, ascii('%PDF-'))) return 'pdf';
  if (startsWith(bytes, 0, ascii('8BPS'))) return 'psd';
  if (startsWith(bytes, 0, [0x00, 0x00, 0x01, 0x00]) && bytes.length > 6 && (bytes[4]! | bytes[5]!) !== 0) return 'ico';
  if (startsWith(bytes, 0, ascii('BM')) && bytes.length >= 18 && bmpHeaderSizes.has(bytes[14]! | (bytes[15]! << 8))) return 'bmp';
  if (startsWith(bytes, 0, [0x00, 0x00, 0x00, 0x0c, 0x6a, 0x50, 0x20, 0x20]) || startsWith(bytes, 0, [0xff, 0x4f, 0xff, 0x51])) return 'jp2';
  if (startsWith(bytes, 0, [0xff, 0x0a]) || startsWith(bytes, 0, [0x00, 0x00, 0x00, 0x0c, 0x4a, 0x58, 0x4c, 0x20])) return 'jxl';
  if (looksLikeSvg(bytes)) return 'svg';
  return undefined;
}

/**
 * sharp (and libvips with it) loads on first use: a preprocessing thread whose images all go to
 * the native JPEG decoder never pays its load, about 0.15 s of each thread's start and of every
 * `vecmill` command that imports this module.
 */
let sharpLoaded: Promise<typeof import('sharp')> | undefined;

async function openSharp(bytes: Buffer, options: SharpOptions): Promise<Sharp> {
  sharpLoaded ??= import('sharp');
  return (await sharpLoaded).default(bytes, options);
}

/** sharp's messages can span lines (one per libvips warning); a row error keeps the first. */
function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n', 1)[0] ?? message;
}

function tooManyPixels(width: number, height: number, maxPixels: number): RowError {
  return new RowError(
    'too_many_pixels',
    `image is ${width}x${height} (${width * height} pixels), over the ${maxPixels}-pixel limit; raise --max-pixels to embed it`,
  );
}

/**
 * Validates an image's signature and header without decoding pixels. Throws RowError:
 * `not_an_image` (empty or unrecognised bytes), `unsupported_format` (SVG, PDF, BMP, ...),
 * `corrupt_image` (a recognised format whose header does not parse) or `too_many_pixels`.
 */
export async function readImageHeader(bytes: Buffer, options: DecodeOptions): Promise<ImageHeader> {
  if (!Buffer.isBuffer(bytes)) throw new TypeError('readImageHeader takes image bytes as a Buffer (sharp reads a string as a file path)');
  if (bytes.length === 0) throw new RowError('not_an_image', 'image is empty (0 bytes)');
  const sniffed = sniffImageFormat(bytes);
  if (sniffed === undefined) {
    throw new RowError('not_an_image', `image bytes match no known image format (they start with 0x${bytes.subarray(0, 8).toString('hex')})`);
  }
  if (!isRasterFormat(sniffed)) {
    throw new RowError('unsupported_format', `${sniffed} images are not supported; convert them to JPEG, PNG or WebP`);
  }
  let metadata: Metadata;
  try {
    metadata = await (await openSharp(bytes, { failOn: 'truncated', limitInputPixels: false })).metadata();
  } catch (err) {
    throw new RowError('corrupt_image', `${sniffed} image header is corrupt: ${firstLine(err)}`, { cause: err });
  }
  const format = metadata.format === 'heif' && sniffed === 'avif' ? 'avif' : metadata.format;
  if (!rasterFormats.has(format)) {
    throw new RowError('unsupported_format', `${format} images are not supported; convert them to JPEG, PNG or WebP`);
  }
  const { width, height } = metadata;
  if (width * height > options.maxPixels) throw tooManyPixels(width, height, options.maxPixels);
  const colour = metadata.space === 'srgb' || metadata.space === 'b-w' || (metadata.space === 'cmyk' && hasAdobeMarker(bytes));
  const orientation = metadata.orientation ?? 1;
  const jpeg = format === 'jpeg' && colour && metadata.depth === 'uchar';
  return {
    format: format as RasterFormat,
    width: metadata.autoOrient.width,
    height: metadata.autoOrient.height,
    ...(jpeg && orientation === 1 ? { plainJpeg: true } : {}),
    ...(jpeg && orientation !== 1 ? { jpegOrientation: orientation } : {}),
    ...(metadata.space === 'cmyk' ? { cmyk: true } : {}),
  };
}

/**
 * The size sharp decodes a JPEG at under `fastDecode` (plain JPEGs shrink further, to the
 * smallest of an eighth, a quarter or a half that covers it, through `decodeJpegWasm`): about
 * twice `target`, so the exact resize that follows still antialiases, or undefined when shrinking
 * would not save enough to matter.
 */
function fastDecodeSize(header: ImageHeader, target: PixelSize): PixelSize | undefined {
  const factor = Math.min(header.width / target.width, header.height / target.height);
  if (factor < 4) return undefined;
  const half = factor / 2;
  return {
    width: Math.max(target.width, Math.round(header.width / half)),
    height: Math.max(target.height, Math.round(header.height / half)),
  };
}

/**
 * Decodes the first frame of an image (header already validated by `readImageHeader`) into 8-bit
 * RGB the way Hugging Face's `convert_rgb` sees it: EXIF orientation applied, greyscale and
 * palette expanded to three channels, CMYK converted as Pillow converts it, 16-bit reduced to 8-bit,
 * alpha dropped without compositing (PIL's `convert('RGB')`). Embedded ICC profiles are
 * ignored because PIL ignores them, and CLIP was trained and evaluated that way.
 *
 * `resizeTarget` is the size the caller resizes to next; only `fastDecode` uses it: a plain JPEG
 * (or one that is plain but for its EXIF orientation, turned upright after) is then decoded at
 * the smallest of 1/8, 1/4 and 1/2 of its size that stays at least `resizeTarget` (the DCT does
 * most of the shrinking, the exact resize the rest), other JPEGs at about twice the target.
 * This is the path without the native decoder (`preprocessImageInto` tries that first): the exact
 * path decodes with sharp, since the WebAssembly decoder gives the same pixels but measured no
 * cheaper at full size; `fastDecode` keeps the WebAssembly decoder, so a machine without a C
 * compiler still decodes plain JPEGs at a reduced scale.
 * Throws RowError `corrupt_image` for truncated or damaged pixel data.
 */
export async function decodeImage(bytes: Buffer, header: ImageHeader, options: DecodeOptions, resizeTarget?: PixelSize): Promise<RgbImage> {
  if (!Buffer.isBuffer(bytes)) throw new TypeError('decodeImage takes image bytes as a Buffer (sharp reads a string as a file path)');
  const orientation = header.plainJpeg === true ? 1 : header.jpegOrientation;
  const eighths = options.fastDecode && orientation !== undefined && resizeTarget !== undefined ? jpegScaleEighths(header.width, header.height, resizeTarget) : 8;
  if (orientation !== undefined && eighths < 8) {
    const sideways = orientation >= 5;
    const decoded = decodeJpegWasm(bytes, sideways ? header.height : header.width, sideways ? header.width : header.height, eighths);
    if (decoded !== undefined) return orientUpright(decoded, orientation);
  }
  const pipeline = await openSharp(bytes, {
    failOn: 'truncated',
    limitInputPixels: options.maxPixels,
    pages: 1,
    autoOrient: true,
    ignoreIcc: true,
  });
  const reduced = options.fastDecode && header.format === 'jpeg' && resizeTarget !== undefined ? fastDecodeSize(header, resizeTarget) : undefined;
  if (reduced !== undefined) {
    pipeline.resize(reduced.width, reduced.height, { fit: 'fill', kernel: 'cubic', fastShrinkOnLoad: true });
  }
  let decoded: { data: Buffer; info: OutputInfo };
  try {
    // A CMYK pipeline end to end: libvips hands over the file's samples, with no ICC transform.
    const converted = header.cmyk === true ? pipeline.pipelineColourspace('cmyk').toColourspace('cmyk') : pipeline.removeAlpha().toColourspace('srgb');
    decoded = await converted.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (err) {
    if (/pixel limit/i.test(firstLine(err))) throw tooManyPixels(header.width, header.height, options.maxPixels);
    throw new RowError('corrupt_image', `${header.format} image data is corrupt or truncated: ${firstLine(err)}`, { cause: err });
  }
  const { data, info } = decoded;
  if (header.cmyk === true && info.channels >= 4) return { data: cmykToRgb(data, info.width * info.height, info.channels), width: info.width, height: info.height };
  if (info.channels !== 3) throw new Error(`sharp returned ${info.channels} channels for a ${header.format} image after RGB conversion`);
  return { data, width: info.width, height: info.height };
}
