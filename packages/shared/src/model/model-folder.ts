import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, ModelError, NotFoundError } from '../errors.js';
import { LocalStore } from '../storage/local-store.js';
import type { ObjectStore } from '../storage/object-store.js';
import { familyTraits, parseModelFamily, type ModelFamily } from './model-family.js';

/** Which ONNX files of a Hugging Face CLIP export to load. */
export type ModelDtype = 'fp32' | 'fp16' | 'q8';

/** File-name suffix per dtype, as transformers.js / optimum name their exports. */
const dtypeSuffix: Readonly<Record<ModelDtype, string>> = { fp32: '', fp16: '_fp16', q8: '_quantized' };

/** The parts of Hugging Face's CLIPConfig (ChineseCLIPConfig, SiglipConfig) that vecmill uses. */
export interface ClipConfig {
  /** From `model_type`: decides tokenizer semantics and whether padding may be trimmed. */
  readonly family: ModelFamily;
  readonly projectionDim: number;
  /**
   * Tokens per caption, special tokens included, when no `--context-length` is given: what
   * Hugging Face's `truncation=True` means, i.e. tokenizer_config.json's `model_max_length` when
   * present, else the text config's `max_position_embeddings`.
   */
  readonly contextLength: number;
  /** The text config's `max_position_embeddings`: no caption may be longer. */
  readonly maxPositions: number;
  readonly vocabSize: number | undefined;
  readonly raw: Readonly<Record<string, unknown>>;
}

/** sha256 of every file that decides the embeddings: a run's outputs are only comparable under the same fingerprint. */
export interface ModelFingerprint {
  /** sha256 over the per-file hashes below, in key order. */
  readonly id: string;
  readonly files: Readonly<Record<string, string>>;
}

/** A validated model folder on local disk, ready to be opened by an embedder. */
export interface ModelFolder {
  readonly dir: string;
  readonly dtype: ModelDtype;
  readonly config: ClipConfig;
  readonly preprocessorConfig: unknown;
  readonly tokenizerJson: unknown;
  readonly tokenizerConfig: Readonly<Record<string, unknown>>;
  /** Absolute paths, present only for the towers the run needs. */
  readonly textModelPath: string | undefined;
  readonly visionModelPath: string | undefined;
  readonly fingerprint: ModelFingerprint;
}

/** Which towers a run needs: a text-only input never opens the vision graph. */
export interface ModelNeeds {
  readonly text: boolean;
  readonly image: boolean;
}

/** The files a folder must hold for the given needs and dtype, relative to the folder. */
export function requiredModelFiles(dtype: ModelDtype, needs: ModelNeeds): string[] {
  const files = ['config.json'];
  if (needs.text) files.push('tokenizer.json', `onnx/text_model${dtypeSuffix[dtype]}.onnx`);
  if (needs.image) files.push('preprocessor_config.json', `onnx/vision_model${dtypeSuffix[dtype]}.onnx`);
  return files;
}

/**
 * Reads and validates a local model folder. Every missing file is reported at once, by name,
 * before any session is created, so a bad `--model` fails in the first second of a run.
 */
export async function loadModelFolder(dir: string, dtype: ModelDtype, needs: ModelNeeds): Promise<ModelFolder> {
  const files = requiredModelFiles(dtype, needs);
  const missing: string[] = [];
  for (const f of files) {
    const st = await stat(join(dir, f)).catch(() => undefined);
    if (st === undefined || !st.isFile()) missing.push(f);
  }
  if (missing.length > 0) {
    throw new ModelError(
      `model folder ${dir} is missing ${missing.join(', ')}; pass a Hugging Face ONNX export of a CLIP, Chinese-CLIP or SigLIP model (or make one with \`vecmill make-model\`), or choose another --dtype`,
      { model: dir, missing: missing.join(',') },
    );
  }
  const rawConfig = await readJson(dir, 'config.json');
  const tokenizerConfigRaw = await readJson(dir, 'tokenizer_config.json').catch(() => ({}));
  const tokenizerConfig = isRecord(tokenizerConfigRaw) ? tokenizerConfigRaw : {};
  const config = parseClipConfig(rawConfig, dir, tokenizerConfig);
  const preprocessorConfig = needs.image ? await readJson(dir, 'preprocessor_config.json') : undefined;
  const tokenizerJson = needs.text ? await readJson(dir, 'tokenizer.json') : undefined;
  const textModelPath = needs.text ? join(dir, `onnx/text_model${dtypeSuffix[dtype]}.onnx`) : undefined;
  const visionModelPath = needs.image ? join(dir, `onnx/vision_model${dtypeSuffix[dtype]}.onnx`) : undefined;
  const hashed = [...files];
  for (const optional of ['tokenizer_config.json', 'preprocessor_config.json', 'tokenizer.json']) {
    if (!hashed.includes(optional) && (await stat(join(dir, optional)).catch(() => undefined)) !== undefined) hashed.push(optional);
  }
  const fingerprint = await fingerprintFiles(dir, hashed);
  return { dir, dtype, config, preprocessorConfig, tokenizerJson, tokenizerConfig, textModelPath, visionModelPath, fingerprint };
}

/** Hugging Face's "no limit set" sentinel for `model_max_length` is int(1e30); anything this large means "not set". */
const unsetModelMaxLength = 1e15;

/**
 * Pulls the settings vecmill needs out of HF's `config.json` (and the truncation length out of
 * `tokenizer_config.json`), naming the field that is wrong. Missing text fields take the family's
 * config-class defaults, as Hugging Face does (SigLIP's config.json often lists none).
 */
export function parseClipConfig(raw: unknown, where: string, tokenizerConfig: Readonly<Record<string, unknown>> = {}): ClipConfig {
  if (!isRecord(raw)) throw new ModelError(`config.json in ${where} is not a JSON object`, { model: where });
  const family = parseModelFamily(raw['model_type'], where);
  const text = isRecord(raw['text_config']) ? raw['text_config'] : {};
  const projection = raw['projection_dim'] ?? (family === 'siglip' ? (text['hidden_size'] ?? 768) : 512);
  const positions = text['max_position_embeddings'] ?? familyTraits(family).defaultMaxPositions;
  if (typeof projection !== 'number' || !Number.isInteger(projection) || projection <= 0) {
    throw new ModelError(`config.json in ${where}: projection_dim must be a positive integer`, { model: where, field: 'projection_dim' });
  }
  if (typeof positions !== 'number' || !Number.isInteger(positions) || positions < 2) {
    throw new ModelError(`config.json in ${where}: text_config.max_position_embeddings must be an integer >= 2`, { model: where, field: 'text_config.max_position_embeddings' });
  }
  let context = positions;
  const maxLength = tokenizerConfig['model_max_length'];
  if (typeof maxLength === 'number' && maxLength < unsetModelMaxLength) {
    if (!Number.isInteger(maxLength) || maxLength < 2) {
      throw new ModelError(`tokenizer_config.json in ${where}: model_max_length ${maxLength} must be an integer >= 2; fix the file`, { model: where, field: 'model_max_length' });
    }
    context = maxLength;
  }
  const vocab = text['vocab_size'];
  return { family, projectionDim: projection, contextLength: context, maxPositions: positions, vocabSize: typeof vocab === 'number' ? vocab : undefined, raw };
}

/**
 * The truncation length of a run: `--context-length` when given, else the folder's own; either
 * must fit the text tower's position table, or every long caption would fail in the graph.
 */
export function resolveContextLength(config: ClipConfig, override: number | undefined): number {
  if (override === undefined) {
    if (config.contextLength > config.maxPositions) {
      throw new ConfigError(
        `the model's tokenizer_config.json model_max_length ${config.contextLength} exceeds its text_config.max_position_embeddings (${config.maxPositions}); pass --context-length ${config.maxPositions} or less`,
        { flag: '--context-length' },
      );
    }
    return config.contextLength;
  }
  if (override < 2 || override > config.maxPositions) {
    throw new ConfigError(`--context-length ${override} does not fit this model: pass a number from 2 to ${config.maxPositions} (its text_config.max_position_embeddings)`, { flag: '--context-length' });
  }
  return override;
}

/** Streams each file through sha256 (ONNX files can be hundreds of MB) and combines the hashes. */
export async function fingerprintFiles(dir: string, files: readonly string[]): Promise<ModelFingerprint> {
  const out: Record<string, string> = {};
  for (const f of [...files].sort()) out[f] = await sha256File(join(dir, f));
  const all = createHash('sha256');
  for (const [k, v] of Object.entries(out)) all.update(`${k}=${v}\n`);
  return { id: all.digest('hex'), files: out };
}

/** sha256 of a file without loading it whole. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * Copies a model folder from any store (S3) into a local cache folder, since onnxruntime opens
 * files by path. Files already present with the same size are kept, so workers on one node share
 * one copy.
 */
export async function materializeModelFolder(
  store: ObjectStore,
  dtype: ModelDtype,
  needs: ModelNeeds,
  cacheDir: string,
): Promise<string> {
  const wanted = [...requiredModelFiles(dtype, needs), 'tokenizer_config.json', 'preprocessor_config.json'];
  await mkdir(cacheDir, { recursive: true });
  for (const f of new Set(wanted)) {
    let info;
    try {
      info = await store.stat(f);
    } catch (err) {
      if (err instanceof NotFoundError && (f === 'tokenizer_config.json' || (f === 'preprocessor_config.json' && !needs.image))) continue;
      if (err instanceof NotFoundError) {
        throw new ModelError(`model folder ${store.description} is missing ${f}; check --model and --dtype`, { model: store.description, missing: f });
      }
      throw err;
    }
    const local = join(cacheDir, f);
    const have = await stat(local).catch(() => undefined);
    if (have !== undefined && have.size === info.size) continue;
    await mkdir(join(local, '..'), { recursive: true });
    await new LocalStore(cacheDir).put(f, store.readRange(f, 0, info.size));
  }
  return cacheDir;
}

async function readJson(dir: string, name: string): Promise<unknown> {
  const text = await readFile(join(dir, name), 'utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ModelError(`${name} in ${dir} is not valid JSON: ${(err as Error).message}`, { model: dir, file: name }, { cause: err });
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
