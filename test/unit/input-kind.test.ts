import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { InputError } from '@vecmill/shared/errors';
import { detectInputKind } from '@vecmill/shared/tsv/input-kind';
import type { InputKind } from '@vecmill/shared/tsv/input-kind';
import { fixturesSkipReason, sharedFixturesDir } from '../support/fixtures.js';

/** The first bytes of each format, padded with arbitrary bytes like a real file body. */
const BODY = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz');
const head = (...parts: (number[] | string)[]): Buffer =>
  Buffer.concat([...parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))), BODY]);
const SIGNATURES: [format: string, bytes: Buffer][] = [
  ['JPEG', head([0xff, 0xd8, 0xff, 0xe0])],
  ['PNG', head([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])],
  ['GIF87a', head('GIF87a')],
  ['GIF89a', head('GIF89a')],
  ['WebP', head('RIFF', [0x10, 0x20, 0, 0], 'WEBPVP8 ')],
  ['TIFF little-endian', head('II*\u0000')],
  ['TIFF big-endian', head('MM\u0000*')],
  ['BMP', head('BM')],
  ['AVIF', head([0, 0, 0, 0x1c], 'ftypavif')],
  ['HEIC', head([0, 0, 0, 0x18], 'ftypheic')],
];

const lines = (...texts: (string | Buffer)[]): Buffer[] => texts.map((t) => (typeof t === 'string' ? Buffer.from(t) : t));

describe('detectInputKind', () => {
  for (const [format, bytes] of SIGNATURES) {
    it(`sees a base64 ${format} column as image`, () => {
      assert.equal(detectInputKind(lines(bytes.toString('base64'), bytes.toString('base64url'))), 'image');
      assert.equal(detectInputKind(lines(`data:image/x;base64,${bytes.toString('base64')}`)), 'image');
    });
  }

  const cases: [name: string, sample: Buffer[], expected: InputKind][] = [
    ['two columns as pairs', lines(`a cat\t${SIGNATURES[0]?.[1].toString('base64')}`, 'a dog\tAAAA'), 'pairs'],
    ['two columns with an empty caption as pairs', lines('\tAAAA'), 'pairs'],
    ['one column of captions as text', lines('a photo of a cat', 'a dog'), 'text'],
    ['a one-word caption that happens to be base64 as text', lines('Sunset', 'Mountains'), 'text'],
    ['base64 of a non-image (an MP4 ftyp) as text', lines(head([0, 0, 0, 0x18], 'ftypisom').toString('base64')), 'text'],
    ['empty lines ignored', lines('', 'a cat', ''), 'text'],
  ];
  for (const [name, sample, expected] of cases) {
    it(`sees ${name}`, () => assert.equal(detectInputKind(sample), expected));
  }

  const failures: [name: string, sample: Buffer[], message: RegExp][] = [
    ['an empty sample', [], /no non-empty lines/],
    ['only blank lines', lines('', ''), /no non-empty lines/],
    ['pairs mixed with one-column lines', lines('a\tAAAA', 'a cat'), /looks like pairs but non-empty sample line 2 looks like text/],
    ['images mixed with captions', lines(SIGNATURES[1]?.[1].toString('base64') ?? '', 'a cat'), /looks like image but .* looks like text/],
    ['three columns', lines('a\tb\tc'), /3 tab-separated columns/],
  ];
  for (const [name, sample, message] of failures) {
    it(`throws InputError asking for --kind on ${name}`, () => {
      assert.throws(() => detectInputKind(sample), (err: unknown) => err instanceof InputError && message.test(err.message) && err.message.includes('--kind'));
    });
  }

  it('sees real photos of every fixture format as images, and the non-images as text', { skip: fixturesSkipReason() }, async () => {
    const dir = join(sharedFixturesDir() as string, 'images');
    for (const file of ['astronaut.jpg', 'astronaut_rgba.png', 'animated.gif', 'motorcycle.webp', 'chelsea.tiff', 'truncated.jpg']) {
      const field = (await readFile(join(dir, file))).toString('base64url');
      assert.equal(detectInputKind(lines(field)), 'image', file);
    }
    for (const file of ['random_bytes.bin', 'not_an_image.txt']) {
      const field = (await readFile(join(dir, file))).toString('base64');
      assert.equal(detectInputKind(lines(field)), 'text', file);
    }
  });
});
