import assert from 'node:assert/strict';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import { outputKeys } from '@vecmill/shared/run-plan';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { readOutputRows, runCli } from '../support/distributed-helpers.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

/**
 * A real ONNX graph that rejects mid-split under `vecmill run` as a process: the tiny model's
 * tokenizer is given two tokens ('~', '~</w>') whose ids lie past the text graph's embedding table,
 * so onnxruntime's Gather fails on a caption holding '~', placed in a late split. The run must end
 * with one line and a non-zero exit, keep the splits it finished, and not retry (the same batch
 * fails the same way), never dying of an unhandled rejection. A thread that merely dies is
 * replaced and its split retried.
 */
describe('vecmill run: inference rejects mid-split', { timeout: 180_000 }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let model: string;
  let input: string;
  let clean: string;

  before(async () => {
    ({ dir, cleanup } = await makeTempDir('run-infer-fail'));
    model = join(dir, 'model');
    await cp(await tinyModelDir(), model, { recursive: true });
    const tokenizer = JSON.parse(await readFile(join(model, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } };
    const size = Object.keys(tokenizer.model.vocab).length;
    tokenizer.model.vocab['~'] = size;
    tokenizer.model.vocab['~</w>'] = size + 1;
    await writeFile(join(model, 'tokenizer.json'), JSON.stringify(tokenizer));

    clean = join(dir, 'clean.tsv');
    await makeDataset({ path: clean, rows: 40, kind: 'pairs', seed: 9, imageSize: 32 });
    const lines = (await readFile(clean, 'utf8')).split('\n').filter((l) => l !== '');
    assert.ok(lines.every((l) => !l.split('\t')[0]!.includes('~')));
    const image = lines[0]!.split('\t')[1]!;
    lines.splice(34, 0, `a caption with a ~ tilde\t${image}`);
    input = join(dir, 'pairs.tsv');
    await writeFile(input, `${lines.join('\n')}\n`);
  });
  after(() => cleanup());

  it('prints one line, exits non-zero, keeps finished splits, and does not retry', async () => {
    const out = join(dir, 'out');
    const r = await runCli(['run', '--input', input, '--model', model, '--output', out, '--split-size', '4KiB', '--batch-size', '4', '--concurrency', '1', '--threads', '1', '--progress', 'json']);
    assert.ok(typeof r.code === 'number' && r.code !== 0, `non-zero exit: ${String(r.code)}\n${r.stderr}`);
    const text = r.stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('{'));
    assert.equal(text.length, 1, `one line besides the JSON progress events:\n${r.stderr}`);
    assert.match(text[0]!, /^vecmill run: 1 split\(s\) failed, nothing was published; first: split \d+: inference failed: .*out of data bounds.*check that the model folder's ONNX graphs match its tokenizer.* finished splits are kept \[E_INTERNAL\]$/);
    assert.doesNotMatch(r.stderr, /unhandled|^\s+at /m, 'no stack trace, no unhandled rejection');
    const events = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { type: string; split?: number });
    assert.equal(events.filter((e) => e.type === 'split-retry').length, 0, 'the malformed model is not retried');
    const failed = events.find((e) => e.type === 'split-failed')?.split;
    assert.ok(failed !== undefined && failed > 0, `a late split failed: ${String(failed)}`);
    const store = new LocalStore(out);
    for (let s = 0; s < failed; s++) assert.equal(await store.exists(outputKeys.shardMarker(s)), true, `split ${s}, finished before, keeps its marker`);
    assert.equal(await store.exists(outputKeys.shardMarker(failed)), false);
    assert.equal(await store.exists('manifest.json'), false);
  });

  it('an inference thread that dies is replaced: the split is retried and the run publishes the clean output', async () => {
    const flags = (out: string): string[] => ['run', '--input', clean, '--model', model, '--output', out, '--split-size', '4KiB', '--batch-size', '4', '--concurrency', '1', '--threads', '1', '--progress', 'json'];
    const reference = await runCli(flags(join(dir, 'reference')));
    assert.equal(reference.code, 0, reference.stderr);
    const r = await runCli(flags(join(dir, 'crashed')), { VECMILL_FAULT_INFERENCE_EXIT: '4' });
    assert.equal(r.code, 0, r.stderr);
    const events = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { type: string; error?: string });
    const retries = events.filter((e) => e.type === 'split-retry');
    assert.equal(retries.length, 1, r.stderr);
    assert.match(retries[0]!.error ?? '', /the inference thread exited \(code 70\)/);
    assert.deepEqual(await readOutputRows(new LocalStore(join(dir, 'crashed'))), await readOutputRows(new LocalStore(join(dir, 'reference'))));
  });
});
