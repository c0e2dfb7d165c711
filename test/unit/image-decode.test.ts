import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { crc32, deflateSync } from 'node:zlib';
import sharp, { type Sharp } from 'sharp';
import { RowError, type RowErrorReason } from '@vecmill/shared/errors';
import {
  decodeImage,
  defaultDecodeOptions,
  readImageHeader,
  sniffImageFormat,
  type DecodeOptions,
  type RgbImage,
} from '@vecmill/worker/model/image-decode';
import { withoutAdobeMarker } from '../support/jpeg-segments.js';

const hasPillow = spawnSync('/usr/bin/python3', ['-c', 'import PIL'], { stdio: 'ignore' }).status === 0;

/** A solid-colour image encoded by sharp. */
function solid(width: number, height: number, background: string | { r: number; g: number; b: number; alpha: number }, channels: 3 | 4 = 3): Sharp {
  return sharp({ create: { width, height, channels, background } });
}

/** Deterministic noise, so JPEGs of it are large enough to cut in half meaningfully. */
function noise(width: number, height: number): Sharp {
  const data = Buffer.alloc(width * height * 3);
  let s = 7;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    data[i] = s >>> 24;
  }
  return sharp(data, { raw: { width, height, channels: 3 } });
}

function pngChunk(type: string, data: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A valid PNG whose IHDR declares `width` x `height` RGB, with one scanline byte of IDAT: tiny on disk, huge if decoded. */
function pngBomb(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(Buffer.alloc(1))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

async function decode(bytes: Buffer, options: DecodeOptions = defaultDecodeOptions): Promise<RgbImage> {
  return decodeImage(bytes, await readImageHeader(bytes, options), options);
}

async function reasonOf(work: Promise<unknown>): Promise<RowErrorReason> {
  try {
    await work;
  } catch (err) {
    assert.ok(err instanceof RowError, `expected a RowError, got ${String(err)}`);
    assert.doesNotMatch(err.message, /\n/, 'row error messages are one line');
    return err.reason;
  }
  assert.fail('expected the image to be refused');
}

function pixel(image: RgbImage, x: number, y: number): number[] {
  const i = (y * image.width + x) * 3;
  return [...image.data.subarray(i, i + 3)];
}

test('sniffImageFormat names formats by their signatures', async () => {
  const cases: [Buffer, string | undefined][] = [
    [await solid(4, 4, '#f00').jpeg().toBuffer(), 'jpeg'],
    [await solid(4, 4, '#f00').png().toBuffer(), 'png'],
    [await solid(4, 4, '#f00').webp().toBuffer(), 'webp'],
    [await solid(4, 4, '#f00').gif().toBuffer(), 'gif'],
    [await solid(4, 4, '#f00').tiff().toBuffer(), 'tiff'],
    [await solid(4, 4, '#f00').avif().toBuffer(), 'avif'],
    [Buffer.from('\0\0\0\x18ftypheic\0\0\0\0mif1heic', 'latin1'), 'heif'],
    [Buffer.from('\0\0\0\x18ftypmif1\0\0\0\0mif1avif', 'latin1'), 'avif'],
    [Buffer.from('\0\0\0\x18ftypisom\0\0\0\0isomiso2', 'latin1'), undefined],
    [Buffer.from('%PDF-1.7\n%...'), 'pdf'],
    [Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'), 'svg'],
    [Buffer.from('\ufeff<?xml version="1.0"?>\n<!-- c -->\n<svg width="1" height="1"></svg>'), 'svg'],
    [Buffer.from('<html><body>not svg</body></html>'), undefined],
    [Buffer.concat([Buffer.from('BM'), Buffer.alloc(12), Buffer.from([40, 0, 0, 0])]), 'bmp'],
    [Buffer.from('BMW is a car brand, this is text'), undefined],
    [Buffer.from('8BPS\0\x01'), 'psd'],
    [Buffer.from('a caption that is not an image'), undefined],
    [Buffer.alloc(0), undefined],
  ];
  for (const [bytes, expected] of cases) {
    assert.equal(sniffImageFormat(bytes), expected, `bytes starting ${bytes.subarray(0, 12).toString('hex')}`);
  }
});

test('refuses non-images, foreign formats and broken data with the right reason', async () => {
  const jpeg = await noise(64, 64).jpeg({ quality: 90 }).toBuffer();
  const cases: [string, Buffer, RowErrorReason][] = [
    ['empty', Buffer.alloc(0), 'not_an_image'],
    ['text', Buffer.from('just a caption, no picture'), 'not_an_image'],
    ['random bytes', Buffer.from(Array.from({ length: 256 }, (_, i) => (i * 73 + 41) & 255)), 'not_an_image'],
    ['svg', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'), 'unsupported_format'],
    ['pdf', Buffer.from('%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n'), 'unsupported_format'],
    ['bmp', Buffer.concat([Buffer.from('BM'), Buffer.alloc(12), Buffer.from([40, 0, 0, 0]), Buffer.alloc(40)]), 'unsupported_format'],
    ['jpeg cut inside its header', jpeg.subarray(0, 40), 'corrupt_image'],
    ['jpeg cut short in its pixel data', jpeg.subarray(0, Math.floor(jpeg.length * 0.6)), 'corrupt_image'],
    ['png whose IHDR declares 60000x60000', pngBomb(60_000, 60_000), 'too_many_pixels'],
  ];
  for (const [label, bytes, reason] of cases) {
    assert.equal(await reasonOf(decode(bytes)), reason, label);
  }
});

test('a decompression bomb is refused from its header, before any pixel is inflated', async () => {
  const bomb = pngBomb(60_000, 60_000);
  assert.ok(bomb.length < 100);
  const before = process.memoryUsage().rss;
  assert.equal(await reasonOf(readImageHeader(bomb, defaultDecodeOptions)), 'too_many_pixels');
  assert.ok(process.memoryUsage().rss - before < 200 * 1024 * 1024, 'refusing the bomb must not allocate its 10.8 GB canvas');
  const message = await readImageHeader(bomb, defaultDecodeOptions).catch((err: unknown) => (err as Error).message);
  assert.match(String(message), /60000x60000.*--max-pixels/);
});

test('maxPixels bounds an ordinary image too, at the exact limit', async () => {
  const png = await solid(100, 50, '#123456').png().toBuffer();
  assert.equal(await reasonOf(decode(png, { ...defaultDecodeOptions, maxPixels: 4999 })), 'too_many_pixels');
  const ok = await decode(png, { ...defaultDecodeOptions, maxPixels: 5000 });
  assert.deepEqual([ok.width, ok.height], [100, 50]);
});

test('bytes are never read as a file path', async () => {
  await assert.rejects(readImageHeader('/etc/passwd' as unknown as Buffer, defaultDecodeOptions), TypeError);
});

test('every raster format decodes to 8-bit RGB', async () => {
  const formats: [string, Buffer][] = [
    ['jpeg', await solid(8, 6, '#3366cc').jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).toBuffer()],
    ['png', await solid(8, 6, '#3366cc').png().toBuffer()],
    ['webp', await solid(8, 6, '#3366cc').webp({ lossless: true }).toBuffer()],
    ['gif', await solid(8, 6, '#3366cc').gif().toBuffer()],
    ['tiff', await solid(8, 6, '#3366cc').tiff().toBuffer()],
    ['avif', await solid(8, 6, '#3366cc').avif({ lossless: true }).toBuffer()],
  ];
  for (const [format, bytes] of formats) {
    const header = await readImageHeader(bytes, defaultDecodeOptions);
    assert.equal(header.format, format);
    const image = await decodeImage(bytes, header, defaultDecodeOptions);
    assert.deepEqual([image.width, image.height, image.data.length], [8, 6, 8 * 6 * 3], format);
    const [r, g, b] = pixel(image, 3, 2);
    assert.ok(Math.abs(r! - 0x33) <= 3 && Math.abs(g! - 0x66) <= 3 && Math.abs(b! - 0xcc) <= 3, `${format} colour ${String([r, g, b])}`);
  }
});

test('colour models are converted the way PIL convert("RGB") sees them', async () => {
  // Alpha is dropped, not composited: a fully transparent pixel keeps its colour.
  const rgba = await decode(await solid(4, 4, { r: 200, g: 100, b: 50, alpha: 0 }, 4).png().toBuffer());
  assert.deepEqual(pixel(rgba, 1, 1), [200, 100, 50]);

  const grey = await decode(await solid(4, 4, '#000000').linear(0, 77).toColourspace('b-w').png().toBuffer());
  assert.deepEqual(pixel(grey, 2, 3), [77, 77, 77]);

  const greyAlphaRaw = Buffer.from(Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? 90 : 10)));
  const greyAlpha = await decode(await sharp(greyAlphaRaw, { raw: { width: 4, height: 2, channels: 2 } }).png().toBuffer());
  assert.deepEqual(pixel(greyAlpha, 0, 0), [90, 90, 90]);

  const deep = new Uint16Array(4 * 2 * 3);
  for (let i = 0; i < deep.length; i += 3) deep.set([65535, 32896, 0], i);
  const png16 = await sharp(deep, { raw: { width: 4, height: 2, channels: 3 } }).toColourspace('rgb16').png().toBuffer();
  assert.equal((await sharp(png16).metadata()).depth, 'ushort');
  assert.deepEqual(pixel(await decode(png16), 3, 1), [255, 128, 0]);

  const palette = await sharp(Buffer.from([255, 0, 0, 0, 0, 255, 0, 255, 0, 255, 255, 255]), { raw: { width: 4, height: 1, channels: 3 } }).png({ palette: true, colours: 4, dither: 0 }).toBuffer();
  assert.equal((await sharp(palette).metadata()).isPalette, true);
  const fromPalette = await decode(palette);
  assert.deepEqual([pixel(fromPalette, 0, 0), pixel(fromPalette, 1, 0), pixel(fromPalette, 3, 0)], [[255, 0, 0], [0, 0, 255], [255, 255, 255]]);

  const cmyk = await solid(4, 4, '#ff0000').toColourspace('cmyk').jpeg({ quality: 100 }).toBuffer();
  assert.equal((await sharp(cmyk).metadata()).space, 'cmyk');
  const fromCmyk = pixel(await decode(cmyk), 1, 1);
  assert.ok(fromCmyk[0]! > 200 && fromCmyk[1]! < 60 && fromCmyk[2]! < 60, `CMYK red came back as ${String(fromCmyk)}`);
});

test('a CMYK TIFF converts exactly as Pillow converts it', { skip: hasPillow ? false : 'skipped: /usr/bin/python3 has no PIL' }, async () => {
  const tiff = await noise(61, 37).toColourspace('cmyk').tiff().toBuffer();
  const header = await readImageHeader(tiff, defaultDecodeOptions);
  assert.equal(header.cmyk, true);
  const image = await decodeImage(tiff, header, defaultDecodeOptions);
  const script = 'import hashlib, sys\nfrom PIL import Image\nim = Image.open(sys.stdin.buffer)\nprint(im.mode, hashlib.sha256(im.convert("RGB").tobytes()).hexdigest())';
  const pillow = spawnSync('/usr/bin/python3', ['-c', script], { input: tiff, encoding: 'utf8' });
  assert.equal(pillow.status, 0, pillow.stderr);
  assert.equal(pillow.stdout.trim(), `CMYK ${createHash('sha256').update(image.data).digest('hex')}`);
});

test('animated images contribute their first frame only', async () => {
  const frames = [solid(8, 8, '#00ff00'), solid(8, 8, '#0000ff'), solid(8, 8, '#ff0000')];
  const inputs = await Promise.all(frames.map((f) => f.png().toBuffer()));
  for (const encode of [(s: Sharp) => s.gif(), (s: Sharp) => s.webp({ lossless: true })]) {
    const animated = await encode(sharp(inputs, { join: { animated: true } })).toBuffer();
    assert.equal((await sharp(animated).metadata()).pages, 3);
    const image = await decode(animated);
    assert.deepEqual([image.width, image.height], [8, 8]);
    assert.deepEqual(pixel(image, 4, 4), [0, 255, 0]);
  }
});

test('the header reports the size after EXIF orientation', async () => {
  const sideways = await solid(30, 20, '#808080').withMetadata({ orientation: 6 }).jpeg().toBuffer();
  const header = await readImageHeader(sideways, defaultDecodeOptions);
  assert.deepEqual([header.width, header.height], [20, 30]);
  const image = await decodeImage(sideways, header, defaultDecodeOptions);
  assert.deepEqual([image.width, image.height], [20, 30]);
});

test('fastDecode shrinks JPEGs on load to the smallest of 1/8, 1/4 and 1/2 that still covers the resize target', async () => {
  const jpeg = await noise(1600, 1200).jpeg().toBuffer();
  const png = await noise(1600, 1200).png({ compressionLevel: 0 }).toBuffer();
  const target = { width: 298, height: 224 };
  const fast = { ...defaultDecodeOptions, fastDecode: true };

  const reduced = await decodeImage(jpeg, await readImageHeader(jpeg, fast), fast, target);
  assert.deepEqual([reduced.width, reduced.height], [400, 300], '2/8 of 1600x1200 is the smallest eighth covering 298x224');

  const exact = await decodeImage(jpeg, await readImageHeader(jpeg, defaultDecodeOptions), defaultDecodeOptions, target);
  assert.deepEqual([exact.width, exact.height], [1600, 1200]);

  const pngFast = await decodeImage(png, await readImageHeader(png, fast), fast, target);
  assert.deepEqual([pngFast.width, pngFast.height], [1600, 1200], 'only JPEG has a cheap shrink-on-load');

  const small = await noise(500, 400).jpeg().toBuffer();
  const smallFast = await decodeImage(small, await readImageHeader(small, fast), fast, target);
  assert.deepEqual([smallFast.width, smallFast.height], [500, 400], '5/8 of 500x400 would cover the target, but only halvings are taken');
  const medium = await noise(640, 480).jpeg().toBuffer();
  const mediumFast = await decodeImage(medium, await readImageHeader(medium, fast), fast, target);
  assert.deepEqual([mediumFast.width, mediumFast.height], [320, 240], '4/8 of 640x480 covers the target');

  const cmyk = await noise(1600, 1200).toColourspace('cmyk').jpeg().toBuffer();
  const cmykFast = await decodeImage(cmyk, await readImageHeader(cmyk, fast), fast, target);
  assert.deepEqual([cmykFast.width, cmykFast.height], [400, 300], 'an Adobe CMYK JPEG shrinks on load too');
  const bare = withoutAdobeMarker(cmyk);
  const bareFast = await decodeImage(bare, await readImageHeader(bare, fast), fast, target);
  assert.ok(bareFast.width < 1600 && bareFast.width >= 2 * target.width, `CMYK without the Adobe marker goes through sharp's shrink-on-load, at ${bareFast.width}x${bareFast.height}`);
});
