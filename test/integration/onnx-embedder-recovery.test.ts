import assert from 'node:assert/strict';
import { cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VecmillError } from '@vecmill/shared/errors';
import { failurePolicy } from '@vecmill/shared/failure-policy';
import { ClipTokenizer } from '@vecmill/worker/model/clip-tokenizer';
import type { ProviderPlan } from '@vecmill/shared/model/execution-provider';
import { loadModelFolder, type ModelFolder } from '@vecmill/shared/model/model-folder';
import { OnnxEmbedder } from '@vecmill/worker/model/onnx-embedder';
import { waitUntil } from '../support/distributed-helpers.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

const cpu: ProviderPlan = { device: 'cpu', providers: ['cpu'], warning: undefined, sessions: 1, defaultBatchSize: 32 };

/** A dead inference thread fails only the calls it held (retryable), and is replaced; `healthy` follows. */
describe('OnnxEmbedder: an inference thread that dies is replaced', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let model: ModelFolder;
  let tokenizer: ClipTokenizer;
  before(async () => {
    ({ dir, cleanup } = await makeTempDir('embedder-recovery'));
    await cp(await tinyModelDir(), join(dir, 'model'), { recursive: true });
    model = await loadModelFolder(join(dir, 'model'), 'fp32', { text: true, image: true });
    tokenizer = new ClipTokenizer(model.tokenizerJson, model.tokenizerConfig, { contextLength: model.config.contextLength });
  });
  after(() => cleanup());

  const tokens = () => tokenizer.packBatch([tokenizer.encode('a photo of a cat')], undefined);

  it('fails the call the thread held with a retryable error, then embeds on a new thread', async () => {
    const events: string[] = [];
    const e = await OnnxEmbedder.open(model, { plan: cpu, intraOpThreads: 1, exitThreadAtRequest: 2, onThreadEvent: (l) => events.push(l) });
    try {
      const before = await e.embedText(tokens());
      const err = await e.embedText(tokens()).then(() => undefined, (x: unknown) => x);
      assert.ok(err instanceof VecmillError, `a VecmillError: ${String(err)}`);
      assert.match(err.message, /the inference thread exited \(code 70\)/);
      assert.equal(failurePolicy(err), 'retry-attempt');
      const afterCrash = await e.embedText(tokens());
      assert.deepEqual([...afterCrash], [...before], 'the new thread embeds as the old one did');
      assert.equal(e.healthy, true);
      assert.ok(events.some((l) => /new inference thread is ready/.test(l)), events.join('\n'));
    } finally {
      await e.close();
    }
  });

  it('reports unhealthy, and fails every later call, when no new thread can start', async () => {
    const e = await OnnxEmbedder.open(model, { plan: cpu, intraOpThreads: 1, exitThreadAtRequest: 1 });
    try {
      assert.equal(e.healthy, true);
      await rm(join(dir, 'model', 'onnx', 'text_model.onnx'));
      await assert.rejects(e.embedText(tokens()), /the inference thread exited/);
      await waitUntil(() => !e.healthy, 30_000, 'embedder unhealthy');
      const err = await e.embedText(tokens()).then(() => undefined, (x: unknown) => x);
      assert.match(String((err as Error).message), /could not be replaced \(cannot open the ONNX models.*; this process cannot embed until it is restarted/);
      assert.equal(failurePolicy(err), 'retry-attempt', 'another worker may embed the split');
    } finally {
      await e.close();
    }
  });
});
