import { mkdir, readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { ConfigError, ModelError, NotFoundError, StorageError, VecmillError } from '@vecmill/shared/errors';
import { MODEL_FAMILIES, type ModelFamily } from '@vecmill/shared/model/model-family';
import { chineseClipConfigFiles } from './chinese-clip-config-files.js';
import { buildChineseClipTextGraph } from './chinese-clip-text-graph.js';
import { clipConfigFiles } from './clip-config-files.js';
import { buildClipTextGraph } from './clip-text-graph.js';
import { describeClipTokenizer } from './clip-tokenizer-info.js';
import { buildClipVisionGraph } from './clip-vision-graph.js';
import { describeFamilyTokenizer } from './family-tokenizer-info.js';
import { toFp16Graph } from './fp16-graph.js';
import { FAMILY_PRESETS, type ClipPresetShape, type ModelPreset } from './model-presets.js';
import type { GraphSpec } from './onnx-graph-builder.js';
import { writeOnnxModel } from './onnx-model-writer.js';
import { toQ8Graph } from './quantize-graph.js';
import { siglipConfigFiles } from './siglip-config-files.js';
import { buildSiglipTextGraph } from './siglip-text-graph.js';
import { buildSiglipVisionGraph } from './siglip-vision-graph.js';
import { buildSmallTokenizer } from './small-tokenizer.js';
import { buildSmallUnigramTokenizer } from './small-unigram-tokenizer.js';
import { buildSmallWordPieceTokenizer } from './small-wordpiece-tokenizer.js';
import { writeFileAtomic } from './write-file-atomic.js';

export type { ModelPreset } from './model-presets.js';

/** ONNX files per tower: float32, float16 inside with float32 IO, dynamic int8 quantized. */
export type ModelVariant = 'fp32' | 'fp16' | 'q8';

/** What to generate and where. */
export interface MakeModelOptions {
  /** Which family's structure, config files and tokenizer to write. Default `clip`. */
  family?: ModelFamily;
  /** `tiny` for every family; real-size: `vit-b-32` (clip), `vit-b-16` (chinese_clip), `base-patch16-224` (siglip). */
  preset: ModelPreset;
  /** Created if missing; files already there are replaced. */
  outDir: string;
  /** Seed of every weight; the same seed gives byte-identical files. Default 42. */
  seed?: number;
  /** A tokenizer.json of the family to copy; default: a small generated tokenizer of the family (CLIP BPE, BERT WordPiece, SigLIP Unigram). */
  tokenizerPath?: string;
  /** Which ONNX variants to write. Default: all three. */
  variants?: readonly ModelVariant[];
}

/** What was written. */
export interface MakeModelResult {
  outDir: string;
  /** Paths relative to outDir, with `/` separators, in the order written. */
  files: string[];
  /** Learned parameters of the text tower (embeddings, layers, projection). */
  textParams: number;
  /** Learned parameters of the vision tower. */
  visionParams: number;
}

const DEFAULT_SEED = 42;
const ALL_VARIANTS: readonly ModelVariant[] = ['fp32', 'fp16', 'q8'];
const OPSET_VERSION = 17;

const VARIANTS: Readonly<Record<ModelVariant, { readonly suffix: string; readonly transform: (graph: GraphSpec) => GraphSpec }>> = {
  fp32: { suffix: '', transform: (graph) => graph },
  fp16: { suffix: '_fp16', transform: toFp16Graph },
  q8: { suffix: '_quantized', transform: toQ8Graph },
};

/** What each family writes: its generated tokenizer, config files and graphs. */
interface FamilyWriter {
  readonly smallTokenizer: () => Record<string, unknown>;
  /** Config files and the graphs' vocabulary size, from the tokenizer (throws ModelError when it does not suit the family). */
  readonly describe: (tokenizer: unknown, source: string, preset: ModelPreset, seed: number, shape: ClipPresetShape) => { configFiles: Record<string, unknown>; vocabSize: number };
  readonly textGraph: (options: { shape: ClipPresetShape; vocabSize: number; seed: number }) => GraphSpec;
  readonly visionGraph: (options: { shape: ClipPresetShape; seed: number }) => GraphSpec;
  readonly label: string;
}

const FAMILY_WRITERS: Readonly<Record<ModelFamily, FamilyWriter>> = {
  clip: {
    smallTokenizer: buildSmallTokenizer,
    describe: (json, source, preset, seed, shape) => {
      const tokenizer = describeClipTokenizer(json, source);
      return { configFiles: clipConfigFiles({ preset, seed, shape, tokenizer }), vocabSize: tokenizer.vocabSize };
    },
    textGraph: buildClipTextGraph,
    visionGraph: buildClipVisionGraph,
    label: 'CLIP',
  },
  chinese_clip: {
    smallTokenizer: buildSmallWordPieceTokenizer,
    describe: (json, source, preset, seed, shape) => {
      const tokenizer = describeFamilyTokenizer(json, 'chinese_clip', source);
      return { configFiles: chineseClipConfigFiles({ preset, seed, shape, tokenizer }), vocabSize: tokenizer.vocabSize };
    },
    textGraph: buildChineseClipTextGraph,
    visionGraph: buildClipVisionGraph,
    label: 'Chinese-CLIP',
  },
  siglip: {
    smallTokenizer: buildSmallUnigramTokenizer,
    describe: (json, source, preset, seed, shape) => {
      const tokenizer = describeFamilyTokenizer(json, 'siglip', source);
      return { configFiles: siglipConfigFiles({ preset, seed, shape, tokenizer }), vocabSize: tokenizer.vocabSize };
    },
    textGraph: buildSiglipTextGraph,
    visionGraph: buildSiglipVisionGraph,
    label: 'SigLIP',
  },
};

/**
 * Generates a model folder of a family (CLIP, Chinese-CLIP or SigLIP) in the layout of Hugging
 * Face's ONNX exports (config.json, preprocessor_config.json, tokenizer.json,
 * tokenizer_config.json, onnx/text_model*.onnx, onnx/vision_model*.onnx) with seeded random
 * weights and each family's real graph inputs, outputs and pooling. No trained weights can be
 * downloaded in vecmill's environments, yet every code path (tokenizing, preprocessing, batching,
 * quantized and half-precision sessions, real-size throughput) needs a real model folder: this is
 * it. The embeddings carry no meaning, but they are deterministic, finite and input-dependent.
 */
export async function makeModel(options: MakeModelOptions): Promise<MakeModelResult> {
  const family = checkFamily(options.family ?? 'clip');
  const shape = checkPreset(family, options.preset);
  const seed = checkSeed(options.seed ?? DEFAULT_SEED);
  const variants = checkVariants(options.variants ?? ALL_VARIANTS);
  const writer = FAMILY_WRITERS[family];
  const tokenizerBytes =
    options.tokenizerPath === undefined ? Buffer.from(`${JSON.stringify(writer.smallTokenizer(), null, 2)}\n`) : await readTokenizer(options.tokenizerPath, family);
  const tokenizerSource = options.tokenizerPath ?? 'generated tokenizer';
  const { configFiles, vocabSize } = writer.describe(parseTokenizer(tokenizerBytes, tokenizerSource), tokenizerSource, options.preset, seed, shape);

  try {
    return await writeModelFolder(options.outDir, { preset: options.preset, seed, shape, variants, writer, configFiles, vocabSize, tokenizerBytes });
  } catch (err) {
    if (err instanceof VecmillError) throw err;
    throw new StorageError(`cannot write model folder ${options.outDir} (${(err as Error).message}): check that it is a writable folder with free space`, { dir: options.outDir }, { cause: err });
  }
}

interface ModelFolderContents {
  readonly preset: ModelPreset;
  readonly seed: number;
  readonly shape: ClipPresetShape;
  readonly variants: readonly ModelVariant[];
  readonly writer: FamilyWriter;
  readonly configFiles: Record<string, unknown>;
  readonly vocabSize: number;
  readonly tokenizerBytes: Uint8Array;
}

async function writeModelFolder(outDir: string, contents: ModelFolderContents): Promise<MakeModelResult> {
  const { preset, seed, shape, variants, writer, configFiles, vocabSize, tokenizerBytes } = contents;
  const files: string[] = [];
  await mkdir(join(outDir, 'onnx'), { recursive: true });
  for (const [name, json] of Object.entries(configFiles)) {
    await writeFileAtomic(join(outDir, name), `${JSON.stringify(json, null, 2)}\n`);
    files.push(name);
  }
  await writeFileAtomic(join(outDir, 'tokenizer.json'), tokenizerBytes);
  files.push('tokenizer.json');

  const textGraph = writer.textGraph({ shape, vocabSize, seed });
  const visionGraph = writer.visionGraph({ shape, seed });
  const towers = [
    { name: 'text_model', tower: 'text', graph: textGraph },
    { name: 'vision_model', tower: 'vision', graph: visionGraph },
  ];
  for (const variant of variants) {
    const { suffix, transform } = VARIANTS[variant];
    for (const { name, tower, graph } of towers) {
      const file = posix.join('onnx', `${name}${suffix}.onnx`);
      await writeOnnxModel(join(outDir, file), transform(graph), {
        opsetVersion: OPSET_VERSION,
        docString: `${writer.label} ${tower} encoder with seeded random weights, not a trained model (vecmill make-model: preset ${preset}, seed ${seed}, variant ${variant})`,
      });
      files.push(file);
    }
  }
  return { outDir, files, textParams: textGraph.parameterCount, visionParams: visionGraph.parameterCount };
}

function checkFamily(family: string): ModelFamily {
  if (!(MODEL_FAMILIES as readonly string[]).includes(family)) {
    throw new ConfigError(`unknown model family "${family}": use one of ${MODEL_FAMILIES.join(', ')}`, { family });
  }
  return family as ModelFamily;
}

function checkPreset(family: ModelFamily, preset: string): ClipPresetShape {
  const presets = FAMILY_PRESETS[family];
  const shape = Object.hasOwn(presets, preset) ? presets[preset as ModelPreset] : undefined;
  if (shape === undefined) {
    throw new ConfigError(`unknown model preset "${preset}" for family ${family}: use one of ${Object.keys(presets).join(', ')}`, { preset, family });
  }
  return shape;
}

function checkSeed(seed: number): number {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new ConfigError(`model seed ${seed} is not a whole number from 0 to 4294967295: pass such a seed`, { seed });
  }
  return seed;
}

function checkVariants(variants: readonly string[]): ModelVariant[] {
  for (const variant of variants) {
    if (!Object.hasOwn(VARIANTS, variant)) {
      throw new ConfigError(`unknown model variant "${variant}": use any of ${ALL_VARIANTS.join(', ')}`, { variant });
    }
  }
  const chosen = ALL_VARIANTS.filter((v) => variants.includes(v));
  if (chosen.length === 0) throw new ConfigError(`no model variants chosen: pass at least one of ${ALL_VARIANTS.join(', ')}`);
  return chosen;
}

async function readTokenizer(path: string, family: ModelFamily): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new NotFoundError(`tokenizer file ${path} does not exist: pass the path of a ${family} tokenizer.json`, { file: path }, { cause: err });
    }
    throw new ModelError(`cannot read tokenizer file ${path} (${(err as Error).message}): check its permissions`, { file: path }, { cause: err });
  }
}

function parseTokenizer(bytes: Buffer, source: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new ModelError(`tokenizer ${source} is not valid JSON: pass a Hugging Face tokenizer.json`, { file: source }, { cause: err });
  }
}
