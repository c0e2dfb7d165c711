import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
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
