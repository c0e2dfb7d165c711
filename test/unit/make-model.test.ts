import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Tokenizer } from '@huggingface/tokenizers';
import * as ort from 'onnxruntime-node';
import { ConfigError, ModelError, NotFoundError, StorageError } from '@vecmill/shared/errors';
import { makeModel, type MakeModelResult } from '@vecmill/tools/modelgen/make-model';
import { fixturesSkipReason, sharedFixturesDir } from '../support/fixtures.js';
import { makeTempDir } from '../support/tmp.js';

const PROJECTION = 32;
const IMAGE = 32;
const CONTEXT = 77;

interface ClipConfig {
  model_type: string;
  projection_dim: number;
  text_config: Record<string, number>;
  vision_config: Record<string, number>;
  vecmill: { preset: string; seed: number };
}

async function readJson<T>(path: string): Promise<T> {
  return JSON.parse(await readFile(path, 'utf8')) as T;
}

async function openSession(dir: string, file: string): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(join(dir, 'onnx', file), { intraOpNumThreads: 1, interOpNumThreads: 1 });
}

/** Runs the text graph on equal-length rows of ids and returns one embedding per row. */
async function embedText(session: ort.InferenceSession, rows: readonly (readonly number[])[]): Promise<Float32Array[]> {
  const length = rows[0]?.length ?? 0;
  assert.ok(rows.every((r) => r.length === length), 'rows must be padded to one length');
  const ids = new ort.Tensor('int64', BigInt64Array.from(rows.flat(), (v) => BigInt(v)), [rows.length, length]);
  const { text_embeds: out } = await session.run({ input_ids: ids });
  assert.ok(out !== undefined);
  assert.deepEqual(out.dims, [rows.length, PROJECTION]);
  return splitRows(out.data as Float32Array, rows.length);
}

/** Runs the vision graph on normalised [3, S, S] images and returns one embedding per image. */
async function embedImages(session: ort.InferenceSession, images: readonly Float32Array[]): Promise<Float32Array[]> {
  const pixels = new Float32Array(images.length * 3 * IMAGE * IMAGE);
  images.forEach((image, i) => pixels.set(image, i * image.length));
  const { image_embeds: out } = await session.run({ pixel_values: new ort.Tensor('float32', pixels, [images.length, 3, IMAGE, IMAGE]) });
  assert.ok(out !== undefined);
  assert.deepEqual(out.dims, [images.length, PROJECTION]);
  return splitRows(out.data as Float32Array, images.length);
}

function splitRows(data: Float32Array, count: number): Float32Array[] {
  const width = data.length / count;
  return Array.from({ length: count }, (_, i) => data.slice(i * width, (i + 1) * width));
}

/** A normalised image: seeded noise, or a smooth diagonal gradient when `seed` is undefined. */
function makeImage(seed?: number): Float32Array {
  const image = new Float32Array(3 * IMAGE * IMAGE);
  let state = seed ?? 0;
  for (let i = 0; i < image.length; i++) {
    if (seed === undefined) {
      const x = i % IMAGE;
      const y = Math.floor(i / IMAGE) % IMAGE;
      image[i] = (x + y) / IMAGE - 1;
    } else {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      image[i] = (state / 2 ** 32) * 4 - 2;
    }
  }
  return image;
}

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return dot / Math.sqrt(na * nb);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
  return worst;
}

function padTo(ids: readonly number[], length: number, pad: number): number[] {
  return [...ids, ...Array<number>(length - ids.length).fill(pad)];
}

const EXPECTED_FILES = [
  'config.json',
  'preprocessor_config.json',
  'tokenizer_config.json',
  'tokenizer.json',
  'onnx/text_model.onnx',
  'onnx/vision_model.onnx',
  'onnx/text_model_fp16.onnx',
  'onnx/vision_model_fp16.onnx',
  'onnx/text_model_quantized.onnx',
  'onnx/vision_model_quantized.onnx',
];

describe('makeModel (tiny preset)', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let dir: string;
  let result: MakeModelResult;
  let config: ClipConfig;
  let tokenizer: Tokenizer;
  let text: ort.InferenceSession;
  let vision: ort.InferenceSession;
  const encode = (caption: string): number[] => tokenizer.encode(caption).ids;

  before(async () => {
    tmp = await makeTempDir('make-model');
    dir = join(tmp.dir, 'model');
    result = await makeModel({ preset: 'tiny', outDir: dir, seed: 7 });
    config = await readJson<ClipConfig>(join(dir, 'config.json'));
    tokenizer = new Tokenizer(await readJson(join(dir, 'tokenizer.json')), await readJson(join(dir, 'tokenizer_config.json')));
    text = await openSession(dir, 'text_model.onnx');
    vision = await openSession(dir, 'vision_model.onnx');
  });

  after(async () => {
    await text?.release();
    await vision?.release();
    await tmp?.cleanup();
  });

  test('writes every file of a Hugging Face CLIP ONNX folder', async () => {
    assert.equal(result.outDir, dir);
    assert.deepEqual([...result.files].sort(), [...EXPECTED_FILES].sort());
    for (const file of EXPECTED_FILES) assert.ok((await stat(join(dir, file))).size > 0, file);

    assert.equal(config.model_type, 'clip');
    assert.equal(config.projection_dim, PROJECTION);
    assert.deepEqual(config.vecmill, { preset: 'tiny', seed: 7 });
    const { text_config: t, vision_config: v } = config;
    assert.equal(t.max_position_embeddings, CONTEXT);
    assert.deepEqual([v.image_size, v.patch_size, v.num_channels], [IMAGE, 8, 3]);
    assert.deepEqual(await readJson(join(dir, 'preprocessor_config.json')), {
      do_resize: true,
      size: { shortest_edge: IMAGE },
      resample: 3,
      do_center_crop: true,
      crop_size: { height: IMAGE, width: IMAGE },
      do_rescale: true,
      rescale_factor: 0.00392156862745098,
      do_normalize: true,
      image_mean: [0.48145466, 0.4578275, 0.40821073],
      image_std: [0.26862954, 0.26130258, 0.27577711],
      do_convert_rgb: true,
      image_processor_type: 'CLIPImageProcessor',
    });
    assert.equal((await readJson<{ model_max_length: number }>(join(dir, 'tokenizer_config.json'))).model_max_length, CONTEXT);

    // Closed-form parameter counts of the tiny shapes: a wrong layer or table size changes them.
    const layer = (w: number, mlp: number) => 4 * (w * w + w) + (w * mlp + mlp) + (mlp * w + w) + 4 * w;
    const vocab = t.vocab_size ?? 0;
    assert.equal(result.textParams, vocab * 32 + CONTEXT * 32 + 2 * layer(32, 128) + 2 * 32 + 32 * PROJECTION);
    assert.equal(result.visionParams, 64 * 3 * 8 * 8 + 64 + 17 * 64 + 2 * 64 + 2 * layer(64, 256) + 2 * 64 + 64 * PROJECTION);
  });

  test('config ids match the generated tokenizer, which loads and encodes like CLIP', () => {
    const vocabSize = config.text_config.vocab_size ?? 0;
    assert.equal(tokenizer.get_vocab(true).size, vocabSize);
    assert.equal(tokenizer.token_to_id('<|startoftext|>'), config.text_config.bos_token_id);
    assert.equal(tokenizer.token_to_id('<|endoftext|>'), config.text_config.eos_token_id);
    assert.equal(config.text_config.pad_token_id, config.text_config.eos_token_id);
    assert.equal(config.text_config.eos_token_id, vocabSize - 1);

    const ids = encode('A Photo of a  dog, 2 ZEBRAS! 一只猫');
    assert.equal(ids[0], config.text_config.bos_token_id);
    assert.equal(ids.at(-1), config.text_config.eos_token_id);
    assert.ok(ids.length > 10);
    assert.ok(ids.slice(1, -1).every((id) => Number.isInteger(id) && id >= 0 && id < vocabSize - 2));
    assert.deepEqual(tokenizer.tokenize('a photo of a dog'), ['a</w>', 'photo</w>', 'of</w>', 'a</w>', 'dog</w>']);
    assert.deepEqual(encode('A PHOTO'), encode('a photo'));
  });

  test('fp32 graphs have the Hugging Face input and output names, types and dynamic axes', () => {
    assert.deepEqual(text.inputNames, ['input_ids']);
    assert.deepEqual(text.outputNames, ['text_embeds']);
    assert.deepEqual(text.inputMetadata[0], { name: 'input_ids', isTensor: true, type: 'int64', shape: ['batch_size', 'sequence_length'] });
    assert.deepEqual(text.outputMetadata[0], { name: 'text_embeds', isTensor: true, type: 'float32', shape: ['batch_size', PROJECTION] });
    assert.deepEqual(vision.inputNames, ['pixel_values']);
    assert.deepEqual(vision.outputNames, ['image_embeds']);
    assert.deepEqual(vision.inputMetadata[0], { name: 'pixel_values', isTensor: true, type: 'float32', shape: ['batch_size', 3, IMAGE, IMAGE] });
    assert.deepEqual(vision.outputMetadata[0], { name: 'image_embeds', isTensor: true, type: 'float32', shape: ['batch_size', PROJECTION] });
  });

  test('embeddings are finite and not degenerate', async () => {
    const pad = config.text_config.pad_token_id ?? 0;
    const captions = ['a photo of a dog', 'a photo of a cat', 'an illustration of three red cars parked on a street'].map((c) => padTo(encode(c), CONTEXT, pad));
    const texts = await embedText(text, captions);
    const images = await embedImages(vision, [makeImage(1), makeImage(2), makeImage()]);
    for (const e of [...texts, ...images]) {
      assert.ok(e.every(Number.isFinite));
      assert.ok(Math.hypot(...e) > 1e-3);
    }
    const [dog, cat, cars] = texts as [Float32Array, Float32Array, Float32Array];
    const [noise1, noise2, gradient] = images as [Float32Array, Float32Array, Float32Array];
    assert.ok(cosine(dog, cat) < 0.99, `dog vs cat cosine ${cosine(dog, cat)}`);
    assert.ok(cosine(dog, cars) < 0.99);
    assert.ok(cosine(noise1, noise2) < 0.99, `noise vs noise cosine ${cosine(noise1, noise2)}`);
    assert.ok(cosine(noise1, gradient) < 0.99);
  });

  test('text embeddings do not depend on padding after the end-of-text token', async () => {
    const pad = config.text_config.pad_token_id ?? 0;
    const ids = encode('a small dog running on the beach');
    const [unpadded] = await embedText(text, [ids]);
    const [padded] = await embedText(text, [padTo(ids, CONTEXT, pad)]);
    assert.ok(unpadded !== undefined && padded !== undefined);
    assert.ok(maxAbsDiff(unpadded, padded) <= 1e-5, `difference ${maxAbsDiff(unpadded, padded)}`);
  });

  test('each batch row equals running that input alone', async () => {
    const pad = config.text_config.pad_token_id ?? 0;
    const captions = ['a dog', 'two people riding bicycles near a lake', 'vintage poster'].map((c) => padTo(encode(c), CONTEXT, pad));
    const batchText = await embedText(text, captions);
    for (const [i, caption] of captions.entries()) {
      const [alone] = await embedText(text, [caption]);
      assert.ok(alone !== undefined && batchText[i] !== undefined);
      assert.ok(maxAbsDiff(alone, batchText[i]) <= 1e-5, `text row ${i}`);
    }
    const pictures = [makeImage(3), makeImage(), makeImage(4)];
    const batchImages = await embedImages(vision, pictures);
    for (const [i, picture] of pictures.entries()) {
      const [alone] = await embedImages(vision, [picture]);
      assert.ok(alone !== undefined && batchImages[i] !== undefined);
      assert.ok(maxAbsDiff(alone, batchImages[i]) <= 1e-5, `image row ${i}`);
    }
  });

  test('fp16 and q8 variants are smaller and agree with fp32 row by row', async () => {
    const pad = config.text_config.pad_token_id ?? 0;
    const captions = ['a photo of a dog', 'a red car on a street at night', 'gaba'].map((c) => padTo(encode(c), CONTEXT, pad));
    const pictures = [makeImage(5), makeImage(), makeImage(6)];
    const referenceText = await embedText(text, captions);
    const referenceImages = await embedImages(vision, pictures);
    for (const [suffix, minCosine, maxSizeRatio] of [['_fp16', 0.99, 0.55], ['_quantized', 0.98, 0.4]] as const) {
      for (const [tower, session, reference, embed] of [
        ['text_model', text, referenceText, (s: ort.InferenceSession) => embedText(s, captions)],
        ['vision_model', vision, referenceImages, (s: ort.InferenceSession) => embedImages(s, pictures)],
      ] as const) {
        const variant = await openSession(dir, `${tower}${suffix}.onnx`);
        try {
          assert.deepEqual(variant.inputMetadata, session.inputMetadata);
          assert.deepEqual(variant.outputMetadata, session.outputMetadata);
          const rows = await embed(variant);
          rows.forEach((row, i) => {
            const c = cosine(row, reference[i] ?? new Float32Array());
            assert.ok(c > minCosine, `${tower}${suffix} row ${i}: cosine ${c}`);
          });
        } finally {
          await variant.release();
        }
        const ratio = (await stat(join(dir, 'onnx', `${tower}${suffix}.onnx`))).size / (await stat(join(dir, 'onnx', `${tower}.onnx`))).size;
        assert.ok(ratio < maxSizeRatio, `${tower}${suffix} is ${ratio} of the fp32 size`);
      }
    }
  });

  test('the same seed gives byte-identical files and another seed other weights', async () => {
    const again = join(tmp.dir, 'again');
    const other = join(tmp.dir, 'other');
    await makeModel({ preset: 'tiny', outDir: again, seed: 7 });
    await makeModel({ preset: 'tiny', outDir: other, seed: 8, variants: ['fp32'] });
    for (const file of EXPECTED_FILES) {
      assert.ok((await readFile(join(dir, file))).equals(await readFile(join(again, file))), file);
    }
    assert.ok(!existsSync(join(other, 'onnx', 'text_model_fp16.onnx')));
    for (const file of ['onnx/text_model.onnx', 'onnx/vision_model.onnx']) {
      const [a, b] = [await readFile(join(dir, file)), await readFile(join(other, file))];
      assert.equal(a.length, b.length, `${file}: same structure`);
      assert.ok(!a.equals(b), `${file}: different weights`);
    }
  });

  test('bad options fail with one clear error before anything is written', async () => {
    const outDir = join(tmp.dir, 'never');
    await assert.rejects(makeModel({ preset: 'vit-h-14' as 'tiny', outDir }), (e) => e instanceof ConfigError && /vit-h-14/.test(e.message));
    await assert.rejects(makeModel({ preset: 'tiny', outDir, seed: -1 }), ConfigError);
    await assert.rejects(makeModel({ preset: 'tiny', outDir, seed: 1.5 }), ConfigError);
    await assert.rejects(makeModel({ preset: 'tiny', outDir, variants: [] }), ConfigError);
    await assert.rejects(makeModel({ preset: 'tiny', outDir, variants: ['int4' as 'q8'] }), ConfigError);
    const missing = join(tmp.dir, 'missing', 'tokenizer.json');
    await assert.rejects(makeModel({ preset: 'tiny', outDir, tokenizerPath: missing }), (e) => e instanceof NotFoundError && e.message.includes(missing));
    const notClip = join(tmp.dir, 'bert-tokenizer.json');
    await writeFile(notClip, JSON.stringify({ model: { type: 'WordPiece', vocab: { '[CLS]': 0, '[SEP]': 1, hello: 2 } } }));
    await assert.rejects(makeModel({ preset: 'tiny', outDir, tokenizerPath: notClip }), ModelError);
    const notJson = join(tmp.dir, 'broken.json');
    await writeFile(notJson, '{"model": ');
    await assert.rejects(makeModel({ preset: 'tiny', outDir, tokenizerPath: notJson }), ModelError);
    assert.ok(!existsSync(outDir));
    const underAFile = join(notJson, 'model');
    await assert.rejects(makeModel({ preset: 'tiny', outDir: underAFile }), (e) => e instanceof StorageError && e.message.includes(underAFile));
  });
});

describe('makeModel with the real CLIP tokenizer', { skip: fixturesSkipReason() }, () => {
  test('copies the tokenizer and sizes the text model to its 49408 ids', async () => {
    const tokenizerPath = join(sharedFixturesDir() ?? '', 'clip-tokenizer', 'tokenizer.json');
    const tmp = await makeTempDir('make-model-clip');
    try {
      const result = await makeModel({ preset: 'tiny', outDir: tmp.dir, tokenizerPath, variants: ['fp32'] });
      assert.deepEqual(result.files.filter((f) => f.endsWith('.onnx')), ['onnx/text_model.onnx', 'onnx/vision_model.onnx']);
      assert.ok((await readFile(join(tmp.dir, 'tokenizer.json'))).equals(await readFile(tokenizerPath)));
      const { text_config: t } = await readJson<ClipConfig>(join(tmp.dir, 'config.json'));
      assert.deepEqual([t.vocab_size, t.bos_token_id, t.eos_token_id, t.pad_token_id], [49408, 49406, 49407, 49407]);
      const tokenizer = new Tokenizer(await readJson(join(tmp.dir, 'tokenizer.json')), await readJson(join(tmp.dir, 'tokenizer_config.json')));
      const session = await openSession(tmp.dir, 'text_model.onnx');
      try {
        const ids = tokenizer.encode('a photo of a cat').ids;
        assert.deepEqual(ids, [49406, 320, 1125, 539, 320, 2368, 49407]);
        const [padded, unpadded] = [await embedText(session, [padTo(ids, CONTEXT, 49407)]), await embedText(session, [ids])];
        assert.ok(padded[0] !== undefined && unpadded[0] !== undefined);
        assert.ok(padded[0].every(Number.isFinite));
        assert.ok(maxAbsDiff(padded[0], unpadded[0]) <= 1e-5);
      } finally {
        await session.release();
      }
    } finally {
      await tmp.cleanup();
    }
  });
});
