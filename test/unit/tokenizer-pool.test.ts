import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ModelError } from '@vecmill/shared/errors';
import { join } from 'node:path';
import { ClipTokenizer } from '@vecmill/worker/model/clip-tokenizer';
import { TokenizerPool } from '@vecmill/worker/model/tokenizer-pool';
import { fixturesSkipReason, sharedFixturesDir } from '../support/fixtures.js';

test('TokenizerPool encodes a batch over its threads exactly as ClipTokenizer.encode, in order', { skip: fixturesSkipReason() }, async () => {
  const json = JSON.parse(readFileSync(join(sharedFixturesDir() as string, 'clip-tokenizer', 'tokenizer.json'), 'utf8')) as unknown;
  const options = { contextLength: 77 };
  const local = new ClipTokenizer(json, {}, options);
  const pool = new TokenizerPool(json, {}, options, 2);
  try {
    const captions = Array.from({ length: 301 }, (_, i) => (i % 50 === 0 ? '' : i % 37 === 0 ? 'word '.repeat(200) : `a photo of cat number ${i} — café ☕ ${'x'.repeat(i % 9)}`));
    const ids = await pool.encodeBatch(captions);
    assert.equal(ids.length, captions.length);
    captions.forEach((c, i) => assert.deepEqual(ids[i], local.encode(c), `caption ${i}`));
    assert.deepEqual(await pool.encodeBatch(['a photo of a cat']), [[49406, 320, 1125, 539, 320, 2368, 49407]]);
    assert.deepEqual(await pool.encodeBatch([]), []);
  } finally {
    await pool.close();
  }
  await assert.rejects(pool.encodeBatch(['after close']), /closed/);
});

test('TokenizerPool hashes each caption as sha256 of its UTF-8 bytes and lays ids out as ClipTokenizer does', { skip: fixturesSkipReason() }, async () => {
  const json = JSON.parse(readFileSync(join(sharedFixturesDir() as string, 'clip-tokenizer', 'tokenizer.json'), 'utf8')) as unknown;
  const options = { contextLength: 77 };
  const local = new ClipTokenizer(json, {}, options);
  const pool = new TokenizerPool(json, {}, options, 2);
  try {
    const captions = Array.from({ length: 150 }, (_, i) => (i % 40 === 0 ? '' : `café ☕ number ${i} ${'word '.repeat(i % 90)}\r\u0000`));
    const encoded = await pool.encodeTexts(captions);
    captions.forEach((c, i) => assert.deepEqual([...encoded.sha256.subarray(32 * i, 32 * i + 32)], [...createHash('sha256').update(Buffer.from(c, 'utf8')).digest()], `hash of caption ${i}`));
    const layout = await pool.layout;
    assert.equal(layout.padTokenId, local.padTokenId);
    const which = [5, 0, 149, 77];
    for (const padTo of [undefined, 77]) {
      const packed = layout.packRows(encoded, which, padTo);
      const expected = local.encodeBatch(which.map((i) => captions[i] as string), padTo);
      assert.deepEqual({ ...packed, ids: [...packed.ids] }, { ...expected, ids: [...expected.ids] }, `padTo ${padTo}`);
    }
  } finally {
    await pool.close();
  }
});

test('TokenizerPool rejects a tokenizer.json it cannot build with the tokenizer one-line ModelError', async () => {
  const pool = new TokenizerPool({ version: '1.0', model: { type: 'WordLevel', vocab: { a: 0 }, unk_token: 'a' }, added_tokens: [] }, {}, { contextLength: 77 }, 1);
  try {
    await assert.rejects(pool.layout, (err: unknown) => err instanceof ModelError && /^tokenizer.json cannot be loaded: /.test(err.message));
    await assert.rejects(pool.encodeTexts(['a cat']), ModelError);
  } finally {
    await pool.close();
  }
});
