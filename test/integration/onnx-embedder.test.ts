import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ClipTokenizer } from '@vecmill/worker/model/clip-tokenizer';
import type { ProviderPlan } from '@vecmill/shared/model/execution-provider';
import { loadModelFolder, type ModelFolder } from '@vecmill/shared/model/model-folder';
import { OnnxEmbedder } from '@vecmill/worker/model/onnx-embedder';
import { parsePreprocessSpec, pixelBatch } from '@vecmill/worker/model/image-preprocess';
import { cropBytes } from '@vecmill/worker/model/pixel-batch';
import { tinyModelDir } from '../support/tiny-model.js';

const plan = (sessions: number): ProviderPlan => ({ device: 'cpu', providers: ['cpu'], warning: undefined, sessions, defaultBatchSize: 32 });

describe('OnnxEmbedder (real ONNX graphs on inference threads)', () => {
  let model: ModelFolder;
  let one: OnnxEmbedder;
  let two: OnnxEmbedder;
  before(async () => {
    model = await loadModelFolder(await tinyModelDir(), 'fp32', { text: true, image: true });
    one = await OnnxEmbedder.open(model, { plan: plan(1), intraOpThreads: 1 });
    two = await OnnxEmbedder.open(model, { plan: plan(2), intraOpThreads: 1 });
  });
  after(async () => {
    await one.close();
    await two.close();
  });

  it('reports the graph: dims, towers and a dynamic text axis', () => {
    assert.equal(one.dims, model.config.projectionDim);
    assert.equal(one.hasText && one.hasImage, true);
    assert.deepEqual(one.textInput, { dynamic: true, fixedLength: undefined });
    assert.equal(one.device, 'cpu');
  });

  it('spreads concurrent requests over several sessions (as on a GPU) with the same results as one session', async () => {
    const spec = parsePreprocessSpec(model.preprocessorConfig);
    const per = cropBytes(spec.outHeight, spec.outWidth);
    const batches = Array.from({ length: 6 }, (_, b) => Uint8Array.from({ length: 2 * per }, (_, i) => (i * 7 + b * 31) % 256));
    const tokenizer = new ClipTokenizer(model.tokenizerJson, model.tokenizerConfig, { contextLength: model.config.contextLength });
    const tokens = tokenizer.encodeBatch(['a red square', 'a blue stripe on white'], undefined);
    const [a, b] = await Promise.all([
      Promise.all(batches.map((p) => one.embedImages(pixelBatch(spec, p.slice(), 2)))),
      Promise.all(batches.map((p) => two.embedImages(pixelBatch(spec, p.slice(), 2)))),
    ]);
    a.forEach((v, i) => assert.deepEqual(b[i], v, `batch ${i}`));
    assert.notDeepEqual(a[0], a[1], 'different inputs give different vectors');
    assert.deepEqual(await two.embedText(tokens), await one.embedText(tokens));
  });

  it('rejects requests after close, with a clear error that blames no model (a shutdown race is retried elsewhere)', async () => {
    const e = await OnnxEmbedder.open(model, { plan: plan(1), intraOpThreads: 1 });
    await e.close();
    await assert.rejects(e.embedText({ ids: new BigInt64Array([1n, 2n]), batch: 1, seqLen: 2, lengths: [2] }), { code: 'E_INTERNAL', message: /closed/ });
  });
});
