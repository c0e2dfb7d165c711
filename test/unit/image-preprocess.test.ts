import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { ModelError, RowError } from '@vecmill/shared/errors';
import { defaultDecodeOptions } from '@vecmill/worker/model/image-decode';
import { preprocessImage, preprocessImageInto } from '@vecmill/worker/model/image-preprocess';
import { parsePreprocessSpec, resizedSize, type PreprocessSpec } from '@vecmill/worker/model/preprocess-spec';
import { resizeBicubic, resizeBicubicCrop, type PixelWindow } from '@vecmill/worker/model/resize-bicubic';
import { fixturesSkipReason, sharedFixturesDir } from '../support/fixtures.js';

const clipMean = [0.48145466, 0.4578275, 0.40821073] as const;
const clipStd = [0.26862954, 0.26130258, 0.27577711] as const;
const clipSpec = parsePreprocessSpec({});

/** Hugging Face's arithmetic for one 8-bit value: float32(v * (1/255)), then (x - mean) / std in float32. */
function expected(v: number, channel: number, mean: readonly number[] = clipMean, std: readonly number[] = clipStd): number {
  const scaled = Math.fround(v * (1 / 255));
  return Math.fround(Math.fround(scaled - Math.fround(mean[channel]!)) / Math.fround(std[channel]!));
}

/** Value at (channel, y, x) of a CHW block. */
function at(out: Float32Array, spec: PreprocessSpec, c: number, y: number, x: number): number {
  return out[(c * spec.outHeight + y) * spec.outWidth + x]!;
}

function rgbAt(out: Float32Array, spec: PreprocessSpec, y: number, x: number): number[] {
  return [0, 1, 2].map((c) => at(out, spec, c, y, x));
}

function expectedRgb(rgb: readonly number[]): number[] {
  return rgb.map((v, c) => expected(v, c));
}

/** An image drawn pixel by pixel from `colour(x, y)`, as lossless PNG. */
async function drawn(width: number, height: number, colour: (x: number, y: number) => readonly number[]): Promise<Buffer> {
  return sharp(rawPixels(width, height, colour), { raw: { width, height, channels: 3 } }).png().toBuffer();
}

function rawPixels(width: number, height: number, colour: (x: number, y: number) => readonly number[]): Buffer {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(colour(x, y), (y * width + x) * 3);
  return data;
}

/** The test pattern the Pillow goldens below were computed from (Pillow 9.4, `Image.resize(size, Image.BICUBIC)`). */
function pattern(x: number, y: number): number[] {
  return [(x * 7 + y * 13) & 255, (x * x + 3 * y) & 255, (x * y + 50) & 255];
}

function sha256(bytes: ArrayBufferView): string {
  return createHash('sha256').update(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)).digest('hex');
}

async function uniform(width: number, height: number, rgb: readonly number[]): Promise<Buffer> {
  return drawn(width, height, () => rgb);
}

function assertUniform(out: Float32Array, rgb: readonly number[], label: string): void {
  const plane = out.length / 3;
  for (let c = 0; c < 3; c++) {
    const want = expected(rgb[c]!, c);
    for (let i = 0; i < plane; i++) {
      if (out[c * plane + i] !== want) assert.fail(`${label}: channel ${c} pixel ${i} is ${out[c * plane + i]}, expected ${want}`);
    }
  }
}

test('parsePreprocessSpec fills Hugging Face defaults and normalizes every accepted shape', () => {
  const cases: [string, unknown, Partial<PreprocessSpec>][] = [
    ['empty config: CLIPImageProcessor defaults', {}, {
      resize: { kind: 'shortest-edge', shortestEdge: 224 }, crop: { height: 224, width: 224 }, rescaleFactor: 1 / 255,
      normalize: { mean: clipMean, std: clipStd }, outHeight: 224, outWidth: 224,
    }],
    ['OpenAI CLIP ViT-L/14-336', {
      crop_size: { height: 336, width: 336 }, do_center_crop: true, do_convert_rgb: true, do_normalize: true, do_rescale: true, do_resize: true,
      image_mean: [0.48145466, 0.4578275, 0.40821073], image_std: [0.26862954, 0.26130258, 0.27577711], resample: 3,
      rescale_factor: 0.00392156862745098, size: { shortest_edge: 336 }, image_processor_type: 'CLIPImageProcessor',
    }, { resize: { kind: 'shortest-edge', shortestEdge: 336 }, crop: { height: 336, width: 336 }, rescaleFactor: 0.00392156862745098, outHeight: 336, outWidth: 336 }],
    ['legacy plain numbers', { size: 224, crop_size: 224, feature_extractor_type: 'CLIPFeatureExtractor' }, {
      resize: { kind: 'shortest-edge', shortestEdge: 224 }, crop: { height: 224, width: 224 },
    }],
    ['Chinese-CLIP: exact size, no crop', { size: { height: 224, width: 224 }, do_center_crop: false, crop_size: { height: 224, width: 224 } }, {
      resize: { kind: 'exact', height: 224, width: 224 }, crop: undefined, outHeight: 224, outWidth: 224,
    }],
    ['size as [height, width], crop rectangle', { size: [240, 320], crop_size: { height: 200, width: 300 } }, {
      resize: { kind: 'exact', height: 240, width: 320 }, crop: { height: 200, width: 300 }, outHeight: 200, outWidth: 300,
    }],
    ['steps switched off', { do_resize: false, do_rescale: false, do_normalize: false, crop_size: 64 }, {
      resize: undefined, rescaleFactor: undefined, normalize: undefined, outHeight: 64, outWidth: 64,
    }],
    ['scalar mean and std broadcast', { image_mean: 0.5, image_std: 0.25 }, { normalize: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] } }],
    ['nulls mean defaults', { size: null, do_resize: null, image_mean: null }, { resize: { kind: 'shortest-edge', shortestEdge: 224 }, normalize: { mean: clipMean, std: clipStd } }],
  ];
  for (const [label, json, want] of cases) {
    const spec = parsePreprocessSpec(json);
    for (const [key, value] of Object.entries(want)) {
      assert.deepEqual(spec[key as keyof PreprocessSpec], value, `${label}: ${key}`);
    }
  }
});

test('parsePreprocessSpec refuses bad values with a ModelError naming the field', () => {
  const cases: [unknown, string][] = [
    [null, '(top level)'],
    [[224], '(top level)'],
    [{ size: { shortest_edge: 0 } }, 'size.shortest_edge'],
    [{ size: { shortest_edge: 224.5 } }, 'size.shortest_edge'],
    [{ size: { longest_edge: 224 } }, 'size'],
    [{ size: 'big' }, 'size'],
    [{ size: [224] }, 'size'],
    [{ size: { height: 224, width: -1 } }, 'size.width'],
    [{ crop_size: { height: -3, width: 224 } }, 'crop_size.height'],
    [{ crop_size: 100_000 }, 'crop_size'],
    [{ do_resize: 'yes' }, 'do_resize'],
    [{ do_convert_rgb: 1 }, 'do_convert_rgb'],
    [{ rescale_factor: '1/255' }, 'rescale_factor'],
    [{ rescale_factor: 0 }, 'rescale_factor'],
    [{ image_mean: [0.5, 0.5] }, 'image_mean'],
    [{ image_mean: [0.5, 'x', 0.5] }, 'image_mean'],
    [{ image_std: [0.5, 0, 0.5] }, 'image_std'],
    [{ resample: 2 }, 'resample'],
    [{ do_center_crop: false }, 'do_center_crop'],
    [{ do_center_crop: false, do_resize: false, size: { height: 224, width: 224 } }, 'do_center_crop'],
  ];
  for (const [json, field] of cases) {
    assert.throws(
      () => parsePreprocessSpec(json),
      (err: unknown) => err instanceof ModelError && err.context['field'] === field && err.message.includes(field) && !err.message.includes('\n'),
      `${JSON.stringify(json)} should fail on ${field}`,
    );
  }
});

test('resizedSize follows get_resize_output_image_size: short edge S, long edge truncated', () => {
  const rule = { kind: 'shortest-edge', shortestEdge: 224 } as const;
  const cases: [number, number, number, number][] = [
    [300, 200, 336, 224],
    [200, 300, 224, 336],
    [2000, 40, 11200, 224],
    [1, 1, 224, 224],
    [3, 7, 224, 522],
    [451, 300, 336, 224],
    [741, 500, 331, 224],
  ];
  for (const [w, h, rw, rh] of cases) assert.deepEqual(resizedSize(rule, w, h), { width: rw, height: rh }, `${w}x${h}`);
  assert.deepEqual(resizedSize({ kind: 'exact', height: 64, width: 48 }, 1000, 10), { width: 48, height: 64 });
});

test('resizeBicubic reproduces Pillow bit for bit', () => {
  const five = { data: rawPixels(5, 1, pattern), width: 5, height: 1 };
  assert.deepEqual([...resizeBicubic(five, 2, 1, { left: 0, top: 0, width: 2, height: 1 }).data], [6, 1, 50, 22, 10, 50]);

  const goldens: [number, number, number, number, string][] = [
    [97, 61, 10, 7, 'cff0ec39f94dd0040f2999e3ef0f7e8545a57d5bc848cd0f0ac0b1d73de39dfa'],
    [97, 61, 250, 133, 'cb8d893366e2e4015933c657d4e54b17ba76c0aef8e7b0d4cebff74602c9ed46'],
    [97, 61, 45, 61, 'c9a123876368eae5d68be6b25323cfdce60e1e9d840da00b8bf1dba52ae855e7'],
    [97, 61, 97, 20, '139d07303483349da411196dcc59a45e98e59f6b774645e962544efbe4fe6e5e'],
    [13, 9, 300, 200, '4f644a44a5f9cbe588e057155a79bd1dcf778f98fb111d41f040a955a1528fc0'],
    [600, 5, 7, 3, '83fee0a7db48bd96187ff93b7120b526c337d9f73f17b5b1d90233cb1c3b1e89'],
  ];
  for (const [w, h, ow, oh, digest] of goldens) {
    const src = { data: rawPixels(w, h, pattern), width: w, height: h };
    const full = resizeBicubic(src, ow, oh, { left: 0, top: 0, width: ow, height: oh });
    assert.equal(sha256(full.data), digest, `${w}x${h} -> ${ow}x${oh}`);

    const window = { left: Math.floor(ow / 3), top: Math.floor(oh / 4), width: Math.ceil(ow / 2), height: Math.ceil(oh / 2) };
    const part = resizeBicubic(src, ow, oh, window);
    for (let y = 0; y < window.height; y++) {
      const from = ((window.top + y) * ow + window.left) * 3;
      assert.deepEqual(part.data.subarray(y * window.width * 3, (y + 1) * window.width * 3), full.data.subarray(from, from + window.width * 3), `window row ${y}`);
    }
  }
  assert.throws(() => resizeBicubic(five, 2, 1, { left: 1, top: 0, width: 2, height: 1 }), RangeError);
});

/** The crop `resizeBicubicCrop` must write: `resizeBicubic`'s pixels at `dx`, `dy` of a zero crop, element by element. */
function cropByHand(pixels: { data: Uint8Array; width: number; height: number }, width: number, height: number, dx: number, dy: number): Uint8Array {
  const out = new Uint8Array(3 * width * height);
  for (let y = 0; y < pixels.height; y++) {
    for (let x = 0; x < pixels.width; x++) {
      for (let c = 0; c < 3; c++) out[((dy + y) * width + dx + x) * 3 + c] = pixels.data[(y * pixels.width + x) * 3 + c]!;
    }
  }
  return out;
}

test('resizeBicubicCrop writes the resized window into its crop, zero-padded, in WebAssembly and after the JavaScript fallback', () => {
  // 25,000 x 1,000 RGB is over the kernels' memory cap, so its resize runs in JavaScript; the others run in WebAssembly.
  const big = new Uint8Array(25_000 * 1_000 * 3);
  for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
  const cases: [{ data: Uint8Array; width: number; height: number }, number, number, PixelWindow, number, number, number, number][] = [
    [{ data: rawPixels(300, 200, pattern), width: 300, height: 200 }, 336, 224, { left: 56, top: 0, width: 224, height: 224 }, 224, 224, 0, 0],
    [{ data: rawPixels(40, 30, pattern), width: 40, height: 30 }, 40, 30, { left: 0, top: 0, width: 40, height: 30 }, 45, 33, 2, 1],
    [{ data: rawPixels(37, 51, pattern), width: 37, height: 51 }, 60, 80, { left: 3, top: 5, width: 50, height: 70 }, 57, 70, 7, 0],
    [{ data: big, width: 25_000, height: 1_000 }, 20_011, 777, { left: 9_000, top: 0, width: 40, height: 777 }, 43, 780, 1, 3],
  ];
  for (const [src, outWidth, outHeight, window, width, height, dx, dy] of cases) {
    const want = cropByHand(resizeBicubic(src, outWidth, outHeight, window), width, height, dx, dy);
    const offset = 5;
    const out = new Uint8Array(new SharedArrayBuffer(want.length + 2 * offset)).fill(0xab);
    resizeBicubicCrop(src, outWidth, outHeight, window, { width, height, dx, dy, out, offset });
    const label = `${src.width}x${src.height} to ${outWidth}x${outHeight}, ${width}x${height} crop`;
    assert.ok(Buffer.from(out.buffer, offset, want.length).equals(want), `${label}: crop differs`);
    assert.deepEqual([...out.subarray(0, offset), ...out.subarray(offset + want.length)], new Array(2 * offset).fill(0xab), `${label}: wrote outside its slot`);
  }
  const [src, outWidth, outHeight, window] = cases[0]!;
  const out = new Uint8Array(3 * 224 * 224);
  assert.throws(() => resizeBicubicCrop(src, outWidth, outHeight, window, { width: 224, height: 224, dx: 1, dy: 0, out, offset: 0 }), RangeError);
  assert.throws(() => resizeBicubicCrop(src, outWidth, outHeight, window, { width: 224, height: 224, dx: 0, dy: 0, out, offset: 1 }), RangeError);
});

test('the whole pipeline matches Hugging Face CLIPImageProcessor bit for bit', async () => {
  // Digests of float32 CHW outputs from CLIPImageProcessor's steps run on Pillow 9.4 + numpy.
  const clip = await preprocessImage(await drawn(300, 200, pattern), clipSpec, defaultDecodeOptions);
  assert.equal(sha256(clip), '416864de22d77927fc64d609501e2a09c014a5bce046fdee462097388b9618f7');

  const chineseSpec = parsePreprocessSpec({ size: { height: 64, width: 48 }, do_center_crop: false, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5] });
  const chinese = await preprocessImage(await drawn(40, 30, pattern), chineseSpec, defaultDecodeOptions);
  assert.equal(sha256(chinese), '1f1c8bfae2e51360080e46d134b16a5d2508b1d3712c5bf5af5b5b8b7f52cd99');
});

test('a uniform colour c becomes (c/255 - mean)/std in every pixel, at any size', async () => {
  for (const [w, h, rgb] of [[300, 200, [12, 130, 250]], [37, 501, [0, 255, 128]], [224, 224, [1, 2, 3]], [1, 1, [255, 0, 0]]] as const) {
    const out = await preprocessImage(await uniform(w, h, rgb), clipSpec, defaultDecodeOptions);
    assert.equal(out.length, 3 * 224 * 224);
    assertUniform(out, rgb, `${w}x${h}`);
  }
});

test('300x200 is resized to 336x224 and center-cropped from column 56', async () => {
  const red = [255, 0, 0];
  const blue = [0, 0, 255];
  const green = [0, 255, 0];
  // Bands at source x 40 and 260 map to resized x 44.8 and 291.2: outside the crop [56, 280).
  const image = await drawn(300, 200, (x) => (x < 40 || x >= 260 ? green : x < 150 ? red : blue));
  const out = await preprocessImage(image, clipSpec, defaultDecodeOptions);
  for (const y of [0, 100, 223]) {
    assert.deepEqual(rgbAt(out, clipSpec, y, 0), expectedRgb(red), `left edge, row ${y}`);
    assert.deepEqual(rgbAt(out, clipSpec, y, 223), expectedRgb(blue), `right edge, row ${y}`);
    // The red/blue edge at source x 150 lands at resized 168, crop column 112.
    for (let x = 0; x <= 109; x++) assert.deepEqual(rgbAt(out, clipSpec, y, x), expectedRgb(red), `column ${x}`);
    for (let x = 115; x < 224; x++) assert.deepEqual(rgbAt(out, clipSpec, y, x), expectedRgb(blue), `column ${x}`);
    assert.notDeepEqual(rgbAt(out, clipSpec, y, 112), expectedRgb(red));
    assert.notDeepEqual(rgbAt(out, clipSpec, y, 112), expectedRgb(blue));
  }
  const portrait = await preprocessImage(await drawn(200, 300, (_x, y) => (y < 150 ? red : blue)), clipSpec, defaultDecodeOptions);
  assert.deepEqual(rgbAt(portrait, clipSpec, 0, 50), expectedRgb(red));
  assert.deepEqual(rgbAt(portrait, clipSpec, 223, 50), expectedRgb(blue));
});

test('size {height, width} without crop stretches to exactly that size', async () => {
  const spec = parsePreprocessSpec({ size: { height: 100, width: 50 }, do_center_crop: false });
  const out = await preprocessImage(await drawn(300, 200, (x) => (x < 150 ? [255, 0, 0] : [0, 0, 255])), spec, defaultDecodeOptions);
  assert.equal(out.length, 3 * 100 * 50);
  assert.deepEqual(rgbAt(out, spec, 0, 0), expectedRgb([255, 0, 0]));
  assert.deepEqual(rgbAt(out, spec, 99, 20), expectedRgb([255, 0, 0]));
  assert.deepEqual(rgbAt(out, spec, 50, 29), expectedRgb([0, 0, 255]));
  assert.deepEqual(rgbAt(out, spec, 99, 49), expectedRgb([0, 0, 255]));
});

test('a crop larger than the image pads with zero pixels, as HF center_crop does', async () => {
  const spec = parsePreprocessSpec({ do_resize: false, crop_size: 224 });
  const out = await preprocessImage(await uniform(101, 51, [10, 20, 30]), spec, defaultDecodeOptions);
  // HF pads ceil((224 - 51) / 2) = 87 rows above and ceil((224 - 101) / 2) = 62 columns left.
  const image = expectedRgb([10, 20, 30]);
  const pad = expectedRgb([0, 0, 0]);
  assert.deepEqual(rgbAt(out, spec, 87, 62), image);
  assert.deepEqual(rgbAt(out, spec, 137, 162), image);
  assert.deepEqual(rgbAt(out, spec, 86, 62), pad);
  assert.deepEqual(rgbAt(out, spec, 138, 62), pad);
  assert.deepEqual(rgbAt(out, spec, 87, 61), pad);
  assert.deepEqual(rgbAt(out, spec, 87, 163), pad);
  assert.deepEqual(rgbAt(out, spec, 0, 0), pad);

  const bigger = await preprocessImage(await drawn(301, 261, (x, y) => (x === 38 && y === 18 ? [255, 255, 255] : [0, 0, 0])), spec, defaultDecodeOptions);
  assert.deepEqual(rgbAt(bigger, spec, 0, 0), expectedRgb([255, 255, 255]), 'without resizing, the crop starts at floor((301-224)/2), floor((261-224)/2)');
});

test('every EXIF orientation is undone, so the upright view is embedded', async () => {
  const width = 40;
  const height = 30;
  const upright = await drawn(width, height, pattern);
  const want = await preprocessImage(upright, clipSpec, defaultDecodeOptions);
  // Where stored pixel (x, y) of a stored w x h image is displayed, per the EXIF orientation tag.
  const shown: Record<number, (x: number, y: number, w: number, h: number) => [number, number]> = {
    1: (x, y) => [x, y],
    2: (x, y, w) => [w - 1 - x, y],
    3: (x, y, w, h) => [w - 1 - x, h - 1 - y],
    4: (x, y, _w, h) => [x, h - 1 - y],
    5: (x, y) => [y, x],
    6: (x, y, _w, h) => [h - 1 - y, x],
    7: (x, y, w, h) => [h - 1 - y, w - 1 - x],
    8: (x, y, w) => [y, w - 1 - x],
  };
  for (let orientation = 1; orientation <= 8; orientation++) {
    const [w, h] = orientation >= 5 ? [height, width] : [width, height];
    const stored = rawPixels(w, h, (x, y) => pattern(...shown[orientation]!(x, y, w, h)));
    const bytes = await sharp(stored, { raw: { width: w, height: h, channels: 3 } }).withMetadata({ orientation }).png().toBuffer();
    assert.equal((await sharp(bytes).metadata()).orientation, orientation);
    assert.deepEqual(await preprocessImage(bytes, clipSpec, defaultDecodeOptions), want, `orientation ${orientation}`);
  }
});

test('colour models and odd shapes come out as the expected RGB', async () => {
  const rgba = await sharp({ create: { width: 30, height: 20, channels: 4, background: { r: 200, g: 100, b: 50, alpha: 0.2 } } }).png().toBuffer();
  assertUniform(await preprocessImage(rgba, clipSpec, defaultDecodeOptions), [200, 100, 50], 'RGBA keeps colour, drops alpha');

  const grey = await sharp(Buffer.alloc(30 * 20, 77), { raw: { width: 30, height: 20, channels: 1 } }).png().toBuffer();
  assertUniform(await preprocessImage(grey, clipSpec, defaultDecodeOptions), [77, 77, 77], 'greyscale');

  const deep = new Uint16Array(30 * 20 * 3);
  for (let i = 0; i < deep.length; i += 3) deep.set([65535, 32896, 0], i);
  const png16 = await sharp(deep, { raw: { width: 30, height: 20, channels: 3 } }).toColourspace('rgb16').png().toBuffer();
  assertUniform(await preprocessImage(png16, clipSpec, defaultDecodeOptions), [255, 128, 0], '16-bit');

  const palette = await sharp(await uniform(30, 20, [51, 102, 204])).png({ palette: true, dither: 0 }).toBuffer();
  assert.equal((await sharp(palette).metadata()).isPalette, true);
  assertUniform(await preprocessImage(palette, clipSpec, defaultDecodeOptions), [51, 102, 204], 'palette');

  const frames = await Promise.all([[0, 255, 0], [0, 0, 255]].map((rgb) => uniform(16, 16, rgb)));
  const gif = await sharp(frames, { join: { animated: true } }).gif().toBuffer();
  assertUniform(await preprocessImage(gif, clipSpec, defaultDecodeOptions), [0, 255, 0], 'animated GIF, first frame');

  // CMYK converts as Pillow's convert('RGB') does, with no colour management: each channel is
  // (255 - ink) * (255 - K) / 255 of the samples the file holds (Pillow rounds its own way: +-1).
  const cmyk = await sharp(await uniform(30, 20, [200, 120, 60])).toColourspace('cmyk').jpeg({ quality: 100 }).toBuffer();
  const { data: ink } = await sharp(cmyk).pipelineColourspace('cmyk').toColourspace('cmyk').raw().toBuffer({ resolveWithObject: true });
  const naive = [0, 1, 2].map((c) => ((255 - ink[c]!) * (255 - ink[3]!)) / 255);
  const fromCmyk = await preprocessImage(cmyk, clipSpec, defaultDecodeOptions);
  const back = rgbAt(fromCmyk, clipSpec, 100, 100).map((v, c) => Math.round((v * clipStd[c]! + clipMean[c]!) * 255));
  assert.ok(naive.every((v, c) => Math.abs(back[c]! - v) <= 1), `CMYK orange came back as ${String(back)}, not ${String(naive)}`);

  assertUniform(await preprocessImage(await uniform(1, 1, [255, 0, 0]), clipSpec, defaultDecodeOptions), [255, 0, 0], '1x1');

  // 2000x40 resizes to 11200x224; the centered crop sees source columns 980..1020 only.
  const strip = await drawn(2000, 40, (x) => (x >= 900 && x < 1100 ? [0, 255, 0] : [255, 0, 0]));
  assertUniform(await preprocessImage(strip, clipSpec, defaultDecodeOptions), [0, 255, 0], '2000x40 strip');
});

test('preprocessImageInto writes exactly its slot of a batch buffer: the crop, 8-bit RGB', async () => {
  const size = 3 * 224 * 224;
  const batch = new Uint8Array(3 * size).fill(7);
  await preprocessImageInto(await uniform(50, 40, [255, 255, 255]), clipSpec, defaultDecodeOptions, batch, size);
  assert.ok(batch.subarray(0, size).every((v) => v === 7), 'slot 0 untouched');
  assert.ok(batch.subarray(2 * size).every((v) => v === 7), 'slot 2 untouched');
  assert.ok(batch.subarray(size, 2 * size).every((v) => v === 255), 'slot 1 is the white crop');
  await assert.rejects(preprocessImageInto(await uniform(5, 5, [0, 0, 0]), clipSpec, defaultDecodeOptions, batch, 2 * size + 1), RangeError);
});

test('bad images reject with a RowError and the right reason', async () => {
  const jpeg = await sharp(await drawn(64, 64, pattern)).jpeg().toBuffer();
  const cases: [Buffer, string][] = [
    [Buffer.alloc(0), 'not_an_image'],
    [Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'), 'unsupported_format'],
    [jpeg.subarray(0, Math.floor(jpeg.length / 2)), 'corrupt_image'],
  ];
  for (const [bytes, reason] of cases) {
    await assert.rejects(preprocessImage(bytes, clipSpec, defaultDecodeOptions), (err: unknown) => err instanceof RowError && err.reason === reason);
  }
  await assert.rejects(
    preprocessImage(await uniform(100, 100, [0, 0, 0]), clipSpec, { ...defaultDecodeOptions, maxPixels: 9999 }),
    (err: unknown) => err instanceof RowError && err.reason === 'too_many_pixels',
  );
});

test('fastDecode stays close to the exact result on a large photo-like JPEG', async () => {
  const smooth = (x: number, y: number): number[] => [
    128 + 100 * Math.sin(x / 37),
    128 + 100 * Math.cos(y / 23),
    (x + y) / 14,
  ];
  const jpeg = await sharp(rawPixels(1600, 1200, (x, y) => smooth(x, y).map(Math.round)), { raw: { width: 1600, height: 1200, channels: 3 } }).jpeg({ quality: 95 }).toBuffer();
  const exact = await preprocessImage(jpeg, clipSpec, defaultDecodeOptions);
  const fast = await preprocessImage(jpeg, clipSpec, { ...defaultDecodeOptions, fastDecode: true });
  let total = 0;
  for (let i = 0; i < exact.length; i++) total += Math.abs(exact[i]! - fast[i]!) * clipStd[Math.floor(i / (224 * 224))]! * 255;
  const mean = total / exact.length;
  assert.ok(mean > 0, 'the fast path decodes differently');
  assert.ok(mean < 1.5, `fast decode differs by ${mean.toFixed(3)} on average (0..255 units)`);
});

test('shared fixture photos preprocess, broken files give their reason', { skip: fixturesSkipReason() }, async () => {
  const dir = join(sharedFixturesDir()!, 'images');
  const broken: Record<string, string> = {
    'truncated.jpg': 'corrupt_image',
    'cut_in_half.jpg': 'corrupt_image',
    'random_bytes.bin': 'not_an_image',
    'not_an_image.txt': 'not_an_image',
    'empty.bin': 'not_an_image',
  };
  const names = (await readFile(join(dir, 'captions.tsv'), 'utf8')).split('\n').filter((l) => l !== '').map((l) => l.split('\t')[0]!);
  assert.ok(names.length >= 30);
  const low = Math.min(...clipMean.map((m, c) => -m / clipStd[c]!)) - 1e-5;
  const high = Math.max(...clipMean.map((m, c) => (1 - m) / clipStd[c]!)) + 1e-5;
  const outputs = new Map<string, Float32Array>();
  for (const name of names) {
    const bytes = await readFile(join(dir, name));
    const reason = broken[name];
    if (reason !== undefined) {
      await assert.rejects(preprocessImage(bytes, clipSpec, defaultDecodeOptions), (err: unknown) => err instanceof RowError && err.reason === reason, name);
      continue;
    }
    const out = await preprocessImage(bytes, clipSpec, defaultDecodeOptions);
    assert.ok(out.every((v) => Number.isFinite(v) && v >= low && v <= high), `${name} has values outside the normalized range`);
    outputs.set(name, out);
  }
  // chelsea_exif6.jpg stores the cat sideways with orientation 6: upright, it matches chelsea.jpg.
  const upright = outputs.get('chelsea.jpg')!;
  const turned = outputs.get('chelsea_exif6.jpg')!;
  let total = 0;
  for (let i = 0; i < upright.length; i++) total += Math.abs(upright[i]! - turned[i]!);
  assert.ok(total / upright.length < 0.05, `mean difference ${total / upright.length}`);
});
