import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { RowError } from '@vecmill/shared/errors';
import { decodeJpegNative, jpegDecoderDescription, nativeJpegAvailable, readNativeJpegHeader } from '@vecmill/worker/model/decode-jpeg-native';
import { decodeJpegWasm, jpegScaleEighths } from '@vecmill/worker/model/decode-jpeg-wasm';
import { decodeImage, defaultDecodeOptions, readImageHeader } from '@vecmill/worker/model/image-decode';
import { parsePreprocessSpec, preprocessImage } from '@vecmill/worker/model/image-preprocess';
import { fixturesSkipReason, projectRoot, sharedFixturesDir } from '../support/fixtures.js';

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

const skipPillow = addonSkip || fixturesSkipReason() || (hasPillow ? false : 'skipped: /usr/bin/python3 has no PIL');

test('the native decoder gives exactly Pillow\'s pixels on the real photos', { skip: skipPillow }, async () => {
  const photos = await fixtureJpegs();
  const pillow = pillowDigests(photos.map((p) => p.path));
  let plain = 0;
  for (const [i, { name, bytes }] of photos.entries()) {
    const header = readNativeJpegHeader(bytes, defaultDecodeOptions.maxPixels);
    if (header?.plainJpeg !== true) continue;
    const image = decodeJpegNative(bytes, header, 8);
    if (image === undefined) {
      assert.equal(pillow[i], null, `${name} decodes in Pillow but not natively`);
      continue;
    }
    const digest = `${image.width}:${image.height}:${createHash('sha256').update(image.data).digest('hex')}`;
    assert.equal(digest, pillow[i], `${name}: pixels differ from Pillow's`);
    plain++;
  }
  assert.ok(plain >= 15, `only ${plain} plain JPEGs among the fixtures`);
});

test('the native header agrees with sharp\'s and leaves CMYK and damaged JPEGs to sharp', { skip: addonSkip || fixturesSkipReason() }, async () => {
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
  for (const name of ['coffee_cmyk.jpg', 'truncated.jpg']) {
    assert.equal(readNativeJpegHeader(await readFile(join(dir, name)), defaultDecodeOptions.maxPixels), undefined, name);
  }
  const astronaut = await readFile(join(dir, 'astronaut.jpg'));
  assert.equal(readNativeJpegHeader(astronaut, 512 * 512 - 1), undefined, 'over maxPixels goes to sharp, which refuses it');
});

test('every EXIF orientation is undone natively exactly as sharp undoes it', { skip: addonSkip }, async () => {
  const width = 61;
  const height = 37;
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 2654435761) >>> 24;
  const stored = await sharp(raw, { raw: { width, height, channels: 3 } }).jpeg({ quality: 95 }).toBuffer();
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
