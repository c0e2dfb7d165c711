import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openOutput, planFromRunConfig } from '@vecmill/producer/plan-from-config';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { ReadBufferPool } from '@vecmill/shared/storage/read-buffer-pool';
import { OnnxEmbedder } from '@vecmill/worker/model/onnx-embedder';
import { PreprocessPool } from '@vecmill/worker/model/preprocess-pool';
import { runEmbedded } from 'vecmill/embedded-run';
import { readOutputRows } from '../support/distributed-helpers.js';
import { runWiredFlow } from '../support/wired-flow.js';
import { eventLog, runConfig } from '../support/run-helpers.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

/** A pool that counts what it hands out: how many reads, and how many distinct buffers served them. */
class CountingPool extends ReadBufferPool {
  gets = 0;
  readonly distinct = new Set<ArrayBufferLike>();
  override get(): Buffer {
    const buffer = super.get();
    this.gets++;
    this.distinct.add(buffer.buffer);
    return buffer;
  }
}

/**
 * The embed processor reads its input into reused buffers and gives each back once the batch
 * whose lines it held is prepared; the line reader gives back at once the buffers wholly inside a
 * line it copied out. With 1 KiB buffers and lines of a few KiB, every line spans several buffers
 * that are refilled many times over in one split: a buffer given back too early would change the
 * images and captions embedded, and this output would differ.
 */
describe('reused read buffers', { timeout: 120_000 }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let model: string;
  before(async () => {
    ({ dir, cleanup } = await makeTempDir('read-buffer-reuse-'));
    model = await tinyModelDir();
    await makeDataset({ path: join(dir, 'pairs.tsv'), rows: 96, kind: 'pairs', seed: 9, imageSize: 40 });
  });
  after(async () => cleanup());

  it('are refilled many times in one split, and the output equals a run that reads each buffer once', async () => {
    const args = ['--input', join(dir, 'pairs.tsv'), '--model', model, '--batch-size', '4'];
    // The reference: the whole input (well under 1 MiB) fits the first buffer, so nothing is refilled.
    const reference = join(dir, 'reference');
    await runEmbedded(runConfig([...args, '--output', reference]), eventLog().sink, dir);

    const out = join(dir, 'small-buffers');
    const config = runConfig([...args, '--output', out]);
    const opened = openOutput(config, dir);
    const { plan, model: folder, providerPlan } = await planFromRunConfig(config, opened, dir, () => undefined);
    assert.equal(plan.splits.length, 1, 'one split, so one lease refills the buffers');
    const pool = new CountingPool({ bufferBytes: 1024 });
    const images = new PreprocessPool(folder.preprocessorConfig, { maxPixels: plan.settings.maxPixels, fastDecode: plan.settings.fastDecode }, 2);
    const embedder = await OnnxEmbedder.open(folder, { plan: providerPlan, intraOpThreads: 1 });
    try {
      const manifest = await runWiredFlow({ plan, folder, output: opened.output, dir, input: 'pairs.tsv', embedder, images, readBuffers: pool, attempts: 1, sink: eventLog().sink });
      assert.equal(manifest.rows.failed, 0, 'no row failed');
    } finally {
      await embedder.close();
      await images.close();
    }
    assert.ok(pool.gets > 3 * pool.distinct.size, `${pool.gets} reads were served by only ${pool.distinct.size} buffers`);
    assert.deepEqual(await readOutputRows(new LocalStore(out)), await readOutputRows(new LocalStore(reference)));
  });
});
