import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import type { Manifest } from '@vecmill/shared/manifest';
import { PublishedOutput } from '@vecmill/retrieval/output-reader';
import { QueryEmbedder } from '@vecmill/retrieval/query-embedder';
import { evaluateOutput, pairRecall, zeroShotAccuracy } from '@vecmill/retrieval/recall-eval';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { runEmbedded } from 'vecmill/embedded-run';
import { runConfig } from '../support/run-helpers.js';
import { randomUnitVectors, writeSyntheticOutput } from '../support/synthetic-output.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

/** Rows of the identity: row i is the i-th basis vector. */
function basis(rows: readonly number[], dims: number): Float32Array {
  const out = new Float32Array(rows.length * dims);
  rows.forEach((axis, i) => (out[i * dims + axis] = 1));
  return out;
}

describe('recall evaluation on known structure (pure)', () => {
  it('gives recall 1 when texts equal images', () => {
    const v = randomUnitVectors(50, 16, 5);
    const r = pairRecall(v, v, 16);
    assert.deepEqual(r.imageToText, { 1: 1, 5: 1, 10: 1 });
    assert.deepEqual(r.textToImage, { 1: 1, 5: 1, 10: 1 });
    assert.equal(r.images, 50);
  });

  it('counts a swapped pair as a miss at 1 and a hit at 5', () => {
    const images = basis([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 10);
    const texts = basis([0, 1, 2, 3, 4, 5, 6, 7, 9, 8], 10);
    const r = pairRecall(images, texts, 10);
    assert.deepEqual(r.imageToText, { 1: 0.8, 5: 1, 10: 1 });
    assert.deepEqual(r.textToImage, { 1: 0.8, 5: 1, 10: 1 });
  });

  it('treats rows with an identical image as one image with several captions', () => {
    // Image A has captions 0 and 1 (rows 0, 1); image B has caption 2. Caption 1 points away from A.
    const images = basis([0, 0, 1], 3);
    const texts = basis([0, 2, 1], 3);
    const r = pairRecall(images, texts, 3, { ks: [1, 2] });
    assert.equal(r.images, 2);
    assert.deepEqual(r.imageToText, { 1: 1, 2: 1 }, 'A finds caption 0, one of its captions, first');
    // Caption 1 (axis 2) is orthogonal to both images: A and B tie at 0, ties never count against it.
    assert.deepEqual(r.textToImage, { 1: 1, 2: 1 });
  });

  it('scores zero-shot accuracy against the true labels, skipping unlabeled images', () => {
    const labels = basis([0, 1, 2], 3);
    const images = basis([0, 1, 2, 0], 3);
    const z = zeroShotAccuracy(images, labels, Int32Array.from([0, 1, 0, -1]), 3, { ks: [1, 5] });
    assert.equal(z.evaluated, 3);
    assert.equal(z.skipped, 1);
    assert.deepEqual(z.accuracy, { 1: 2 / 3 }, 'k = 5 is dropped: there are only 3 labels');
  });
});

describe('vecmill eval on published outputs', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let base: Manifest;
  let model: string;

  before(async () => {
    ({ dir, cleanup } = await makeTempDir('retrieval-eval'));
    model = await tinyModelDir();
    await makeDataset({ path: join(dir, 'pairs.tsv'), rows: 4, kind: 'pairs', seed: 1, imageSize: 32 });
    base = (await runEmbedded(runConfig(['--input', join(dir, 'pairs.tsv'), '--model', model, '--output', join(dir, 'base')]), () => undefined)).manifest;
  });
  after(() => cleanup());

  it('reads both modalities part by part and gives the expected recall', async () => {
    const dims = 128;
    const images = basis(Array.from({ length: 120 }, (_, i) => i), dims);
    const texts = images.slice();
    // Rows 0 and 1: each caption leans towards the other row's image, so both rank their own second.
    texts.set([0.4, 0.9].map((x) => x / Math.hypot(0.4, 0.9)), 0);
    texts.set([0.9, 0.4].map((x) => x / Math.hypot(0.4, 0.9)), dims);
    await writeSyntheticOutput(join(dir, 'swapped'), base, { dims, image: images, text: texts, rowsPerPart: 50 });
    const result = await evaluateOutput(await PublishedOutput.open(new LocalStore(join(dir, 'swapped'))));
    assert.equal(result.kind, 'pairs');
    if (result.kind !== 'pairs') return;
    assert.equal(result.rows, 120);
    assert.deepEqual(result.recall.imageToText, { 1: 118 / 120, 5: 1, 10: 1 });
    assert.deepEqual(result.recall.textToImage, { 1: 118 / 120, 5: 1, 10: 1 });
  });

  it('zero-shot: images placed exactly on their label prompts are all classified right', async () => {
    const labels = ['red square', 'blue circle', 'green stripe'];
    const embedder = await QueryEmbedder.open(base, ['text'], { model, cacheDir: join(dir, 'cache'), s3: undefined });
    try {
      const prompts = await embedder.embedTexts(labels.map((l) => `a photo of a ${l}.`));
      const dims = embedder.dims;
      const order = [2, 0, 1, 1, 0, 2, 0];
      const images = new Float32Array(order.length * dims);
      order.forEach((l, i) => images.set(prompts.subarray(l * dims, (l + 1) * dims), i * dims));
      const captions = [...order.map((l) => labels[l]!)];
      captions[6] = 'not a label';
      await writeSyntheticOutput(join(dir, 'zero-shot'), base, { dims, image: images, text: images, captions });
      const result = await evaluateOutput(await PublishedOutput.open(new LocalStore(join(dir, 'zero-shot'))), { labels, embedder });
      assert.equal(result.kind, 'zero-shot');
      if (result.kind !== 'zero-shot') return;
      assert.equal(result.zeroShot.evaluated, 6);
      assert.equal(result.zeroShot.skipped, 1);
      assert.equal(result.zeroShot.accuracy[1], 1);
    } finally {
      await embedder.close();
    }
  });

  it('refuses an output that is not published, in one line', async () => {
    await assert.rejects(PublishedOutput.open(new LocalStore(join(dir, 'nowhere'))), (e: Error & { code?: string }) => e.code === 'E_INPUT' && /no published run \(no _SUCCESS\)/.test(e.message) && !e.message.includes('\n'));
  });
});
