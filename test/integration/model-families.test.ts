import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import type { Manifest } from '@vecmill/shared/manifest';
import { ClipTokenizer, type TokenBatch } from '@vecmill/worker/model/clip-tokenizer';
import { l2NormalizeRows } from '@vecmill/worker/model/embedder';
import type { ProviderPlan } from '@vecmill/shared/model/execution-provider';
import { defaultDecodeOptions, parsePreprocessSpec, pixelBatch, preprocessImageInto } from '@vecmill/worker/model/image-preprocess';
import { cropBytes } from '@vecmill/worker/model/pixel-batch';
import type { ModelFamily } from '@vecmill/shared/model/model-family';
import { loadModelFolder, type ModelFolder } from '@vecmill/shared/model/model-folder';
import { OnnxEmbedder } from '@vecmill/worker/model/onnx-embedder';
import { makeModel } from '@vecmill/tools/modelgen/make-model';
import { OnnxGraphBuilder } from '@vecmill/tools/modelgen/onnx-graph-builder';
import { writeOnnxModel } from '@vecmill/tools/modelgen/onnx-model-writer';
import { QueryEmbedder } from '@vecmill/retrieval/query-embedder';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { runEmbedded } from 'vecmill/embedded-run';
import { readOutputRows, runCli, spawnWorker, waitUntil, type WorkerProcess } from '../support/distributed-helpers.js';
import { sharedFixturesDir } from '../support/fixtures.js';
import { redisSkipReason, startRedisServer, type RedisTestServer } from '../support/redis-server.js';
import { readParts, runConfig } from '../support/run-helpers.js';
import { makeTempDir } from '../support/tmp.js';

const cpu: ProviderPlan = { device: 'cpu', providers: ['cpu'], warning: undefined, sessions: 1, defaultBatchSize: 32 };
const longCaption = 'a very long caption about a small brown dog running on the beach under a blue sky with clouds '.repeat(2);

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>, n = a.length): number {
  let d = 0;
  for (let i = 0; i < n; i++) d = Math.max(d, Math.abs((a[i] as number) - (b[i] as number)));
  return d;
}

/** A tiny model folder of a family: Chinese-CLIP with the real Chinese BERT tokenizer when the fixtures are there, SigLIP with its generated Unigram tokenizer. */
async function familyModel(dir: string, family: ModelFamily): Promise<string> {
  const out = join(dir, `model-${family}`);
  const fixtures = sharedFixturesDir();
  const tokenizerPath = family === 'chinese_clip' && fixtures !== undefined ? join(fixtures, 'chinese-bert-tokenizer', 'tokenizer.json') : undefined;
  await makeModel({ family, preset: 'tiny', outDir: out, seed: 5, variants: ['fp32'], ...(tokenizerPath !== undefined ? { tokenizerPath } : {}) });
  return out;
}

/** A pairs file whose captions are Chinese (and one very long), with the generated images. */
async function chinesePairs(path: string, rows: number): Promise<void> {
  await makeDataset({ path, rows, kind: 'pairs', seed: 3, imageSize: 40 });
  const phrases = ['一只可爱的小狗', 'Nike运动鞋 男款 42码', 'café 咖啡', '红色的汽车停在街上', `${'海边的落日'.repeat(30)}`];
  const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
  writeFileSync(path, `${lines.map((l, i) => `${phrases[i % phrases.length]}${l.slice(l.indexOf('\t'))}`).join('\n')}\n`);
}

describe('model families on real ONNX graphs: text inputs, padding and pooling', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const open: { family: ModelFamily; model: ModelFolder; embedder: OnnxEmbedder; tokenizer: ClipTokenizer }[] = [];
  const get = (family: ModelFamily) => open.find((o) => o.family === family)!;

  before(async () => {
    ({ dir, cleanup } = await makeTempDir('families'));
    for (const family of ['chinese_clip', 'siglip'] as const) {
      const model = await loadModelFolder(await familyModel(dir, family), 'fp32', { text: true, image: true });
      const embedder = await OnnxEmbedder.open(model, { plan: cpu, intraOpThreads: 1 });
      const tokenizer = new ClipTokenizer(model.tokenizerJson, model.tokenizerConfig, { contextLength: model.config.contextLength, family: model.config.family });
      open.push({ family, model, embedder, tokenizer });
    }
  });
  after(async () => {
    for (const o of open) await o.embedder.close();
    await cleanup?.();
  });

  it('the generated graphs declare each family\'s real inputs and outputs', async () => {
    const chinese = await ort.InferenceSession.create(get('chinese_clip').model.textModelPath!);
    assert.deepEqual(chinese.inputNames, ['input_ids', 'attention_mask', 'token_type_ids']);
    assert.deepEqual(chinese.outputNames, ['text_embeds']);
    const siglipText = await ort.InferenceSession.create(get('siglip').model.textModelPath!);
    assert.deepEqual(siglipText.inputNames, ['input_ids'], 'SigLIP text exports take no attention mask');
    assert.deepEqual(siglipText.outputNames, ['pooler_output']);
    const siglipVision = await ort.InferenceSession.create(get('siglip').model.visionModelPath!);
    assert.deepEqual(siglipVision.outputNames, ['pooler_output']);
    assert.deepEqual([get('chinese_clip').embedder.textTakesMask, get('siglip').embedder.textTakesMask], [true, false]);
    assert.equal(get('chinese_clip').model.config.contextLength, 52);
    assert.equal(get('siglip').model.config.contextLength, 64);
    for (const s of [chinese, siglipText, siglipVision]) await s.release();
  });

  it('chinese_clip: a caption alone, beside a much longer one, or padded to 52 gives the same vector (the mask makes trimming exact)', async () => {
    const { embedder, tokenizer } = get('chinese_clip');
    const pad = tokenizer.padLength(true, embedder);
    assert.equal(pad, undefined, 'Chinese-CLIP trims padding to the batch');
    const alone = await embedder.embedText(tokenizer.encodeBatch(['一只可爱的小狗'], pad));
    const batch = tokenizer.encodeBatch(['一只可爱的小狗', longCaption], pad);
    assert.ok(batch.seqLen > 30, `the long caption sets the padded length (${batch.seqLen})`);
    const beside = await embedder.embedText(batch);
    const full = await embedder.embedText(tokenizer.encodeBatch(['一只可爱的小狗'], 52));
    assert.ok(maxDiff(alone, beside, embedder.dims) <= 1e-5, `beside a long caption: ${maxDiff(alone, beside, embedder.dims)}`);
    assert.ok(maxDiff(alone, full) <= 1e-5, `padded to 52: ${maxDiff(alone, full)}`);
    const unmasked: TokenBatch = { ...batch, ids: batch.ids.slice(), lengths: batch.lengths.map(() => batch.seqLen) };
    const wrong = await embedder.embedText(unmasked);
    assert.ok(maxDiff(alone, wrong, embedder.dims) > 1e-3, 'without the mask the padding would change the [CLS] state');
  });

  it('chinese_clip: attention_mask and token_type_ids are fed as BERT expects (mask over the tokens, type 0)', async () => {
    const { embedder, tokenizer, model } = get('chinese_clip');
    const batch = tokenizer.encodeBatch(['café 咖啡', '红色的汽车停在街上'], undefined);
    const ours = await embedder.embedText(batch);
    const session = await ort.InferenceSession.create(model.textModelPath!);
    const shape = [batch.batch, batch.seqLen];
    const mask = BigInt64Array.from({ length: batch.ids.length }, (_, i) => (i % batch.seqLen < (batch.lengths[Math.floor(i / batch.seqLen)] as number) ? 1n : 0n));
    const run = async (types: bigint) => {
      const out = await session.run({
        input_ids: new ort.Tensor('int64', batch.ids, shape),
        attention_mask: new ort.Tensor('int64', mask, shape),
        token_type_ids: new ort.Tensor('int64', new BigInt64Array(batch.ids.length).fill(types), shape),
      });
      return out['text_embeds']!.data as Float32Array;
    };
    // The real Chinese BERT tokenizer's counts; the generated WordPiece (fixtures absent) splits differently.
    if (sharedFixturesDir() !== undefined) assert.equal(Number(mask.reduce((a, b) => a + b, 0n)), 5 + 11, 'café 咖啡 is 5 tokens, 红色的汽车停在街上 11');
    assert.deepEqual(ours, await run(0n));
    assert.ok(maxDiff(ours, await run(1n)) > 1e-4, 'token types reach the graph');
    await session.release();
  });

  it('a text graph declaring an input vecmill cannot feed is refused when it opens, naming the input', async () => {
    const odd = join(dir, 'model-odd');
    await cp(join(dir, 'model-siglip'), odd, { recursive: true });
    const g = new OnnxGraphBuilder('odd_text_model', 1);
    const ids = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
    const text = g.input('text', 'int64', ['batch_size', 'sequence_length']);
    g.op('Cast', [g.op('Add', [ids, text])], { to: { i: 1 } }, 'text_embeds');
    g.output('text_embeds', 'float32', ['batch_size', 'sequence_length']);
    await writeOnnxModel(join(odd, 'onnx', 'text_model.onnx'), g.build(), { opsetVersion: 17, docString: 'a graph in another layout' });
    const model = await loadModelFolder(odd, 'fp32', { text: true, image: false });
    await assert.rejects(OnnxEmbedder.open(model, { plan: cpu, intraOpThreads: 1 }), (e: Error) => /takes text/.test(e.message) && /input_ids, attention_mask, token_type_ids, position_ids/.test(e.message) && !e.message.includes('\n'));
  });

  it('siglip: every batch is padded to 64 with the pad token; trimming would change the embedding', async () => {
    const { embedder, tokenizer } = get('siglip');
    const pad = tokenizer.padLength(true, embedder);
    assert.equal(pad, 64);
    const alone = tokenizer.encodeBatch(['a photo of a cat'], pad);
    const beside = tokenizer.encodeBatch(['a photo of a cat', longCaption], pad);
    assert.deepEqual([alone.seqLen, beside.seqLen], [64, 64]);
    const a = await embedder.embedText(alone);
    const b = await embedder.embedText(beside);
    assert.ok(maxDiff(a, b, embedder.dims) <= 1e-5, `alone versus beside a long caption: ${maxDiff(a, b, embedder.dims)}`);
    const trimmed = await embedder.embedText(tokenizer.encodeBatch(['a photo of a cat'], undefined));
    assert.ok(maxDiff(a, trimmed) > 1e-3, 'SigLIP pools the last position, so the padded length matters');
    const long = tokenizer.encode(longCaption.repeat(3));
    assert.equal(long.length, 64);
    assert.equal(long[63], tokenizer.endTokenId, 'truncation keeps </s> last');
  });
});

describe('vecmill run with Chinese-CLIP and SigLIP model folders', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => {
    ({ dir, cleanup } = await makeTempDir('families-run'));
    await chinesePairs(join(dir, 'pairs.tsv'), 30);
    const lines = readFileSync(join(dir, 'pairs.tsv'), 'utf8').trimEnd().split('\n');
    writeFileSync(join(dir, 'text.tsv'), `${lines.map((l) => l.slice(0, l.indexOf('\t'))).join('\n')}\n`);
    writeFileSync(join(dir, 'image.tsv'), `${lines.map((l) => l.slice(l.indexOf('\t') + 1)).join('\n')}\n`);
  });
  after(() => cleanup?.());

  for (const family of ['chinese_clip', 'siglip'] as const) {
    it(`${family}: pairs, text-only and image-only inputs embed as the family's tokenizer, text tower and image processor do`, async () => {
      const modelDir = await familyModel(dir, family);
      const model = await loadModelFolder(modelDir, 'fp32', { text: true, image: true });
      const embedder = await OnnxEmbedder.open(model, { plan: cpu, intraOpThreads: 1 });
      try {
        const tokenizer = new ClipTokenizer(model.tokenizerJson, model.tokenizerConfig, { contextLength: model.config.contextLength, family });
        const spec = parsePreprocessSpec(model.preprocessorConfig);
        const lines = readFileSync(join(dir, 'pairs.tsv'), 'utf8').trimEnd().split('\n');
        const expectText = async (caption: string) => l2NormalizeRows(await embedder.embedText(tokenizer.encodeBatch([caption], tokenizer.padLength(false, embedder))), embedder.dims);
        const expectImage = async (field: string) => {
          const crops = new Uint8Array(cropBytes(spec.outHeight, spec.outWidth));
          await preprocessImageInto(Buffer.from(field, 'base64'), spec, defaultDecodeOptions, crops, 0);
          return l2NormalizeRows(await embedder.embedImages(pixelBatch(spec, crops, 1)), embedder.dims);
        };
        for (const kind of ['pairs', 'text', 'image'] as const) {
          const out = join(dir, `out-${family}-${kind}`);
          const r = await runEmbedded(runConfig(['--input', join(dir, `${kind}.tsv`), '--model', modelDir, '--output', out, '--batch-size', '4', '--split-size', '8KiB']), () => undefined);
          assert.equal(r.manifest.settings.kind, kind);
          assert.equal(r.manifest.rows.ok, 30, `${kind}: ${JSON.stringify(r.manifest.rows)}`);
          assert.equal(r.manifest.model.contextLength, family === 'siglip' ? 64 : 52);
          const rows = (await readParts(new LocalStore(out), r.manifest)).flatMap((t) => Array.from({ length: t.numRows }, (_, i) => t.row(i)));
          for (const i of [0, 1, 4]) {
            const [caption, image] = lines[i]!.split('\t') as [string, string];
            if (kind !== 'image') assert.ok(maxDiff(rows[i]!.textEmbedding!, await expectText(caption)) <= 1e-5, `${kind} row ${i} text`);
            if (kind !== 'text') assert.ok(maxDiff(rows[i]!.imageEmbedding!, await expectImage(image)) <= 1e-5, `${kind} row ${i} image`);
          }
        }
      } finally {
        await embedder.close();
      }
    });
  }

  it('--context-length overrides the tokenizer\'s truncation length and is recorded in the manifest', async () => {
    const modelDir = join(dir, 'model-chinese_clip');
    const out = join(dir, 'out-context');
    const r = await runEmbedded(runConfig(['--input', join(dir, 'text.tsv'), '--model', modelDir, '--output', out, '--context-length', '8']), () => undefined);
    assert.equal((JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as Manifest).model.contextLength, 8);
    const short = (await readParts(new LocalStore(out), r.manifest)).flatMap((t) => Array.from({ length: t.numRows }, (_, i) => t.row(i).textEmbedding!));
    const full = (await readOutputRows(new LocalStore(join(dir, 'out-chinese_clip-text')))).text;
    assert.ok(maxDiff(short[4]!, full[4]!) > 1e-4, 'a caption longer than 8 tokens is cut');
    assert.ok(maxDiff(short[2]!, full[2]!) <= 1e-5, 'a caption of 5 tokens is not');
    const success = await readFile(join(out, '_SUCCESS'));
    await rm(join(out, '_SUCCESS'));
    await assert.rejects(
      runEmbedded(runConfig(['--input', join(dir, 'text.tsv'), '--model', modelDir, '--output', out]), () => undefined),
      (e: Error) => /different --context-length/.test(e.message),
      'resuming an unfinished run with another context length is refused',
    );
    await writeFile(join(out, '_SUCCESS'), success);
    await assert.rejects(
      runEmbedded(runConfig(['--input', join(dir, 'text.tsv'), '--model', modelDir, '--output', join(dir, 'out-context-bad'), '--context-length', '100']), () => undefined),
      (e: Error) => /--context-length 100/.test(e.message) && /64/.test(e.message),
    );
  });

  it('search and eval queries embed with the run\'s family and truncation length', async () => {
    for (const [family, out] of [['chinese_clip', 'out-context'], ['siglip', 'out-siglip-text']] as const) {
      const manifest = JSON.parse(readFileSync(join(dir, out, 'manifest.json'), 'utf8')) as Manifest;
      const query = await QueryEmbedder.open(manifest, ['text'], { model: join(dir, `model-${family}`), cacheDir: join(dir, 'cache'), s3: undefined });
      try {
        const lines = readFileSync(join(dir, 'text.tsv'), 'utf8').trimEnd().split('\n');
        const stored = (await readOutputRows(new LocalStore(join(dir, out)))).text;
        const vectors = await query.embedTexts([lines[4]!, lines[0]!]);
        assert.ok(maxDiff(vectors.subarray(0, query.dims), stored[4]!) <= 1e-5, `${family}: a long caption, truncated as the run truncated it`);
        assert.ok(maxDiff(vectors.subarray(query.dims), stored[0]!) <= 1e-5, `${family}: a short caption`);
      } finally {
        await query.close();
      }
    }
  });

  it('--reuse refuses an output embedded with another --context-length', async () => {
    await assert.rejects(
      runEmbedded(runConfig(['--input', join(dir, 'text.tsv'), '--model', join(dir, 'model-chinese_clip'), '--output', join(dir, 'out-reuse'), '--reuse', join(dir, 'out-context')]), () => undefined),
      (e: Error) => /--reuse/.test(e.message) && /--context-length/.test(e.message),
    );
  });
});

describe('distributed runs with Chinese-CLIP and SigLIP model folders', { skip: redisSkipReason() }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let redis: RedisTestServer;
  const workers: WorkerProcess[] = [];
  before(async () => {
    ({ dir, cleanup } = await makeTempDir('families-dist'));
    await chinesePairs(join(dir, 'pairs.tsv'), 24);
    redis = await startRedisServer();
  });
  after(async () => {
    for (const w of workers) w.child.kill('SIGKILL');
    await redis?.stop();
    await cleanup?.();
  });

  for (const family of ['chinese_clip', 'siglip'] as const) {
    it(`${family}: a worker process gives the embedded mode's rows`, async () => {
      const modelDir = await familyModel(dir, family);
      const flags = (output: string) => ['--input', join(dir, 'pairs.tsv'), '--model', modelDir, '--output', output, '--split-size', '8KiB', '--batch-size', '4'];
      await runEmbedded(runConfig(flags(join(dir, `reference-${family}`))), () => undefined);
      const out = join(dir, `dist-${family}`);
      const produced = await runCli(['produce', '--redis', redis.url, '--prefix', family, ...flags(out)]);
      assert.equal(produced.code, 0, produced.stderr);
      const w = spawnWorker(redis.url, ['--prefix', family, '--threads', '1']);
      workers.push(w);
      await waitUntil(() => readdirSync(out).includes('_SUCCESS'), 120_000, '_SUCCESS');
      w.child.kill('SIGTERM');
      assert.equal(await w.exited, 0, w.stderr());
      const rows = await readOutputRows(new LocalStore(out));
      assert.equal(rows.ids.length, 24);
      assert.deepEqual(rows, await readOutputRows(new LocalStore(join(dir, `reference-${family}`))));
    });
  }
});
