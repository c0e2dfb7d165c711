import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RowError } from '@vecmill/shared/errors';
import { defaultDecodeOptions, parsePreprocessSpec } from '@vecmill/worker/model/image-preprocess';
import { InlinePreprocessor, type BatchImageResult } from '@vecmill/worker/model/image-preprocessor';
import { PixelBatchBuffers } from '@vecmill/worker/model/pixel-batch-buffers';
import { inputBufferBytes, PreprocessPool } from '@vecmill/worker/model/preprocess-pool';
import sharp from 'sharp';
import { fixturesSkipReason, sharedFixturesDir } from '../support/fixtures.js';

/**
 * The pool's threads write a whole batch straight into a shared batch buffer: every image's crop
 * lands in its own slot with the same bytes the inline preprocessor computes on this thread, bad images
 * come back as their slot's RowError (never a rejection), and the hashes are those of the decoded
 * bytes. Real photos, real sharp, real threads.
 */
describe('PreprocessPool.preprocessBatch', { skip: fixturesSkipReason() }, () => {
  const config = { size: { shortest_edge: 64 }, crop_size: { height: 64, width: 64 } };
  const spec = parsePreprocessSpec(config);
  const per = 3 * 64 * 64;
  let pool: PreprocessPool;
  let photos: Buffer[];

  before(async () => {
    const dir = join(sharedFixturesDir() as string, 'images');
    photos = await Promise.all(['chelsea.jpg', 'coffee_cmyk.jpg', 'astronaut_rgba.png', 'chelsea_exif6.jpg', 'palette.png', 'coins.jpg'].map((f) => readFile(join(dir, f))));
    pool = new PreprocessPool(config, defaultDecodeOptions, 2);
  });
  after(() => pool.close());

  /** Fields in batch order: photos interleaved with bad fields, so runs of several images span both. */
  function batchFields(): { fields: Buffer[]; bad: Map<number, string> } {
    const fields: Buffer[] = [];
    const bad = new Map<number, string>();
    for (let i = 0; i < 19; i++) {
      if (i === 3) bad.set(i, 'bad_base64');
      if (i === 11) bad.set(i, 'not_an_image');
      const photo = photos[i % photos.length] as Buffer;
      fields.push(i === 3 ? Buffer.from('not*base64') : i === 11 ? Buffer.from(Buffer.from('plain text, not an image').toString('base64')) : Buffer.from(photo.toString('base64')));
    }
    return { fields, bad };
  }

  function assertResults(results: readonly BatchImageResult[], fields: readonly Buffer[], bad: ReadonlyMap<number, string>): void {
    assert.equal(results.length, fields.length);
    results.forEach((r, i) => {
      if (bad.has(i)) {
        assert.ok('error' in r && r.error instanceof RowError, `slot ${i} failed`);
        assert.equal(r.error.reason, bad.get(i));
        return;
      }
      assert.ok(!('error' in r), `slot ${i} decoded`);
      const bytes = Buffer.from((fields[i] as Buffer).toString('latin1'), 'base64');
      assert.deepEqual(Buffer.from(r.sha256 as Uint8Array), createHash('sha256').update(bytes).digest());
    });
  }

  it('writes every image into its slot, bit for bit as the inline preprocessor, with row errors in place', async () => {
    const { fields, bad } = batchFields();
    const buffers = new PixelBatchBuffers(32, per);
    const shared = buffers.acquire();
    shared.fill(0xab);
    const fromPool = await pool.preprocessBatch(fields, true, shared);
    const local = new Uint8Array(32 * per);
    const inline = await new InlinePreprocessor(spec, defaultDecodeOptions).preprocessBatch(fields, true, local);
    assertResults(fromPool, fields, bad);
    assertResults(inline, fields, bad);
    for (let i = 0; i < fields.length; i++) {
      if (bad.has(i)) continue;
      assert.deepEqual(shared.subarray(i * per, (i + 1) * per), local.subarray(i * per, (i + 1) * per), `slot ${i}`);
    }
    assert.deepEqual(shared.subarray(fields.length * per), new Uint8Array((32 - fields.length) * per).fill(0xab), 'nothing is written past the batch');
  });

  it('takes decoded bytes too (the --reuse path), and reuses a released buffer', async () => {
    const buffers = new PixelBatchBuffers(8, per);
    const first = buffers.acquire();
    buffers.release(first);
    const again = buffers.acquire();
    assert.equal(again, first);
    const results = await pool.preprocessBatch(photos, false, again);
    assert.deepEqual(results, photos.map(() => ({ sha256: undefined })));
    const local = new Uint8Array(8 * per);
    await new InlinePreprocessor(spec, defaultDecodeOptions).preprocessBatch(photos, false, local);
    assert.deepEqual(again.subarray(0, photos.length * per), local.subarray(0, photos.length * per));
  });

  it('reuses its input buffers across batches in flight at once, and sends an image larger than one alone', async () => {
    // Random noise does not compress: this PNG's base64 is larger than an input buffer.
    const width = 1300;
    const height = 1100;
    const noise = Buffer.alloc(width * height * 3);
    for (let i = 0; i < noise.length; i++) noise[i] = (i * 2654435761) >>> 24;
    const large = await sharp(noise, { raw: { width, height, channels: 3 } }).png({ compressionLevel: 0 }).toBuffer();
    const largeField = Buffer.from(large.toString('base64'));
    assert.ok(largeField.length > inputBufferBytes, `the large field is ${largeField.length} bytes`);
    const { fields: base, bad } = batchFields();
    const fields = [...base.slice(0, 5), largeField, ...base.slice(5)];
    const shifted = new Map([...bad].map(([i, reason]) => [i >= 5 ? i + 1 : i, reason]));
    const local = new Uint8Array(fields.length * per);
    assertResults(await new InlinePreprocessor(spec, defaultDecodeOptions).preprocessBatch(fields, true, local), fields, shifted);
    const buffers = new PixelBatchBuffers(fields.length, per);
    for (let round = 0; round < 2; round++) {
      const outs = [buffers.acquire(), buffers.acquire(), buffers.acquire()];
      const all = await Promise.all(outs.map((out) => pool.preprocessBatch(fields, true, out)));
      all.forEach((results, b) => {
        assertResults(results, fields, shifted);
        for (let i = 0; i < fields.length; i++) {
          if (!shifted.has(i)) assert.deepEqual(outs[b]!.subarray(i * per, (i + 1) * per), local.subarray(i * per, (i + 1) * per), `round ${round}, batch ${b}, slot ${i}`);
        }
      });
      outs.forEach((out) => buffers.release(out));
    }
  });

  it('refuses a batch buffer that its threads cannot share', async () => {
    await assert.rejects(pool.preprocessBatch(photos, false, new Uint8Array(8 * per)), TypeError);
  });
});
