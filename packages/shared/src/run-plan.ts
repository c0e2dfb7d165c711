import { NotFoundError, PayloadError } from './errors.js';
import type { ModelDtype, ModelFingerprint } from './model/model-folder.js';
import type { ObjectStore } from './storage/object-store.js';
import type { InputKind } from './tsv/input-kind.js';
import { parseVersionedJson, type JsonFieldType, type VersionedJsonFormat } from './versioned-json.js';

/** Output files the merger can write besides the always-on Parquet parts. */
export type OutputFormat = 'parquet' | 'npy' | 'tsv';

/** Everything that decides what a run's output contains. Stored in plan.json, so every worker embeds alike. */
export interface EmbedSettings {
  readonly kind: InputKind;
  readonly dtype: ModelDtype;
  /** L2-normalize embeddings (CLIP retrieval compares cosine). */
  readonly normalize: boolean;
  readonly outDtype: 'float32' | 'float16';
  readonly batchSize: number;
  /** Images declaring more pixels than this are refused before decoding (decompression bombs). */
  readonly maxPixels: number;
  /** JPEG shrink-on-load before the exact resize: faster, not bit-identical to PIL. */
  readonly fastDecode: boolean;
  /** Lines longer than this are error rows, skipped without being buffered. */
  readonly maxLineBytes: number;
  /** Pad each text batch only to its longest caption when the graph allows it. */
  readonly trimText: boolean;
  readonly formats: readonly OutputFormat[];
  /**
   * How CMYK images become RGB: 'pillow', as PIL's `convert("RGB")` does (vecmill since
   * 2026-12-07). Absent from the plans and manifests of earlier vecmill, which converted CMYK
   * through sRGB with colour management, so `--reuse` can refuse to mix the two.
   */
  readonly cmykConversion?: 'pillow';
}

/** One input object as planned: its etag pins the content the splits refer to. */
export interface PlannedInput {
  /** `s3://bucket/key` or an absolute local path. */
  readonly uri: string;
  readonly size: number;
  readonly etag: string;
  readonly modified: string;
}

/** A byte range of one input, owning the lines that start inside `[start, end)`. */
export interface PlannedSplit {
  readonly index: number;
  /** Index into `RunPlan.inputs`. */
  readonly input: number;
  readonly start: number;
  readonly end: number;
}

/** Where the model came from and exactly which files it was. */
export interface PlannedModel {
  readonly location: string;
  readonly dtype: ModelDtype;
  readonly fingerprint: ModelFingerprint;
  readonly dims: number;
  /** The folder's preprocessor_config.json (undefined for text-only runs), recorded for the manifest. */
  readonly preprocessing: unknown;
  readonly contextLength: number;
}

/**
 * plan.json: the run's source of truth. Redis only carries references into it, and plan.json plus
 * the shard markers are enough to rebuild a run after Redis lost everything.
 */
export interface RunPlan {
  readonly version: 1;
  readonly runId: string;
  readonly createdAt: string;
  /** Output location (local path or `s3://`), where plan.json itself lives. */
  readonly output: string;
  readonly inputs: readonly PlannedInput[];
  readonly splits: readonly PlannedSplit[];
  readonly splitSize: number;
  readonly model: PlannedModel;
  readonly settings: EmbedSettings;
  /** `--reuse`: a previous published output whose embeddings are copied for unchanged content. */
  readonly reuse: string | undefined;
}

/** Which final file of a chunk: the marker and the manifest say it of every file. */
export type FileRole = 'part' | 'npy-image' | 'npy-text' | 'metadata' | 'errors' | 'tsv-image' | 'tsv-text';

/**
 * Digits of the split number in final file names: max(6, digits of the split count), fixed by the
 * plan, so every name of a run has the same width and name order is row order past 100,000 splits.
 */
export function splitNameWidth(splitCount: number): number {
  return Math.max(6, String(splitCount).length);
}

/** Digits of the chunk number in final file names (a split has far fewer than a million chunks). */
const CHUNK_WIDTH = 6;

/** The `<split>-<chunk>` part of a final file name: sorted names are split order, then chunk (line) order. */
function fileSuffix(split: number, chunk: number, width: number): string {
  return `${pad(split, width)}-${pad(chunk, CHUNK_WIDTH)}`;
}

/** Keys inside the output location. One place, so the worker, merger and `inspect` agree. */
export const outputKeys = {
  plan: 'plan.json',
  manifest: 'manifest.json',
  success: '_SUCCESS',
  shardMarker: (split: number): string => `shards/split-${pad(split, 6)}.done.json`,
  /** Where one attempt at a split stages a final file before its marker commits it: attempts never share a key. */
  staged: (split: number, attempt: string, finalKey: string): string => `shards/split-${pad(split, 6)}/${attempt}/${finalKey}`,
  shardPrefix: 'shards/',
  /** The final key of a chunk's file of a role. `width` is `splitNameWidth` of the plan. */
  final: (role: FileRole, split: number, chunk: number, width: number): string => {
    const s = fileSuffix(split, chunk, width);
    switch (role) {
      case 'part':
        return `embeddings/part-${s}.parquet`;
      case 'npy-image':
        return `img_emb/img_emb_${s}.npy`;
      case 'npy-text':
        return `text_emb/text_emb_${s}.npy`;
      case 'metadata':
        return `metadata/metadata_${s}.parquet`;
      case 'errors':
        return `errors/errors_${s}.parquet`;
      case 'tsv-image':
        return `image_feat/part-${s}.tsv`;
      case 'tsv-text':
        return `text_feat/part-${s}.tsv`;
    }
  },
  /** Folders of the final files, each listed once when a publish checks the promotion. */
  finalPrefixes: ['embeddings/', 'img_emb/', 'text_emb/', 'metadata/', 'errors/', 'image_feat/', 'text_feat/'],
} as const;

/** Splits a plan may have: ids `split × 2^32 + line` then stay below 2^53, exact as JSON numbers and doubles. */
export const MAX_SPLITS = 2 ** 21;

/**
 * The stable id of line `line` of split `split`: `split × 2^32 + line`. It needs no global pass
 * (a worker knows it at embed time) and is the same whenever the same input is embedded with the
 * same plan, so nightly runs and `--reuse` keep their ids. Ids ascend in output order; the
 * manifest's `firstRow` gives contiguous positions.
 */
export function rowId(split: number, line: number): bigint {
  return (BigInt(split) << 32n) + BigInt(line);
}

/** Zero-pads so that name order is numeric order. */
export function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/** Run ids become BullMQ job ids and key parts: keep them to a safe alphabet. */
export const runIdPattern = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** Validates a run id from a flag or a job payload. */
export function checkRunId(runId: unknown): string {
  if (typeof runId !== 'string' || !runIdPattern.test(runId)) {
    throw new PayloadError(`invalid run id ${JSON.stringify(runId)}: use 1-64 letters, digits, '-' or '_'`, { runId: String(runId) });
  }
  return runId;
}

/** Which modalities a kind of input carries. */
export function modalities(kind: InputKind): { text: boolean; image: boolean } {
  return { text: kind !== 'image', image: kind !== 'text' };
}

/** EmbedSettings as plan.json and manifest.json hold it, under `settings`: what every reader of either relies on. */
export const settingsFields = {
  settings: 'object',
  'settings.kind': 'string',
  'settings.dtype': 'string',
  'settings.normalize': 'boolean',
  'settings.outDtype': 'string',
  'settings.batchSize': 'integer',
  'settings.maxPixels': 'integer',
  'settings.fastDecode': 'boolean',
  'settings.maxLineBytes': 'integer',
  'settings.trimText': 'boolean',
  'settings.formats[]': 'string',
} as const satisfies Record<string, JsonFieldType>;

/** plan.json's format: version 1 is the RunPlan above. */
export const planFormat: VersionedJsonFormat<RunPlan> = {
  version: 1,
  fields: {
    runId: 'string',
    createdAt: 'string',
    output: 'string',
    'inputs[].uri': 'string',
    'inputs[].size': 'integer',
    'inputs[].etag': 'string',
    'inputs[].modified': 'string',
    'splits[].index': 'integer',
    'splits[].input': 'integer',
    'splits[].start': 'integer',
    'splits[].end': 'integer',
    splitSize: 'integer',
    model: 'object',
    'model.location': 'string',
    'model.dtype': 'string',
    'model.fingerprint.id': 'string',
    'model.fingerprint.files': 'object',
    'model.dims': 'integer',
    'model.contextLength': 'integer',
    ...settingsFields,
    reuse: 'string?',
  },
  remedy: 'delete the output folder and start the run again',
};

/**
 * Reads plan.json from an output, or undefined when the output holds no run yet. A damaged
 * plan.json, or one from a newer vecmill, is refused in one line naming it.
 */
export async function readPlan(output: ObjectStore): Promise<RunPlan | undefined> {
  let raw: Buffer;
  try {
    raw = await output.read(outputKeys.plan);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
  return parseVersionedJson(raw, planFormat, `${outputKeys.plan} in ${output.description}`);
}
