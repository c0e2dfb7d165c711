import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RowError } from '@vecmill/shared/errors';
import { decodeBase64Strict, encodeBase64 } from '@vecmill/shared/tsv/base64';

/** Bytes whose encodings use every special character: `+`/`/` in standard, `-`/`_` in URL-safe. */
const SPECIAL = Buffer.from([0xfb, 0xff, 0xbf, 0xfe, 0x00, 0x3e]);

describe('decodeBase64Strict accepts', () => {
  const cases: [name: string, input: string, expected: Buffer][] = [
    ['standard alphabet with padding', 'aGVsbG8=', Buffer.from('hello')],
    ['standard alphabet without padding', 'aGVsbG8', Buffer.from('hello')],
    ['two padding characters', 'aGk=', Buffer.from('hi')],
    ['two padding characters (one byte)', 'aA==', Buffer.from('h')],
    ['one byte without padding', 'aA', Buffer.from('h')],
    ['a length multiple of 4', 'aGV5', Buffer.from('hey')],
    ['standard special characters', SPECIAL.toString('base64'), SPECIAL],
    ['URL-safe special characters', SPECIAL.toString('base64url'), SPECIAL],
    ['a data URL prefix', 'data:image/png;base64,aGVsbG8=', Buffer.from('hello')],
    ['a data URL prefix with parameters', 'data:image/jpeg;name=x.jpg;base64,aGk', Buffer.from('hi')],
  ];
  for (const [name, input, expected] of cases) {
    it(name, () => {
      assert.deepEqual(decodeBase64Strict(input), expected);
      assert.deepEqual(decodeBase64Strict(Buffer.from(input, 'latin1')), expected);
    });
  }

  it('round-trips every byte value through encodeBase64', () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    for (let length = 0; length <= all.length; length += 37) {
      const bytes = all.subarray(256 - length);
      const encoded = encodeBase64(bytes);
      assert.match(encoded, /^[A-Za-z0-9+/]*={0,2}$/);
      if (length > 0) assert.deepEqual(decodeBase64Strict(encoded), bytes);
    }
  });

  it('encodes a Uint8Array view at its own offset', () => {
    const backing = new Uint8Array([1, 2, 104, 105, 3]);
    assert.equal(encodeBase64(backing.subarray(2, 4)), 'aGk=');
  });
});

describe('decodeBase64Strict rejects with RowError bad_base64', () => {
  const cases: [name: string, input: string, message: RegExp][] = [
    ['an empty field', '', /empty/],
    ['an empty data URL payload', 'data:image/png;base64,', /empty/],
    ['a data URL that is not base64', 'data:text/plain,hello', /;base64,/],
    ['only padding', '==', /only "=" padding/],
    ['padding in the middle', 'aG=sbG8=', /padding "=" before the end at offset 2/],
    ['three padding characters', 'aA===', /padding/],
    ['padding that does not match the length', 'aGk==', /padding/],
    ['one padding character after two data characters', 'aA=', /padding/],
    ['a length of 4n+1', 'aGVsb', /cannot encode whole bytes/],
    ['a space', 'aGVs bG8=', /invalid character 0x20 at offset 4/],
    ['a trailing newline', 'aGVsbG8=\n', /0x0A/],
    ['a tab', 'aGVs\tbG8=', /0x09/],
    ['a dot', 'aGVs.bG8=', /invalid character "\." at offset 4/],
    ['a non-ASCII character', 'aGVsé', /0xE9/],
    ['a plain caption', 'a cat on a mat', /invalid character/],
  ];
  for (const [name, input, message] of cases) {
    it(name, () => {
      for (const field of [input, Buffer.from(input, 'latin1')]) {
        assert.throws(
          () => decodeBase64Strict(field),
          (err: unknown) => err instanceof RowError && err.reason === 'bad_base64' && message.test(err.message),
        );
      }
    });
  }

  it('rejects a UTF-8 multi-byte character given as bytes', () => {
    assert.throws(() => decodeBase64Strict(Buffer.from('aGVs\u00e9bG8=', 'utf8')), (err: unknown) => err instanceof RowError && /0xC3/.test(err.message));
  });
});

describe('decodeBase64Strict on large fields', () => {
  it('decodes a multi-megabyte field exactly and still finds one bad byte near its end', () => {
    const image = Buffer.alloc(3 * 1024 * 1024 + 1);
    for (let i = 0; i < image.length; i++) image[i] = (i * 2654435761) >>> 24;
    const field = Buffer.from(image.toString('base64url'));
    assert.deepEqual(decodeBase64Strict(field), image);
    field[field.length - 10] = 0x2a;
    assert.throws(() => decodeBase64Strict(field), (err: unknown) => err instanceof RowError && err.message.includes(`offset ${field.length - 10}`));
  });

  it('decodes into the given buffer when it fits, and into a new one when not, with the same bytes and errors', () => {
    const image = Buffer.alloc(200_001);
    for (let i = 0; i < image.length; i++) image[i] = (i * 2654435761) >>> 24;
    const field = Buffer.from(`data:image/jpeg;base64,${image.toString('base64url')}`);
    const into = new Uint8Array(new SharedArrayBuffer(300_000));
    const decoded = decodeBase64Strict(field, into);
    assert.deepEqual(decoded, image);
    assert.equal(decoded.buffer, into.buffer, 'decoded in place');
    const small = new Uint8Array(1000);
    const fresh = decodeBase64Strict(field, small);
    assert.deepEqual(fresh, image);
    assert.notEqual(fresh.buffer, small.buffer);
    // An early "=" in the first 64 Ki characters and a bad byte in a later piece: the bad byte is named, as for one string.
    const broken = Buffer.from(field);
    broken[30] = 0x3d;
    broken[200_000] = 0x2e;
    const offset = 200_000 - 'data:image/jpeg;base64,'.length;
    for (const f of [broken, broken.toString('latin1')]) {
      assert.throws(() => decodeBase64Strict(f, into), (err: unknown) => err instanceof RowError && err.message.includes(`invalid character "." at offset ${offset}`));
    }
    broken[200_000] = field[200_000]!;
    assert.throws(() => decodeBase64Strict(broken, into), (err: unknown) => err instanceof RowError && err.message.includes(`padding "=" before the end at offset ${30 - 23}`));
  });
});

describe('decodeBase64Strict finds every stray character without scanning a valid field', () => {
  // Validation rests on the decoder's byte count: each case here would decode to a plausible
  // image if one stray character could go unnoticed.
  const strays = [' ', '.', '\t', '\n', '*', '\u00e9', '\u0000', '='];
  it('at every position of fields of every length modulo 4', () => {
    for (let bytes = 1; bytes <= 12; bytes++) {
      const valid = Buffer.from(Array.from({ length: bytes }, (_, i) => (i * 97 + 13) & 0xff)).toString('base64url');
      assert.deepEqual(decodeBase64Strict(valid), Buffer.from(Array.from({ length: bytes }, (_, i) => (i * 97 + 13) & 0xff)));
      for (let at = 0; at <= valid.length; at++) {
        for (const stray of strays) {
          for (const field of [`${valid.slice(0, at)}${stray}${valid.slice(at)}`, `${valid.slice(0, at)}${stray}${valid.slice(at + 1)}`]) {
            if (stray === '=' && /^[^=]*={1,2}$/.test(field) && field.replace(/=+$/, '').length % 4 !== 1 && field.length % 4 === 0) continue;
            assert.throws(() => decodeBase64Strict(Buffer.from(field, 'latin1')), (err: unknown) => err instanceof RowError && err.reason === 'bad_base64', JSON.stringify(field));
          }
        }
      }
    }
  });
  it('on either side of the 64 Ki-character pieces a long field is decoded in', () => {
    const image = Buffer.from(Array.from({ length: 150_000 }, (_, i) => (i * 2654435761) >>> 24));
    const field = Buffer.from(image.toString('base64'));
    assert.deepEqual(decodeBase64Strict(field), image);
    for (const at of [0, 65_535, 65_536, 65_537, 131_071, 131_072, field.length - 1]) {
      const broken = Buffer.from(field);
      broken[at] = 0x2e;
      assert.throws(() => decodeBase64Strict(broken), (err: unknown) => err instanceof RowError && err.message.includes(`invalid character "." at offset ${at}`));
    }
  });
});
