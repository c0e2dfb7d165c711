import { createHash } from 'node:crypto';
import { ConfigError, InputError } from '@vecmill/shared/errors';
import type { Modality } from '@vecmill/shared/formats/embedding-table';
import { dotRows, scoringRows, type Metric } from './exact-search.js';
import type { PublishedOutput } from './output-reader.js';

/** The cut-offs EasyNLP and the CLIP papers report for Flickr30k and COCO. */
export const DEFAULT_RECALL_KS: readonly number[] = [1, 5, 10];

/** Recall (or accuracy) at each cut-off, as a fraction in [0, 1], keyed by k. */
export type AtK = Readonly<Record<number, number>>;

/** Image↔text retrieval recall over the pairs of an output. */
export interface PairRecall {
  /** Distinct images (rows whose image embeddings are bit-identical count once). */
  readonly images: number;
  readonly texts: number;
  readonly imageToText: AtK;
  readonly textToImage: AtK;
}

/** Zero-shot classification accuracy: each image's nearest label prompt against its caption. */
export interface ZeroShotAccuracy {
  /** Images whose caption is one of the labels: the ones scored. */
  readonly evaluated: number;
  /** Images whose caption is not a label: left out. */
  readonly skipped: number;
  readonly accuracy: AtK;
}

/** Options of the pure evaluation functions. */
export interface RecallOptions {
  /** Cut-offs (default DEFAULT_RECALL_KS). */
  readonly ks?: readonly number[];
  /** Default cosine, the measure CLIP is trained for. */
  readonly metric?: Metric;
}

/**
 * Image→text and text→image recall@k for aligned pairs: row i's image matches row i's text.
 * Follows the Flickr30k/COCO protocol: rows with bit-identical image embeddings are one image
 * whose positives are all of their captions (an image with five captions is one query that hits
 * when any of the five ranks within k), and a caption's candidates are the distinct images. A
 * query hits at k when fewer than k non-positive candidates score strictly above its best
 * positive, so exact duplicates never count against it. Time is O(n² d); memory is the two
 * matrices plus O(n): no score matrix is ever built.
 */
export function pairRecall(images: Float32Array | Uint16Array, texts: Float32Array | Uint16Array, dims: number, options: RecallOptions = {}): PairRecall {
  const ks = options.ks ?? DEFAULT_RECALL_KS;
  const metric = options.metric ?? 'cosine';
  const n = images.length / dims;
  if (texts.length !== images.length) throw new InputError(`pair recall needs as many texts as images, got ${texts.length / dims} and ${n}`);
  const { group, representatives } = groupIdenticalRows(images, dims);
  const img = scoringRows(images, dims, metric);
  const txt = scoringRows(texts, dims, metric);
  const members: number[][] = representatives.map(() => []);
  for (let i = 0; i < n; i++) members[group[i]!]!.push(i);

  const i2tRanks = representatives.map((rep, g) => {
    const positives = members[g]!;
    let best = -Infinity;
    for (const i of positives) best = Math.max(best, dotRows(img, rep, txt, i, dims));
    let above = 0;
    for (let j = 0; j < n; j++) if (group[j] !== g && dotRows(img, rep, txt, j, dims) > best) above++;
    return above;
  });
  const t2iRanks = Array.from({ length: n }, (_, i) => {
    const own = group[i]!;
    const positive = dotRows(txt, i, img, representatives[own]!, dims);
    let above = 0;
    representatives.forEach((rep, g) => {
      if (g !== own && dotRows(txt, i, img, rep, dims) > positive) above++;
    });
    return above;
  });
  return { images: representatives.length, texts: n, imageToText: atK(i2tRanks, ks), textToImage: atK(t2iRanks, ks) };
}

/**
 * Zero-shot accuracy: each image is classified by its most similar label embedding. `truth[i]`
 * is the label index of image i, or -1 when it has none (it is then skipped).
 */
export function zeroShotAccuracy(images: Float32Array | Uint16Array, labels: Float32Array | Uint16Array, truth: Int32Array, dims: number, options: RecallOptions = {}): ZeroShotAccuracy {
  const ks = (options.ks ?? DEFAULT_RECALL_KS).filter((k) => k <= labels.length / dims);
  const metric = options.metric ?? 'cosine';
  const img = scoringRows(images, dims, metric);
  const lab = scoringRows(labels, dims, metric);
  const nLabels = labels.length / dims;
  const ranks: number[] = [];
  let skipped = 0;
  for (let i = 0; i < truth.length; i++) {
    const t = truth[i]!;
    if (t < 0) {
      skipped++;
      continue;
    }
    const own = dotRows(img, i, lab, t, dims);
    let above = 0;
    for (let l = 0; l < nLabels; l++) if (l !== t && dotRows(img, i, lab, l, dims) > own) above++;
    ranks.push(above);
  }
  return { evaluated: ranks.length, skipped, accuracy: atK(ranks, ks) };
}

/** Fraction of ranks below each k. */
function atK(ranks: readonly number[], ks: readonly number[]): AtK {
  const out: Record<number, number> = {};
  for (const k of ks) out[k] = ranks.length === 0 ? 0 : ranks.filter((r) => r < k).length / ranks.length;
  return out;
}

/** Groups rows whose bytes are identical (the same image decoded and embedded twice), in first-seen order. */
function groupIdenticalRows(values: Float32Array | Uint16Array, dims: number): { group: Int32Array; representatives: number[] } {
  const n = values.length / dims;
  const group = new Int32Array(n);
  const seen = new Map<string, number>();
  const representatives: number[] = [];
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const rowBytes = dims * values.BYTES_PER_ELEMENT;
  for (let i = 0; i < n; i++) {
    const key = createHash('sha1').update(bytes.subarray(i * rowBytes, (i + 1) * rowBytes)).digest('base64');
    let g = seen.get(key);
    if (g === undefined) {
      g = representatives.length;
      seen.set(key, g);
      representatives.push(i);
    }
    group[i] = g;
  }
  return { group, representatives };
}

/** Embeds label prompts with the run's model (see QueryEmbedder). */
export interface PromptEmbedder {
  embedTexts(texts: readonly string[]): Promise<Float32Array>;
}

/** What `vecmill eval` measures on a published output. */
export interface OutputEvalOptions extends RecallOptions {
  /** Class names for zero-shot classification; the output's captions are the true labels. */
  readonly labels?: readonly string[];
  /** Prompt with `{}` where the label goes (default "a photo of a {}."). */
  readonly template?: string;
  /** Needed with `labels`. */
  readonly embedder?: PromptEmbedder;
}

/** The result of `vecmill eval`: recall for pairs, or zero-shot accuracy when labels were given. */
export type OutputEval = { readonly kind: 'pairs'; readonly rows: number; readonly recall: PairRecall } | { readonly kind: 'zero-shot'; readonly rows: number; readonly zeroShot: ZeroShotAccuracy };

/** CLIP's usual zero-shot prompt. */
export const DEFAULT_PROMPT_TEMPLATE = 'a photo of a {}.';

/**
 * Evaluates a published pairs output. Both modalities of the rows that have both are held in
 * memory as float32 (2 × rows × dims × 4 bytes: 4 GB for a million 512-d rows); scores are never
 * materialized.
 */
export async function evaluateOutput(output: PublishedOutput, options: OutputEvalOptions = {}): Promise<OutputEval> {
  if (output.manifest.settings.kind !== 'pairs') {
    throw new ConfigError(`eval needs a pairs output (image and caption per row), but ${output.store.description} is ${output.manifest.settings.kind}`, {
      kind: output.manifest.settings.kind,
    });
  }
  const images = await collect(output, 'image');
  if (options.labels === undefined) {
    const texts = await collect(output, 'text');
    return { kind: 'pairs', rows: images.rows, recall: pairRecall(images.values, texts.values, output.dims, options) };
  }
  if (options.embedder === undefined) throw new ConfigError('zero-shot evaluation needs the run\'s model to embed the label prompts');
  const template = options.template ?? DEFAULT_PROMPT_TEMPLATE;
  if (!template.includes('{}')) throw new ConfigError(`--template ${JSON.stringify(template)} has no {} where the label goes, e.g. "a photo of a {}."`);
  const labels = options.labels;
  if (labels.length === 0) throw new ConfigError('the labels file has no labels: write one class name per line');
  const index = new Map(labels.map((l, i) => [l.trim(), i]));
  const truth = Int32Array.from(images.captions, (c) => (c === null ? -1 : (index.get(c.trim()) ?? -1)));
  const prompts = await options.embedder.embedTexts(labels.map((l) => template.replaceAll('{}', l)));
  return { kind: 'zero-shot', rows: images.rows, zeroShot: zeroShotAccuracy(images.values, prompts, truth, output.dims, options) };
}

/** Every row with both embeddings, concatenated: one modality's matrix plus the captions. */
async function collect(output: PublishedOutput, modality: Modality): Promise<{ values: Float32Array | Uint16Array; captions: (string | null)[]; rows: number }> {
  const chunks: (Float32Array | Uint16Array)[] = [];
  const captions: (string | null)[] = [];
  for await (const block of output.blocks(modality, { requireAll: true })) {
    chunks.push(block.embeddings.slice());
    for (const c of block.captions) captions.push(c);
  }
  if (captions.length === 0) throw new InputError(`${output.store.description} has no row with both embeddings to evaluate`);
  const total = chunks.reduce((a, c) => a + c.length, 0);
  const values = output.dtype === 'float16' ? new Uint16Array(total) : new Float32Array(total);
  let at = 0;
  for (const c of chunks) {
    values.set(c, at);
    at += c.length;
  }
  return { values, captions, rows: captions.length };
}
