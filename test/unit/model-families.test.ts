import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, test } from 'node:test';
import sharp from 'sharp';
import { loadMakeModelConfig } from '@vecmill/tools/make-model-command';
import { ConfigError, ModelError } from '@vecmill/shared/errors';
import { ClipTokenizer } from '@vecmill/worker/model/clip-tokenizer';
import { defaultDecodeOptions } from '@vecmill/worker/model/image-decode';
import { preprocessImage } from '@vecmill/worker/model/image-preprocess';
import { parseModelFamily } from '@vecmill/shared/model/model-family';
import { parseClipConfig, resolveContextLength } from '@vecmill/shared/model/model-folder';
import { parsePreprocessSpec } from '@vecmill/worker/model/preprocess-spec';
import { makeModel } from '@vecmill/tools/modelgen/make-model';
import { buildSmallTokenizer } from '@vecmill/tools/modelgen/small-tokenizer';
import { buildSmallUnigramTokenizer } from '@vecmill/tools/modelgen/small-unigram-tokenizer';
import { buildSmallWordPieceTokenizer } from '@vecmill/tools/modelgen/small-wordpiece-tokenizer';
import { fixturesSkipReason, sharedFixturesDir } from '../support/fixtures.js';
import { runConfig } from '../support/run-helpers.js';
import { makeTempDir } from '../support/tmp.js';

/** A text graph with a dynamic sequence axis, with and without an attention_mask input. */
const dynamicGraph = { textInput: { dynamic: true, fixedLength: undefined }, textTakesMask: true };
const unmaskedGraph = { ...dynamicGraph, textTakesMask: false };

function chineseFixture(): unknown {
  return JSON.parse(readFileSync(join(sharedFixturesDir() as string, 'chinese-bert-tokenizer', 'tokenizer.json'), 'utf8')) as unknown;
}

/** Chinese-CLIP's tokenizer as its model folders configure it: 52 tokens (tokenizer_config.json names no pad token; BertTokenizer's default [PAD] applies). */
function chineseTokenizer(contextLength = 52): ClipTokenizer {
  return new ClipTokenizer(chineseFixture(), { tokenizer_class: 'BertTokenizer', model_max_length: 52 }, { contextLength, family: 'chinese_clip' });
}

function siglipTokenizer(): ClipTokenizer {
  return new ClipTokenizer(buildSmallUnigramTokenizer(), { pad_token: '</s>', model_max_length: 64 }, { contextLength: 64, family: 'siglip' });
}

describe('chinese_clip tokenizer on the real Chinese BERT tokenizer.json', { skip: fixturesSkipReason() }, () => {
  it('gives the known ids of Chinese-CLIP\'s tokenizer, [CLS] first and [SEP] last', () => {
    const tok = chineseTokenizer();
    assert.deepEqual(tok.encode('一只可爱的小狗'), [101, 671, 1372, 1377, 4263, 4638, 2207, 4318, 102]);
    assert.deepEqual(tok.encode('Nike运动鞋 男款 42码'), [101, 8702, 6817, 1220, 7490, 4511, 3621, 8239, 4772, 102]);
    assert.deepEqual(tok.encode('café 咖啡'), [101, 8377, 1476, 1565, 102]);
    assert.deepEqual(tok.encode(''), [101, 102]);
    assert.equal(tok.padTokenId, 0, '[PAD] comes from the vocabulary');
    assert.equal(tok.endTokenId, 102);
    assert.equal(tok.trimming, 'with-mask');
  });

  it('truncates to the context length keeping [SEP] last, as truncation=True does', () => {
    const tok = chineseTokenizer();
    const long = '小狗'.repeat(100);
    const ids = tok.encode(long);
    assert.equal(ids.length, 52);
    assert.equal(ids[0], 101);
    assert.equal(ids[51], 102);
    assert.deepEqual(ids.slice(1, 51), Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? 2207 : 4318)));
    const exact = tok.encode('小'.repeat(50));
    assert.equal(exact.length, 52, '50 characters plus [CLS] and [SEP] fit exactly');
    assert.deepEqual(chineseTokenizer(8).encode(long), [101, 2207, 4318, 2207, 4318, 2207, 4318, 102]);
  });

  it('pads with [PAD] = 0 and masks exactly the caption tokens', () => {
    const tok = chineseTokenizer();
    const batch = tok.encodeBatch(['一只可爱的小狗', 'café 咖啡'], tok.padLength(true, dynamicGraph));
    assert.equal(batch.seqLen, 9);
    assert.deepEqual(batch.lengths, [9, 5]);
    assert.deepEqual([...batch.ids.slice(9)].map(Number), [101, 8377, 1476, 1565, 102, 0, 0, 0, 0]);
    const full = tok.encodeBatch(['café 咖啡'], tok.padLength(false, dynamicGraph));
    assert.equal(tok.padLength(true, unmaskedGraph), 52, 'a BERT graph without attention_mask cannot ignore padding, so it is never trimmed');
    assert.equal(tok.padLength(true, { textInput: { dynamic: false, fixedLength: 40 }, textTakesMask: true }), 40, 'a fixed sequence axis is respected');
    assert.equal(full.seqLen, 52);
    assert.deepEqual(full.lengths, [5]);
  });
});

describe('siglip tokenizer on the generated Unigram tokenizer.json', () => {
  it('loads the Unigram model, adds </s> at the end only, and pads with </s> to 64 whatever the batch', () => {
    const tok = siglipTokenizer();
    const eos = tok.endTokenId as number;
    assert.equal(tok.padTokenId, eos, 'SigLIP pads with its end token');
    const ids = tok.encode('a photo of a cat');
    assert.equal(ids.length, 6);
    assert.equal(ids[5], eos);
    assert.ok(ids.slice(0, 5).every((t) => t !== eos && t !== 2), `whole-word pieces, no <unk>: ${ids.join(' ')}`);
    assert.deepEqual(tok.encode(''), [eos]);
    assert.equal(tok.trimming, 'never');
    assert.equal(tok.padLength(true, dynamicGraph), 64, 'never trimmed, even with --trim-text on a dynamic graph');
    const batch = tok.encodeBatch(['a cat', 'a photo of a dog on the beach'], tok.padLength(true, dynamicGraph));
    assert.equal(batch.seqLen, 64);
    assert.deepEqual(batch.lengths, [64, 64], 'the mask (if a graph takes one) covers the padding SigLIP was trained to see');
    assert.deepEqual([...batch.ids.slice(0, 64)].map(Number), [...tok.encode('a cat'), ...Array<number>(61).fill(eos)]);
  });

  it('truncates to 64 keeping </s> last', () => {
    const tok = siglipTokenizer();
    const ids = tok.encode('cat '.repeat(200));
    assert.equal(ids.length, 64);
    assert.equal(ids[63], tok.endTokenId);
    assert.equal(ids.filter((t) => t === tok.endTokenId).length, 1);
  });
});

test('the generated WordPiece tokenizer has BERT\'s structure: [CLS] … [SEP], [PAD] 0, one token per hanzi', () => {
  const tok = new ClipTokenizer(buildSmallWordPieceTokenizer(), { pad_token: '[PAD]' }, { contextLength: 52, family: 'chinese_clip' });
  const ids = tok.encode('一只可爱的小狗 photo');
  assert.equal(ids.length, 10);
  assert.equal(ids[0], tok.encode('')[0]);
  assert.equal(ids[9], tok.endTokenId);
  assert.equal(tok.padTokenId, 0);
  assert.ok(!ids.includes(1), `no [UNK]: ${ids.join(' ')}`);
});

test('CLIP trims whether or not its graph takes a mask: the causal tower never sees padding before the end token', () => {
  const tok = new ClipTokenizer(buildSmallTokenizer(), {}, { contextLength: 77 });
  assert.equal(tok.family, 'clip');
  assert.equal(tok.padLength(true, unmaskedGraph), undefined);
  assert.equal(tok.padLength(true, dynamicGraph), undefined);
  assert.equal(tok.padLength(false, unmaskedGraph), 77);
});

test('a tokenizer that lacks the family\'s pad token fails in one line', () => {
  assert.throws(
    () => new ClipTokenizer(buildSmallUnigramTokenizer(), { pad_token: '<nope>' }, { contextLength: 64, family: 'siglip' }),
    (e: unknown) => e instanceof ModelError && /pad token <nope>/.test(e.message) && !e.message.includes('\n'),
  );
});

test('model_type picks the family; an unknown one fails in one line naming the known families', () => {
  assert.equal(parseModelFamily('chinese_clip', 'm'), 'chinese_clip');
  assert.equal(parseModelFamily('siglip', 'm'), 'siglip');
  assert.equal(parseModelFamily(undefined, 'm'), 'clip');
  assert.throws(
    () => parseClipConfig({ model_type: 'blip' }, '/models/blip'),
    (e: unknown) => e instanceof ModelError && /"blip"/.test(e.message) && /clip, chinese_clip, siglip/.test(e.message) && !e.message.includes('\n'),
  );
});

test('the truncation length is model_max_length, else max_position_embeddings, and --context-length overrides it', () => {
  const chinese = parseClipConfig({ model_type: 'chinese_clip', projection_dim: 512, text_config: { max_position_embeddings: 512 } }, 'm', { model_max_length: 52 });
  assert.equal(chinese.contextLength, 52);
  assert.equal(chinese.maxPositions, 512);
  const siglip = parseClipConfig({ model_type: 'siglip', text_config: {} }, 'm');
  assert.deepEqual([siglip.contextLength, siglip.projectionDim], [64, 768], 'SiglipTextConfig defaults: 64 positions, hidden 768, no projection');
  const unset = parseClipConfig({ model_type: 'clip' }, 'm', { model_max_length: 1e30 });
  assert.equal(unset.contextLength, 77, "HF's int(1e30) means no limit was set");
  assert.equal(resolveContextLength(chinese, undefined), 52);
  assert.equal(resolveContextLength(chinese, 32), 32, "EasyNLP's sequence_length 32");
  assert.throws(() => resolveContextLength(chinese, 513), (e: unknown) => e instanceof ConfigError && /--context-length 513/.test(e.message) && /512/.test(e.message));
  const tooLong = parseClipConfig({ model_type: 'clip' }, 'm', { model_max_length: 100 });
  assert.throws(() => resolveContextLength(tooLong, undefined), (e: unknown) => e instanceof ConfigError && /model_max_length 100/.test(e.message) && /--context-length 77/.test(e.message));
  assert.equal(resolveContextLength(tooLong, 77), 77, '--context-length is the way out of a model_max_length the model cannot take');
  assert.throws(() => parseClipConfig({ model_type: 'clip' }, 'm', { model_max_length: 1.5 }), (e: unknown) => e instanceof ModelError && /model_max_length 1.5/.test(e.message));
  assert.equal(runConfig(['--input', 'x.tsv', '--model', 'm', '--output', 'o', '--context-length', '32']).contextLength, 32);
  assert.equal(runConfig(['--input', 'x.tsv', '--model', 'm', '--output', 'o']).contextLength, undefined);
  assert.throws(() => runConfig(['--input', 'x.tsv', '--model', 'm', '--output', 'o', '--context-length', 'many']), ConfigError);
});

test('make-model flags: --family picks the family and only its presets', () => {
  assert.deepEqual(loadMakeModelConfig(['--family', 'siglip', '--preset', 'base-patch16-224', '--out', 'd']), { family: 'siglip', preset: 'base-patch16-224', out: 'd', seed: 42, tokenizer: undefined });
  assert.equal(loadMakeModelConfig(['--out', 'd']).family, 'clip');
  assert.throws(() => loadMakeModelConfig(['--family', 'siglip', '--preset', 'vit-b-32', '--out', 'd']), (e: unknown) => e instanceof ConfigError && /tiny, base-patch16-224/.test(e.message));
  assert.throws(() => loadMakeModelConfig(['--family', 'blip', '--out', 'd']), (e: unknown) => e instanceof ConfigError && /clip, chinese_clip, siglip/.test(e.message));
});

test('make-model refuses a preset of another family and a tokenizer without the family\'s special tokens, before writing', async () => {
  const { dir, cleanup } = await makeTempDir('families-make');
  try {
    await assert.rejects(makeModel({ family: 'siglip', preset: 'vit-b-32', outDir: join(dir, 'a') }), (e: unknown) => e instanceof ConfigError && /vit-b-32/.test((e as Error).message) && /tiny, base-patch16-224/.test((e as Error).message));
    await assert.rejects(makeModel({ family: 'blip' as 'clip', preset: 'tiny', outDir: join(dir, 'a') }), (e: unknown) => e instanceof ConfigError && /clip, chinese_clip, siglip/.test((e as Error).message));
    writeFileSync(join(dir, 'clip-tokenizer.json'), JSON.stringify(buildSmallTokenizer()));
    await assert.rejects(makeModel({ family: 'chinese_clip', preset: 'tiny', outDir: join(dir, 'b'), tokenizerPath: join(dir, 'clip-tokenizer.json') }), (e: unknown) => e instanceof ModelError && /\[CLS\]/.test((e as Error).message));
    await assert.rejects(makeModel({ family: 'siglip', preset: 'tiny', outDir: join(dir, 'c'), tokenizerPath: join(dir, 'clip-tokenizer.json') }), (e: unknown) => e instanceof ModelError && /<\/s>/.test((e as Error).message));
    assert.deepEqual(readdirSync(dir), ['clip-tokenizer.json'], 'nothing was written');
  } finally {
    await cleanup();
  }
});

/** The test pattern of image-preprocess.test.ts, drawn as lossless PNG. */
async function pattern(width: number, height: number): Promise<Buffer> {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set([(x * 7 + y * 13) & 255, (x * x + 3 * y) & 255, (x * y + 50) & 255], (y * width + x) * 3);
  return sharp(data, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

function sha256(values: Float32Array): string {
  return createHash('sha256').update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength)).digest('hex');
}

/** Chinese-CLIP's preprocessor_config.json as OFA-Sys/chinese-clip-vit-base-patch16 ships it. */
const chineseClipProcessor = {
  crop_size: 224, do_center_crop: false, do_convert_rgb: true, do_normalize: true, do_rescale: true, do_resize: true,
  image_mean: [0.48145466, 0.4578275, 0.40821073], image_std: [0.26862954, 0.26130258, 0.27577711],
  image_processor_type: 'ChineseCLIPImageProcessor', resample: 3, rescale_factor: 0.00392156862745098, size: { height: 224, width: 224 },
};

/** SigLIP's preprocessor_config.json as google/siglip-base-patch16-224 ships it. */
const siglipProcessor = {
  do_normalize: true, do_rescale: true, do_resize: true, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5],
  image_processor_type: 'SiglipImageProcessor', processor_class: 'SiglipProcessor', resample: 3, rescale_factor: 0.00392156862745098, size: { height: 224, width: 224 },
};

test('each processor type parses with its own class semantics', () => {
  const chinese = parsePreprocessSpec(chineseClipProcessor);
  assert.deepEqual([chinese.resize, chinese.crop, chinese.outHeight, chinese.outWidth], [{ kind: 'exact', height: 224, width: 224 }, undefined, 224, 224]);
  const siglip = parsePreprocessSpec(siglipProcessor);
  assert.deepEqual([siglip.resize, siglip.crop, siglip.normalize], [{ kind: 'exact', height: 224, width: 224 }, undefined, { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }]);
  const defaults = parsePreprocessSpec({ image_processor_type: 'SiglipImageProcessor', do_center_crop: true, crop_size: 100 });
  assert.deepEqual([defaults.resize, defaults.crop, defaults.normalize, defaults.outHeight], [{ kind: 'exact', height: 224, width: 224 }, undefined, { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }, 224], 'SiglipImageProcessor has no crop step and defaults to 224x224, mean/std 0.5');
  const clipDefaults = parsePreprocessSpec({ image_processor_type: 'ChineseCLIPImageProcessor' });
  assert.deepEqual([clipDefaults.resize, clipDefaults.crop], [{ kind: 'shortest-edge', shortestEdge: 224 }, { height: 224, width: 224 }], 'ChineseCLIPImageProcessor has CLIPImageProcessor defaults');
  for (const [json, field] of [
    [{ image_processor_type: 'BlipImageProcessor' }, 'image_processor_type'],
    [{ image_processor_type: 'SiglipImageProcessor', size: 224 }, 'size'],
    [{ image_processor_type: 'SiglipImageProcessor', resample: 2 }, 'resample'],
  ] as const) {
    assert.throws(() => parsePreprocessSpec(json), (e: unknown) => e instanceof ModelError && e.context['field'] === field && !e.message.includes('\n'), JSON.stringify(json));
  }
});

test('ChineseCLIPImageProcessor and SiglipImageProcessor pixels match Hugging Face bit for bit', async () => {
  // Digests of float32 CHW arrays computed independently with Pillow 9.4 + numpy, following each
  // class's steps: PIL bicubic resize to (height, width), float64 rescale cast to float32, then
  // (x - mean) / std in float32; no crop for either class.
  const chinese = await preprocessImage(await pattern(300, 200), parsePreprocessSpec(chineseClipProcessor), defaultDecodeOptions);
  assert.equal(chinese.length, 3 * 224 * 224);
  assert.equal(sha256(chinese), '31296d17eeadfa1aad46c2548b30276061a25f8de57d5494ded4e41561ed2c0a');
  const siglip = await preprocessImage(await pattern(97, 61), parsePreprocessSpec(siglipProcessor), defaultDecodeOptions);
  assert.equal(sha256(siglip), '3f7e418dd7c5edc20ca565263aea2f62ad1193e1c1bfbbd30adb22e83a691612');
  const rectangle = await preprocessImage(await pattern(200, 300), parsePreprocessSpec({ ...siglipProcessor, size: { height: 32, width: 48 } }), defaultDecodeOptions);
  assert.equal(rectangle.length, 3 * 32 * 48);
  assert.equal(sha256(rectangle), '4c3e9b7cdaa9315f8bb791b92a52facdd22ef8138c5f19d696df7b7f0434a2ed');
});
