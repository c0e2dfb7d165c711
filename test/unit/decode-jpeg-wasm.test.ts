import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { decodeJpegWasm, jpegScaleEighths } from '@vecmill/worker/model/decode-jpeg-wasm';
import { decodeImage, defaultDecodeOptions, readImageHeader } from '@vecmill/worker/model/image-decode';
import { resizeBicubic } from '@vecmill/worker/model/resize-bicubic';
import { fixturesSkipReason, projectRoot, sharedFixturesDir } from '../support/fixtures.js';
import { withoutAdobeMarker } from '../support/jpeg-segments.js';

test('the WebAssembly JPEG decoder gives exactly sharp\'s pixels on the real photos', { skip: fixturesSkipReason() }, async () => {
  const dir = join(sharedFixturesDir()!, 'images');
  const names = (await readFile(join(dir, 'captions.tsv'), 'utf8')).split('\n').map((l) => l.split('\t')[0]!).filter((n) => /\.jpg$/.test(n));
  let plain = 0;
  for (const name of names) {
    const bytes = await readFile(join(dir, name));
    const header = await readImageHeader(bytes, defaultDecodeOptions).catch(() => undefined);
    if (header?.plainJpeg !== true) continue;
    const viaWasm = decodeJpegWasm(bytes, header.width, header.height);
    const viaSharp = await decodeImage(bytes, header, defaultDecodeOptions).catch(() => undefined);
    if (viaSharp === undefined) {
      assert.equal(viaWasm, undefined, `${name} is damaged for sharp but decoded in WebAssembly`);
      continue;
    }
    assert.ok(viaWasm !== undefined, `${name} did not decode in WebAssembly`);
    assert.deepEqual([viaWasm.width, viaWasm.height], [viaSharp.width, viaSharp.height], name);
    assert.ok(Buffer.from(viaWasm.data).equals(Buffer.from(viaSharp.data)), `${name}: pixels differ from sharp's`);
    plain++;
  }
  assert.ok(plain >= 15, `only ${plain} plain JPEGs among the fixtures`);
});

test('damaged, non-Adobe CMYK and rotated JPEGs are left to sharp, and the decoder recovers after a failure', async () => {
  const jpeg = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#3366cc' } }).jpeg().toBuffer();
  const cut = jpeg.subarray(0, Math.floor(jpeg.length / 2));
  assert.equal(decodeJpegWasm(cut, 64, 48), undefined, 'a truncated JPEG is not decoded');
  assert.equal(decodeJpegWasm(Buffer.from('not a jpeg at all'), 64, 48), undefined);
  const cmyk = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#3366cc' } }).toColourspace('cmyk').jpeg().toBuffer();
  const viaSharp = await decodeImage(cmyk, await readImageHeader(cmyk, defaultDecodeOptions), defaultDecodeOptions);
  assert.ok(Buffer.from(decodeJpegWasm(cmyk, 64, 48)?.data ?? []).equals(viaSharp.data), 'Adobe CMYK decodes to the pixels of the sharp path (Pillow\'s conversion)');
  assert.equal(decodeJpegWasm(withoutAdobeMarker(cmyk), 64, 48), undefined, 'CMYK without the Adobe marker goes to sharp');
  const sideways = await sharp(jpeg).withMetadata({ orientation: 6 }).jpeg().toBuffer();
  assert.equal((await readImageHeader(sideways, defaultDecodeOptions)).plainJpeg, undefined, 'a rotated JPEG is not plain');
  await assert.rejects(decodeImage(cut, await readImageHeader(jpeg, defaultDecodeOptions), defaultDecodeOptions), /corrupt|truncated/);
  const after = decodeJpegWasm(jpeg, 64, 48);
  assert.ok(after !== undefined && after.width === 64 && after.height === 48);
  assert.deepEqual([...after.data.subarray(0, 3)], [...(await decodeImage(jpeg, { format: 'jpeg', width: 64, height: 48 }, defaultDecodeOptions)).data.subarray(0, 3)]);
});

test('jpegScaleEighths picks the smallest of 1/8, 1/4 and 1/2 covering the target, never a scale without a SIMD inverse DCT', () => {
  assert.equal(jpegScaleEighths(512, 512, { width: 224, height: 224 }), 4);
  assert.equal(jpegScaleEighths(1411, 1411, { width: 224, height: 224 }), 2);
  assert.equal(jpegScaleEighths(741, 500, { width: 331, height: 224 }), 4);
  assert.equal(jpegScaleEighths(300, 224, { width: 300, height: 224 }), 8);
  assert.equal(jpegScaleEighths(4000, 3000, { width: 298, height: 224 }), 1);
  // 3/8 and 6/8 would cover these targets too; libjpeg-turbo has no SIMD inverse DCT for them.
  assert.equal(jpegScaleEighths(1000, 872, { width: 257, height: 224 }), 4);
  assert.equal(jpegScaleEighths(451, 300, { width: 336, height: 224 }), 8);
});

test('the WebAssembly resize kernels and the JavaScript fallback agree bit for bit', () => {
  // 25,000 x 1,000 RGB is 75 MB of rows: over the kernels' memory cap, so the whole-height window
  // runs in JavaScript, while a window of a few rows fits and runs in WebAssembly.
  const width = 25_000;
  const height = 1_000;
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
  const src = { data, width, height };
  const outWidth = 20_011;
  const outHeight = 777;
  const left = 9_000;
  const viaJs = resizeBicubic(src, outWidth, outHeight, { left, top: 0, width: 40, height: outHeight });
  for (const top of [0, 300, 770]) {
    const rows = Math.min(7, outHeight - top);
    const viaWasm = resizeBicubic(src, outWidth, outHeight, { left, top, width: 40, height: rows });
    assert.ok(Buffer.from(viaWasm.data).equals(Buffer.from(viaJs.data.subarray(top * 40 * 3, (top + rows) * 40 * 3))), `rows ${top}..${top + rows}`);
  }
});

test('the committed WebAssembly resize kernels are what their AssemblyScript source builds to', () => {
  const r = spawnSync(process.execPath, [join(projectRoot, 'tools', 'dist', 'wasm', 'build-resize-kernels.js'), '--check'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});
