import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp, { type Sharp } from 'sharp';
import { RowError } from '@vecmill/shared/errors';
import { decodeJpegNative, jpegDecoderDescription, nativeJpegAvailable, readNativeJpegHeader } from '@vecmill/worker/model/decode-jpeg-native';
import { decodeJpegWasm, jpegScaleEighths } from '@vecmill/worker/model/decode-jpeg-wasm';
import { decodeImage, defaultDecodeOptions, readImageHeader } from '@vecmill/worker/model/image-decode';
import { orientUpright } from '@vecmill/worker/model/orient-upright';
import { parsePreprocessSpec, preprocessImage } from '@vecmill/worker/model/image-preprocess';
import { resizeSourceBuffer, type PixelWindow } from '@vecmill/worker/model/resize-bicubic';
import { fixturesSkipReason, projectRoot, sharedFixturesDir } from '../support/fixtures.js';
import { withExifOrientation, withoutAdobeMarker } from '../support/jpeg-segments.js';
import { makeTempDir } from '../support/tmp.js';

const python = '/usr/bin/python3';
const hasPillow = spawnSync(python, ['-c', 'import PIL'], { stdio: 'ignore' }).status === 0;
const addonSkip = nativeJpegAvailable() ? false : `skipped: ${jpegDecoderDescription()} (the native decoder needs a C compiler and libjpeg62-turbo-dev at build time)`;
const sharpOnly = { ...defaultDecodeOptions, nativeJpeg: false };
const clipSpec = parsePreprocessSpec({});

async function fixtureJpegs(): Promise<{ name: string; path: string; bytes: Buffer }[]> {
  const dir = join(sharedFixturesDir()!, 'images');
  const names = (await readFile(join(dir, 'captions.tsv'), 'utf8')).split('\n').map((l) => l.split('\t')[0]!).filter((n) => /\.jpg$/.test(n));
  return Promise.all(names.map(async (name) => ({ name, path: join(dir, name), bytes: await readFile(join(dir, name)) })));
}

/** sha256 of the decoded pixels the way CLIPImageProcessor gets them from Pillow: `Image.open(p).convert('RGB')`. */
function pillowDigests(paths: readonly string[]): (string | null)[] {
  const script = `
import hashlib, json, sys
from PIL import Image
out = []
for p in sys.argv[1:]:
    try:
        im = Image.open(p).convert('RGB')
        out.append([im.size[0], im.size[1], hashlib.sha256(im.tobytes()).hexdigest()])
    except Exception:
        out.append(None)
print(json.dumps(out))
`;
  const r = spawnSync(python, ['-c', script, ...paths], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as ([number, number, string] | null)[]).map((d) => (d === null ? null : d.join(':')));
}

/** Deterministic RGB noise of the given size, for JPEGs whose every pixel differs. */
function noise(width: number, height: number): Sharp {
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 2654435761) >>> 24;
  return sharp(raw, { raw: { width, height, channels: 3 } });
}

const skipPillow = addonSkip || fixturesSkipReason() || (hasPillow ? false : 'skipped: /usr/bin/python3 has no PIL');

test('the native decoder gives exactly Pillow\'s pixels on the real photos, CMYK included', { skip: skipPillow }, async () => {
  const photos = await fixtureJpegs();
  const pillow = pillowDigests(photos.map((p) => p.path));
  let plain = 0;
  let cmyk = 0;
  for (const [i, { name, bytes }] of photos.entries()) {
    const header = readNativeJpegHeader(bytes, defaultDecodeOptions.maxPixels);
    // Pillow does not apply EXIF orientation, so only upright photos compare.
    if (header === undefined || header.orientation !== 1) continue;
    const image = decodeJpegNative(bytes, header, 8);
    if (image === undefined) {
      assert.equal(pillow[i], null, `${name} decodes in Pillow but not natively`);
      continue;
    }
    const digest = `${image.width}:${image.height}:${createHash('sha256').update(image.data).digest('hex')}`;
    assert.equal(digest, pillow[i], `${name}: pixels differ from Pillow's`);
    if (header.cmyk === true) cmyk++;
    else plain++;
  }
  assert.ok(plain >= 15, `only ${plain} plain JPEGs among the fixtures`);
  assert.equal(cmyk, 1, 'the CMYK photo was compared');
});

test('the native header agrees with sharp\'s and leaves damaged JPEGs to sharp', { skip: addonSkip || fixturesSkipReason() }, async () => {
  let read = 0;
  for (const { name, bytes } of await fixtureJpegs()) {
    const native = readNativeJpegHeader(bytes, defaultDecodeOptions.maxPixels);
    const viaSharp = await readImageHeader(bytes, sharpOnly).catch(() => undefined);
    if (native === undefined) {
      assert.notEqual(viaSharp?.plainJpeg === true && !/truncated|cut_in_half/.test(name), true, `${name} is plain for sharp but not natively`);
      continue;
    }
    const { orientation, ...header } = native;
    assert.deepEqual(header, viaSharp, name);
    assert.equal(orientation, name === 'chelsea_exif6.jpg' ? 6 : 1, name);
    read++;
  }
  assert.ok(read >= 16, `only ${read} JPEGs among the fixtures read natively`);
  const dir = join(sharedFixturesDir()!, 'images');
  assert.equal(readNativeJpegHeader(await readFile(join(dir, 'truncated.jpg')), defaultDecodeOptions.maxPixels), undefined, 'truncated.jpg');
  const astronaut = await readFile(join(dir, 'astronaut.jpg'));
  assert.equal(readNativeJpegHeader(astronaut, 512 * 512 - 1), undefined, 'over maxPixels goes to sharp, which refuses it');
});

test('every EXIF orientation is undone natively exactly as sharp undoes it', { skip: addonSkip }, async () => {
  const width = 61;
  const height = 37;
  const stored = await noise(width, height).jpeg({ quality: 95 }).toBuffer();
  for (let orientation = 1; orientation <= 8; orientation++) {
    const jpeg = await sharp(stored).withMetadata({ orientation }).jpeg({ quality: 95 }).toBuffer();
    const header = readNativeJpegHeader(jpeg, defaultDecodeOptions.maxPixels);
    assert.ok(header !== undefined && header.orientation === orientation, `orientation ${orientation} read`);
    const viaSharp = await decodeImage(jpeg, await readImageHeader(jpeg, sharpOnly), sharpOnly);
    const native = decodeJpegNative(jpeg, header, 8);
    assert.ok(native !== undefined);
    assert.deepEqual([native.width, native.height], [viaSharp.width, viaSharp.height], `orientation ${orientation}: size`);
    assert.ok(Buffer.from(native.data).equals(Buffer.from(viaSharp.data)), `orientation ${orientation}: pixels differ from sharp's`);
  }
});

test('orientUpright turns pixels exactly as sharp\'s autoOrient does, for every EXIF orientation', async () => {
  const stored = await noise(61, 37).jpeg({ quality: 95 }).toBuffer();
  const pixels = decodeJpegWasm(stored, 61, 37);
  assert.ok(pixels !== undefined);
  for (let orientation = 1; orientation <= 8; orientation++) {
    // The same entropy data with an Exif segment added: only the orientation differs.
    const jpeg = withExifOrientation(stored, orientation);
    const header = await readImageHeader(jpeg, sharpOnly);
    assert.equal(header.jpegOrientation, orientation === 1 ? undefined : orientation, `orientation ${orientation}: header`);
    const viaSharp = await decodeImage(jpeg, header, sharpOnly);
    const turned = orientUpright(pixels, orientation);
    assert.deepEqual([turned.width, turned.height], [viaSharp.width, viaSharp.height], `orientation ${orientation}: size`);
    assert.ok(Buffer.from(turned.data).equals(Buffer.from(viaSharp.data)), `orientation ${orientation}: pixels differ from sharp's`);
  }
  assert.throws(() => orientUpright(pixels, 9), RangeError);
});

test('under --fast-decode a rotated JPEG is decoded at a DCT scale, with the same tensor with or without the addon', { skip: addonSkip }, async () => {
  const stored = await noise(600, 460).jpeg({ quality: 90 }).toBuffer();
  const fast = { ...defaultDecodeOptions, fastDecode: true };
  const upright = await preprocessImage(stored, clipSpec, fast);
  for (let orientation = 2; orientation <= 8; orientation++) {
    const jpeg = withExifOrientation(stored, orientation);
    const header = await readImageHeader(jpeg, sharpOnly);
    const target = orientation >= 5 ? { width: 224, height: 292 } : { width: 292, height: 224 };
    const decoded = await decodeImage(jpeg, header, { ...sharpOnly, fastDecode: true }, target);
    assert.deepEqual([decoded.width, decoded.height], orientation >= 5 ? [230, 300] : [300, 230], `orientation ${orientation}: decoded at 4/8 without the addon`);
    const native = await preprocessImage(jpeg, clipSpec, fast);
    const without = await preprocessImage(jpeg, clipSpec, { ...sharpOnly, fastDecode: true });
    assert.deepEqual(native, without, `orientation ${orientation}: the addon changes the tensor`);
    if (orientation === 2) assert.notDeepEqual(native, upright, 'the orientation is applied');
  }
});

test('at a DCT scale the native decoder gives the WebAssembly decoder\'s pixels, so --fast-decode is unchanged', { skip: addonSkip || fixturesSkipReason() }, async () => {
  let compared = 0;
  for (const { name, bytes } of await fixtureJpegs()) {
    const header = readNativeJpegHeader(bytes, defaultDecodeOptions.maxPixels);
    if (header?.plainJpeg !== true) continue;
    for (const eighths of [1, 2, 3, 4, 5, 6, 7]) {
      const viaWasm = decodeJpegWasm(bytes, header.width, header.height, eighths);
      const native = decodeJpegNative(bytes, header, eighths);
      if (viaWasm === undefined) {
        assert.equal(native, undefined, `${name} at ${eighths}/8`);
        continue;
      }
      assert.ok(native !== undefined, `${name} at ${eighths}/8 did not decode natively`);
      assert.deepEqual([native.width, native.height], [viaWasm.width, viaWasm.height], `${name} at ${eighths}/8`);
      assert.ok(Buffer.from(native.data).equals(Buffer.from(viaWasm.data)), `${name} at ${eighths}/8: pixels differ`);
      compared++;
    }
  }
  assert.ok(compared >= 100, `only ${compared} scaled decodes compared`);
  assert.equal(jpegScaleEighths(512, 512, { width: 224, height: 224 }), 4);
});

test('with or without the native decoder, preprocessing gives the same tensors and the same row errors', { skip: fixturesSkipReason() }, async () => {
  const dir = join(sharedFixturesDir()!, 'images');
  const names = (await readFile(join(dir, 'captions.tsv'), 'utf8')).split('\n').filter((l) => l !== '').map((l) => l.split('\t')[0]!);
  const reasonOf = (err: unknown): string => (err instanceof RowError ? err.reason : `not a RowError: ${String(err)}`);
  let compared = 0;
  for (const name of names) {
    const bytes = await readFile(join(dir, name));
    for (const fastDecode of [false, true]) {
      const native = await preprocessImage(bytes, clipSpec, { ...defaultDecodeOptions, fastDecode }).catch(reasonOf);
      const viaSharp = await preprocessImage(bytes, clipSpec, { ...sharpOnly, fastDecode }).catch(reasonOf);
      if (typeof viaSharp === 'string') {
        assert.equal(native, viaSharp, `${name}: the same row error`);
        continue;
      }
      assert.ok(native instanceof Float32Array, `${name} failed natively: ${String(native)}`);
      assert.ok(Buffer.from(native.buffer).equals(Buffer.from(viaSharp.buffer)), `${name}${fastDecode ? ' (fast)' : ''}: tensors differ`);
      compared++;
    }
  }
  assert.ok(compared >= 50, `only ${compared} tensors compared`);
});

test('decoded in place, the resize gives the same tensors when it skips a pass or upscales', { skip: addonSkip }, async () => {
  // 224 wide: no horizontal pass; 224 high: no vertical pass; 224 square: neither; 100x80: both, upscaling.
  for (const [width, height] of [[224, 300], [300, 224], [224, 224], [100, 80]] as const) {
    const raw = Buffer.alloc(width * height * 3);
    for (let i = 0; i < raw.length; i++) raw[i] = ((i * 2654435761) >>> 24) & 0xf0;
    const jpeg = await sharp(raw, { raw: { width, height, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
    assert.equal(readNativeJpegHeader(jpeg, defaultDecodeOptions.maxPixels)?.plainJpeg, true);
    const native = await preprocessImage(jpeg, clipSpec, defaultDecodeOptions);
    const viaSharp = await preprocessImage(jpeg, clipSpec, sharpOnly);
    assert.ok(Buffer.from(native.buffer).equals(Buffer.from(viaSharp.buffer)), `${width}x${height}: tensors differ`);
  }
});

test('damaged JPEGs never reach stderr, crash the process, or keep the decoder from working', { skip: addonSkip }, async () => {
  const jpeg = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#3366cc' } }).jpeg().toBuffer();
  const header = readNativeJpegHeader(jpeg, defaultDecodeOptions.maxPixels)!;
  assert.deepEqual(header, { format: 'jpeg', width: 64, height: 48, plainJpeg: true, orientation: 1 });
  const cut = jpeg.subarray(0, Math.floor(jpeg.length / 2));
  assert.equal(decodeJpegNative(cut, header, 8), undefined, 'a truncated JPEG (a libjpeg warning) is left to sharp');
  const scrambled = Buffer.from(jpeg);
  for (let i = Math.floor(jpeg.length / 2); i < jpeg.length - 2; i += 7) scrambled[i] = 0xff;
  assert.equal(decodeJpegNative(scrambled, header, 8), undefined, 'corrupt entropy data is left to sharp');
  assert.equal(readNativeJpegHeader(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 2]), defaultDecodeOptions.maxPixels), undefined);
  const after = decodeJpegNative(jpeg, header, 8);
  assert.ok(after !== undefined && after.width === 64 && after.height === 48);

  // libjpeg's default handlers print to stderr and exit(); in a child, check that nothing is printed.
  const module = pathToFileURL(join(projectRoot, 'packages', 'worker', 'dist', 'model', 'decode-jpeg-native.js')).href;
  const script = `
import { decodeJpegNative, readNativeJpegHeader } from ${JSON.stringify(module)};
const jpeg = Buffer.from(process.argv[1], 'base64');
const header = readNativeJpegHeader(jpeg, 1e9);
for (let cut = 3; cut < jpeg.length; cut += 11) {
  readNativeJpegHeader(jpeg.subarray(0, cut), 1e9);
  decodeJpegNative(jpeg.subarray(0, cut), header, 8);
}
process.stdout.write('done');
`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, jpeg.toString('base64')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'done');
  assert.equal(r.stderr, '', 'libjpeg printed to stderr');
});

test('CMYK JPEGs convert exactly as Pillow converts them, with or without the native decoder', { skip: hasPillow ? false : 'skipped: /usr/bin/python3 has no PIL' }, async () => {
  const { dir, cleanup } = await makeTempDir('cmyk-');
  try {
    const width = 61;
    const height = 37;
    const cmyk = await noise(width, height).toColourspace('cmyk').jpeg({ quality: 90 }).toBuffer();
    const path = join(dir, 'cmyk.jpg');
    await writeFile(path, cmyk);
    const [pillow] = pillowDigests([path]);
    const digest = (image: { width: number; height: number; data: Uint8Array }): string => `${image.width}:${image.height}:${createHash('sha256').update(image.data).digest('hex')}`;
    const viaSharp = await decodeImage(cmyk, await readImageHeader(cmyk, sharpOnly), sharpOnly);
    assert.equal(digest(viaSharp), pillow, 'sharp path: pixels differ from Pillow\'s');
    if (addonSkip !== false) return;
    const header = readNativeJpegHeader(cmyk, defaultDecodeOptions.maxPixels);
    assert.deepEqual(header, { format: 'jpeg', width, height, plainJpeg: true, cmyk: true, orientation: 1 }, 'Adobe CMYK is read natively');
    const native = decodeJpegNative(cmyk, header, 8);
    assert.ok(native !== undefined);
    assert.equal(digest(native), pillow, 'native: pixels differ from Pillow\'s');

    // Turned upright natively exactly as sharp turns it.
    const sideways = withExifOrientation(cmyk, 6);
    const sidewaysHeader = readNativeJpegHeader(sideways, defaultDecodeOptions.maxPixels);
    assert.deepEqual(sidewaysHeader, { format: 'jpeg', width: height, height: width, jpegOrientation: 6, cmyk: true, orientation: 6 });
    const nativeUpright = decodeJpegNative(sideways, sidewaysHeader, 8);
    const sharpUpright = await decodeImage(sideways, await readImageHeader(sideways, sharpOnly), sharpOnly);
    assert.ok(nativeUpright !== undefined);
    assert.equal(digest(nativeUpright), digest(sharpUpright), 'EXIF-rotated CMYK: native and sharp differ');

    // Without the Adobe marker Pillow would still invert the samples: the native decoder declines it.
    assert.equal(readNativeJpegHeader(withoutAdobeMarker(cmyk), defaultDecodeOptions.maxPixels), undefined);
  } finally {
    await cleanup();
  }
});

/** Rows [top, top + height) x columns [left, left + width) of a packed RGB image, as one buffer. */
function regionBytes(image: { data: Uint8Array; width: number }, r: PixelWindow): Buffer {
  const rows: Buffer[] = [];
  for (let y = r.top; y < r.top + r.height; y++) rows.push(Buffer.from(image.data.subarray((y * image.width + r.left) * 3, (y * image.width + r.left + r.width) * 3)));
  return Buffer.concat(rows);
}

test('a region decode gives exactly the whole decode\'s pixels inside the region', { skip: addonSkip }, async () => {
  const width = 333;
  const height = 251;
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = ((i * 2654435761) >>> 24) ^ ((i / 3 / width) & 0xff);
  const source = sharp(raw, { raw: { width, height, channels: 3 } });
  const jpegs: [string, Buffer][] = [
    ['4:2:0', await source.clone().jpeg({ quality: 85 }).toBuffer()],
    ['4:4:4', await source.clone().jpeg({ quality: 85, chromaSubsampling: '4:4:4' }).toBuffer()],
    ['progressive', await source.clone().jpeg({ quality: 85, progressive: true }).toBuffer()],
    ['grey', await source.clone().greyscale().jpeg({ quality: 85 }).toBuffer()],
    ['cmyk', await source.clone().toColourspace('cmyk').jpeg({ quality: 85 }).toBuffer()],
  ];
  if (fixturesSkipReason() === false) {
    for (const { name, bytes } of await fixtureJpegs()) if (!/truncated|cut_in_half|exif/.test(name)) jpegs.push([name, bytes]);
  }
  let compared = 0;
  for (const [name, bytes] of jpegs) {
    const header = readNativeJpegHeader(bytes, defaultDecodeOptions.maxPixels);
    assert.ok(header !== undefined && header.orientation === 1, name);
    for (const eighths of [8, 5, 3]) {
      const whole = decodeJpegNative(bytes, header, eighths);
      assert.ok(whole !== undefined, `${name} at ${eighths}/8`);
      const full = { data: Uint8Array.from(whole.data), width: whole.width, height: whole.height };
      const { width: w, height: h } = full;
      // Centered bands as a crop reads them, a corner, a single pixel at the far edge, everything.
      const regions: PixelWindow[] = [
        { left: Math.floor(w / 5), top: 0, width: Math.max(1, Math.floor((3 * w) / 5)), height: h },
        { left: 0, top: Math.floor(h / 4), width: w, height: Math.max(1, Math.floor(h / 2)) },
        { left: 1, top: 2, width: Math.max(1, Math.floor(w / 3)), height: Math.max(1, Math.floor(h / 3)) },
        { left: w - 1, top: h - 1, width: 1, height: 1 },
        { left: 0, top: 0, width: w, height: h },
      ];
      for (const region of regions) {
        // Fill kernel memory with a marker first, so pixels the region decode did not write cannot pass for decoded ones.
        resizeSourceBuffer(w * h * 3)!.fill(0xa5);
        const part = decodeJpegNative(bytes, header, eighths, region);
        assert.ok(part !== undefined, `${name} at ${eighths}/8, region ${JSON.stringify(region)}`);
        assert.ok(regionBytes(part, region).equals(regionBytes(full, region)), `${name} at ${eighths}/8, region ${JSON.stringify(region)}: pixels differ`);
        if (name === '4:2:0' && eighths === 8 && region.height === h && region.width < w) {
          assert.deepEqual([...part.data.subarray(0, 3)], [0xa5, 0xa5, 0xa5], 'columns far left of the region are not decoded');
        }
        if (name === '4:2:0' && eighths === 8 && region.width === w && region.height < h) {
          assert.deepEqual([...part.data.subarray(0, 3)], [0xa5, 0xa5, 0xa5], 'rows far above the region are not decoded');
        }
        compared++;
      }
    }
  }
  assert.ok(compared >= 75, `only ${compared} regions compared`);
});

test('a region decode still refuses a JPEG damaged outside the region', { skip: addonSkip }, async () => {
  const width = 320;
  const height = 480;
  const jpeg = await noise(width, height).jpeg({ quality: 90 }).toBuffer();
  const header = readNativeJpegHeader(jpeg, defaultDecodeOptions.maxPixels)!;
  const top = { left: 0, top: 0, width, height: 100 };
  assert.ok(decodeJpegNative(jpeg, header, 8, top) !== undefined, 'the whole file decodes with a region');
  const cut = jpeg.subarray(0, Math.floor(jpeg.length * 0.8));
  assert.equal(decodeJpegNative(cut, header, 8), undefined, 'the cut file is refused whole');
  assert.equal(decodeJpegNative(cut, header, 8, top), undefined, 'and refused with a region that ends far above the cut');
  const scrambled = Buffer.from(jpeg);
  for (let i = Math.floor(jpeg.length * 0.15); i < jpeg.length * 0.25; i += 7) scrambled[i] = 0xff;
  assert.equal(decodeJpegNative(scrambled, header, 8), undefined, 'data damaged near the top is refused whole');
  assert.equal(decodeJpegNative(scrambled, header, 8, { left: 0, top: 380, width, height: 100 }), undefined, 'and refused with a region below the damage');
});
