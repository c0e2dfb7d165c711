import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RowErrorReason } from '@vecmill/shared/errors';
import { parseRow } from '@vecmill/shared/tsv/row-parser';
import type { ParsedRow } from '@vecmill/shared/tsv/row-parser';
import type { InputKind } from '@vecmill/shared/tsv/input-kind';

const JPEG_HEAD = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46]);
const B64 = JPEG_HEAD.toString('base64url');
const BAD_UTF8 = Buffer.from([0x63, 0x61, 0x74, 0xff, 0x20]);

const line = (...parts: (string | Buffer)[]): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p)));

describe('parseRow accepts', () => {
  const cases: [name: string, kind: InputKind, input: Buffer, expected: ParsedRow][] = [
    ['a pairs row', 'pairs', line('a cat\t', B64), { ok: true, text: 'a cat', image: JPEG_HEAD }],
    ['a pairs row with an empty caption', 'pairs', line('\t', B64), { ok: true, text: '', image: JPEG_HEAD }],
    ['a pairs row with a data URL image', 'pairs', line('x\tdata:image/jpeg;base64,', B64), { ok: true, text: 'x', image: JPEG_HEAD }],
    ['a pairs row with a non-ASCII caption', 'pairs', line('un café 東京 🐱\t', B64), { ok: true, text: 'un café 東京 🐱', image: JPEG_HEAD }],
    ['control characters in a caption, kept as-is', 'pairs', line('a\u0001b\u007f\r c\t', B64), { ok: true, text: 'a\u0001b\u007f\r c', image: JPEG_HEAD }],
    ['a text row', 'text', line('a photo of a dog'), { ok: true, text: 'a photo of a dog' }],
    ['a text row with only spaces', 'text', line('   '), { ok: true, text: '   ' }],
    ['an image row', 'image', line(B64), { ok: true, image: JPEG_HEAD }],
    ['an image row in the standard alphabet', 'image', line(JPEG_HEAD.toString('base64')), { ok: true, image: JPEG_HEAD }],
  ];
  for (const [name, kind, input, expected] of cases) {
    it(name, () => assert.deepEqual(parseRow(input, kind), expected));
  }
});

describe('parseRow reports each failure reason', () => {
  const cases: [name: string, kind: InputKind, input: Buffer, reason: RowErrorReason, message: RegExp, text: string | undefined][] = [
    ['pairs: no tab', 'pairs', line('just a caption'), 'missing_field', /no tab/, undefined],
    ['pairs: empty line', 'pairs', line(''), 'missing_field', /empty line/, undefined],
    ['pairs: empty image field', 'pairs', line('a cat\t'), 'missing_field', /image field is empty/, 'a cat'],
    ['pairs: three columns', 'pairs', line('a cat\t', B64, '\textra'), 'extra_field', /3 tab-separated columns, expected 2/, 'a cat'],
    ['pairs: four columns', 'pairs', line('a\tb\tc\td'), 'extra_field', /4 tab-separated columns/, 'a'],
    ['pairs: bad UTF-8 caption', 'pairs', line(BAD_UTF8, '\t', B64), 'bad_utf8', /not valid UTF-8/, undefined],
    ['pairs: bad base64, caption kept', 'pairs', line('a cat\t', B64, '!'), 'bad_base64', /invalid character "!"/, 'a cat'],
    ['pairs: truncated base64', 'pairs', line('a cat\t', B64.slice(0, 5)), 'bad_base64', /whole bytes/, 'a cat'],
    ['text: a tab', 'text', line('a cat\tsat'), 'extra_field', /2 tab-separated columns, expected 1/, 'a cat\tsat'],
    ['text: bad UTF-8', 'text', BAD_UTF8, 'bad_utf8', /not valid UTF-8/, undefined],
    ['text: empty line', 'text', line(''), 'empty_text', /empty line/, undefined],
    ['image: empty line', 'image', line(''), 'missing_field', /empty line/, undefined],
    ['image: a tab', 'image', line('x\t', B64), 'extra_field', /2 tab-separated columns, expected 1/, undefined],
    ['image: bad base64', 'image', line('not base64!'), 'bad_base64', /invalid character/, undefined],
  ];
  for (const [name, kind, input, reason, message, text] of cases) {
    it(name, () => {
      const row = parseRow(input, kind);
      assert.equal(row.ok, false);
      if (row.ok) return;
      assert.equal(row.reason, reason);
      assert.match(row.message, message);
      assert.equal(row.text, text);
      assert.equal('text' in row, text !== undefined);
    });
  }
});

describe('parseRow without decoding the image', () => {
  it('hands the raw base64 field on, for a preprocessing thread to decode', () => {
    const field = Buffer.from('aGVsbG8=');
    const row = parseRow(Buffer.concat([Buffer.from('a caption\t'), field]), 'pairs', { decodeImage: false });
    assert.ok(row.ok);
    assert.equal(row.text, 'a caption');
    assert.equal(row.image, undefined);
    assert.deepEqual(row.imageBase64, field);
  });

  it('still reports structural problems itself', () => {
    const row = parseRow(Buffer.from('caption\t'), 'pairs', { decodeImage: false });
    assert.equal(row.ok, false);
    assert.equal(!row.ok && row.reason, 'missing_field');
  });
});
