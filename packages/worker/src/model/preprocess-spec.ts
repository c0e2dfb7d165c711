import { ModelError } from '@vecmill/shared/errors';
import type { PixelSize } from './image-decode.js';

/**
 * How an image is resized before cropping. `shortest-edge` keeps the aspect ratio (OpenAI CLIP);
 * `exact` stretches to a fixed size (Chinese-CLIP).
 */
export type ResizeRule =
  | { readonly kind: 'shortest-edge'; readonly shortestEdge: number }
  | { readonly kind: 'exact'; readonly height: number; readonly width: number };

/** Per-channel `(x - mean) / std`, in RGB order. */
export interface Normalization {
  readonly mean: readonly [number, number, number];
  readonly std: readonly [number, number, number];
}

/**
 * A validated `preprocessor_config.json` with Hugging Face's defaults filled in, so decoding
 * never has to ask what a missing key means. Absent steps are `undefined`.
 */
export interface PreprocessSpec {
  /** Undefined when `do_resize` is false. */
  readonly resize: ResizeRule | undefined;
  /** Center crop size; undefined when `do_center_crop` is false. */
  readonly crop: PixelSize | undefined;
  /** Pixel multiplier (1/255 by default); undefined when `do_rescale` is false. */
  readonly rescaleFactor: number | undefined;
  /** Undefined when `do_normalize` is false. */
  readonly normalize: Normalization | undefined;
  /** Height and width of every preprocessed image: the model's input size. */
  readonly outHeight: number;
  readonly outWidth: number;
}

/** OpenAI CLIP's training statistics: Hugging Face's defaults for `image_mean` / `image_std`. */
const clipMean: readonly [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
const clipStd: readonly [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

/** SigLIP's statistics (Hugging Face's IMAGENET_STANDARD_MEAN / _STD): SiglipImageProcessor's defaults. */
const halfStats: readonly [number, number, number] = [0.5, 0.5, 0.5];

/**
 * The image processor classes vecmill reproduces, by `image_processor_type` (or the older
 * `feature_extractor_type`). CLIP and Chinese-CLIP share CLIPImageProcessor's steps and defaults
 * (Chinese-CLIP's configs give an exact `{height, width}` size and switch the crop off);
 * SigLIP's processor has no crop step at all and defaults to 224x224 and mean/std 0.5.
 */
type ProcessorKind = 'clip' | 'siglip';

const processorKinds: Readonly<Record<string, ProcessorKind>> = {
  CLIPImageProcessor: 'clip',
  CLIPFeatureExtractor: 'clip',
  ChineseCLIPImageProcessor: 'clip',
  ChineseCLIPFeatureExtractor: 'clip',
  SiglipImageProcessor: 'siglip',
};

function processorKind(json: Readonly<Record<string, unknown>>): ProcessorKind {
  const named = json['image_processor_type'] ?? json['feature_extractor_type'];
  if (named === undefined || named === null) return 'clip';
  const kind = typeof named === 'string' ? processorKinds[named.replace(/Fast$/, '')] : undefined;
  if (kind === undefined) {
    throw new ModelError(
      `preprocessor_config.json: image_processor_type ${JSON.stringify(named)} is not one vecmill reproduces (it knows ${Object.keys(processorKinds).join(', ')}); use a model folder of a CLIP, Chinese-CLIP or SigLIP export`,
      { field: 'image_processor_type' },
    );
  }
  return kind;
}

/** PIL's resampling code for bicubic, the only filter vecmill implements. */
const PIL_BICUBIC = 3;

/** Larger sizes are not a CLIP input; they are almost certainly a typo in the config. */
const MAX_SIDE = 4096;

function fail(field: string, problem: string, got: unknown): ModelError {
  return new ModelError(
    `preprocessor_config.json: ${field} ${problem} (got ${JSON.stringify(got) ?? String(got)}); fix the model folder's preprocessor_config.json`,
    { field },
  );
}

function isRecord(value: unknown): value is Readonly<Record<string, unknown>> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function flag(config: Readonly<Record<string, unknown>>, field: string, fallback: boolean): boolean {
  const value = config[field];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'boolean') throw fail(field, 'must be true or false', value);
  return value;
}

function side(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_SIDE) {
    throw fail(field, `must be an integer from 1 to ${MAX_SIDE}`, value);
  }
  return value;
}

function heightWidth(value: Readonly<Record<string, unknown>> | readonly unknown[], field: string): PixelSize {
  if (Array.isArray(value)) {
    if (value.length !== 2) throw fail(field, 'must be [height, width]', value);
    return { height: side(value[0], `${field}[0]`), width: side(value[1], `${field}[1]`) };
  }
  const record = value as Readonly<Record<string, unknown>>;
  return { height: side(record['height'], `${field}.height`), width: side(record['width'], `${field}.width`) };
}

/** `size`: a number or `{shortest_edge}` keeps the aspect; `{height, width}` or `[h, w]` is exact (HF's `get_size_dict`). */
function parseResize(value: unknown): ResizeRule {
  if (value === undefined || value === null) return { kind: 'shortest-edge', shortestEdge: 224 };
  if (typeof value === 'number') return { kind: 'shortest-edge', shortestEdge: side(value, 'size') };
  if (Array.isArray(value)) return { kind: 'exact', ...heightWidth(value, 'size') };
  if (!isRecord(value)) throw fail('size', 'must be a number, {"shortest_edge": n} or {"height": h, "width": w}', value);
  const keys = Object.keys(value).sort().join(',');
  if (keys === 'shortest_edge') return { kind: 'shortest-edge', shortestEdge: side(value['shortest_edge'], 'size.shortest_edge') };
  if (keys === 'height,width') return { kind: 'exact', ...heightWidth(value, 'size') };
  throw fail('size', 'must be a number, {"shortest_edge": n} or {"height": h, "width": w}', value);
}

/** `crop_size`: a number is a square (HF's `get_size_dict(..., default_to_square=True)`). */
function parseCrop(value: unknown): PixelSize {
  if (value === undefined || value === null) return { height: 224, width: 224 };
  if (typeof value === 'number') {
    const n = side(value, 'crop_size');
    return { height: n, width: n };
  }
  if (Array.isArray(value) || isRecord(value)) return heightWidth(value, 'crop_size');
  throw fail('crop_size', 'must be a number or {"height": h, "width": w}', value);
}

function channelStats(value: unknown, field: string, fallback: readonly [number, number, number], positive: boolean): readonly [number, number, number] {
  if (value === undefined || value === null) return fallback;
  const values = typeof value === 'number' ? [value, value, value] : value;
  if (!Array.isArray(values) || values.length !== 3) throw fail(field, 'must be a number or a list of 3 numbers (R, G, B)', value);
  for (const v of values) {
    if (typeof v !== 'number' || !Number.isFinite(v) || (positive && v <= 0)) {
      throw fail(field, positive ? 'must hold positive numbers' : 'must hold finite numbers', value);
    }
  }
  return [values[0] as number, values[1] as number, values[2] as number];
}

/** Only bicubic `resample` is implemented; `do_convert_rgb` is checked but not stored (images always become RGB). */
function checkResampleAndRgb(json: Readonly<Record<string, unknown>>): void {
  const resample = json['resample'];
  if (resample !== undefined && resample !== null && resample !== PIL_BICUBIC) {
    throw fail('resample', `must be ${PIL_BICUBIC} (bicubic), the only resampling vecmill implements`, resample);
  }
  flag(json, 'do_convert_rgb', true);
}

/** The rescale factor (1/255 by default), or undefined when `do_rescale` is false. */
function parseRescale(json: Readonly<Record<string, unknown>>): number | undefined {
  if (!flag(json, 'do_rescale', true)) return undefined;
  const factor = json['rescale_factor'] ?? 1 / 255;
  if (typeof factor !== 'number' || !Number.isFinite(factor) || factor <= 0) throw fail('rescale_factor', 'must be a positive number', factor);
  return factor;
}

/**
 * Validates a model folder's `preprocessor_config.json` (already parsed as JSON) with Hugging
 * Face `CLIPImageProcessor` semantics and defaults (ChineseCLIPImageProcessor's are the same;
 * `SiglipImageProcessor` configs get SigLIP's, see `parseSiglipSpec`). A bad value throws ModelError naming the
 * field, when the model loads rather than on the first image. `do_convert_rgb` is checked but
 * not stored: the vision graph takes three channels, so images are always converted to RGB.
 * Only bicubic `resample` (3) is accepted; it is what every CLIP checkpoint uses.
 */
export function parsePreprocessSpec(json: unknown): PreprocessSpec {
  if (!isRecord(json)) throw fail('(top level)', 'must be a JSON object', json);
  if (processorKind(json) === 'siglip') return parseSiglipSpec(json);
  checkResampleAndRgb(json);

  const resize = flag(json, 'do_resize', true) ? parseResize(json['size']) : undefined;
  const crop = flag(json, 'do_center_crop', true) ? parseCrop(json['crop_size']) : undefined;

  const rescaleFactor = parseRescale(json);

  const normalize = flag(json, 'do_normalize', true)
    ? { mean: channelStats(json['image_mean'], 'image_mean', clipMean, false), std: channelStats(json['image_std'], 'image_std', clipStd, true) }
    : undefined;

  const out = crop ?? (resize?.kind === 'exact' ? resize : undefined);
  if (out === undefined) {
    throw new ModelError(
      'preprocessor_config.json: do_center_crop is false and size fixes no height and width, so images would come out in different sizes; set do_center_crop to true or size to {"height": h, "width": w}',
      { field: 'do_center_crop' },
    );
  }
  return { resize, crop, rescaleFactor, normalize, outHeight: out.height, outWidth: out.width };
}

/**
 * SiglipImageProcessor: resize to `size` ({height, width}, default 224x224) with `resample`,
 * no center crop (the class has none, whatever the config says), rescale, normalize with mean
 * and std 0.5 by default.
 */
function parseSiglipSpec(json: Readonly<Record<string, unknown>>): PreprocessSpec {
  checkResampleAndRgb(json);
  const size = json['size'] ?? { height: 224, width: 224 };
  if (!(isRecord(size) && Object.keys(size).sort().join(',') === 'height,width')) throw fail('size', 'must be {"height": h, "width": w} for SiglipImageProcessor', size);
  const exact = heightWidth(size, 'size');
  const resize: ResizeRule | undefined = flag(json, 'do_resize', true) ? { kind: 'exact', ...exact } : undefined;
  if (resize === undefined) {
    throw new ModelError('preprocessor_config.json: do_resize is false, so SigLIP images would come out in different sizes; set do_resize to true', { field: 'do_resize' });
  }
  const rescaleFactor = parseRescale(json);
  const normalize = flag(json, 'do_normalize', true)
    ? { mean: channelStats(json['image_mean'], 'image_mean', halfStats, false), std: channelStats(json['image_std'], 'image_std', halfStats, true) }
    : undefined;
  return { resize, crop: undefined, rescaleFactor, normalize, outHeight: exact.height, outWidth: exact.width };
}

/**
 * The size an image of `width` x `height` is resized to, as Hugging Face computes it: for
 * `shortest-edge`, the short side becomes S and the long side `int(S * long / short)`
 * (truncated, from the same double arithmetic as Python's).
 */
export function resizedSize(rule: ResizeRule, width: number, height: number): PixelSize {
  if (rule.kind === 'exact') return { width: rule.width, height: rule.height };
  const s = rule.shortestEdge;
  if (width <= height) return { width: s, height: Math.trunc((s * height) / width) };
  return { width: Math.trunc((s * width) / height), height: s };
}
