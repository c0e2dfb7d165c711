import { InputError, NotFoundError } from './errors.js';
import type { ModelFingerprint } from './model/model-folder.js';
import { outputKeys, settingsFields, type EmbedSettings, type FileRole, type PlannedInput } from './run-plan.js';
import type { ObjectStore } from './storage/object-store.js';
import { parseVersionedJson, type VersionedJsonFormat } from './versioned-json.js';

/** One published file: consumers check row counts and hashes against these. */
export interface ManifestFile {
  readonly key: string;
  readonly rows: number;
  readonly bytes: number;
  readonly sha256: string;
  /** Version 2: what the file holds. */
  readonly role?: FileRole;
  /**
   * Version 2, row-bearing files: the contiguous position of the file's first row among the
   * files of its role in key order (parts and feature TSVs count every row, `.npy` and metadata
   * the ok rows, errors the failed rows). Ids (`split × 2^32 + line`) have gaps; positions do not.
   */
  readonly firstRow?: number;
  /** Version 2, parts: the id of the part's first row; its rows have ids `firstId … firstId + rows - 1`. */
  readonly firstId?: number;
}

/**
 * manifest.json: everything needed to trust, reproduce and compare an output. Written by the
 * merger just before `_SUCCESS`; `vecmill inspect` prints its summary. Version 1 (earlier
 * vecmill): parts `embeddings/part-NNNNN.parquet` with ids 0…n-1, single feature TSVs. Version 2:
 * files named `<split>-<chunk>` with `role`/`firstRow`/`firstId`, ids `split × 2^32 + line`,
 * feature TSVs as ordered parts. Readers take both.
 */
export interface Manifest {
  readonly version: 1 | 2;
  readonly runId: string;
  readonly createdAt: string;
  readonly completedAt: string;
  readonly inputs: readonly PlannedInput[];
  readonly model: {
    readonly location: string;
    readonly dtype: string;
    readonly fingerprint: ModelFingerprint;
    readonly preprocessing: unknown;
    readonly contextLength: number;
  };
  readonly settings: EmbedSettings;
  readonly dims: number;
  readonly dtype: 'float32' | 'float16';
  readonly normalized: boolean;
  readonly rows: {
    readonly in: number;
    readonly ok: number;
    readonly failed: number;
    /** Ok rows copied from the `--reuse` output rather than computed. */
    readonly reused: number;
    readonly computed: number;
    readonly failedByReason: Readonly<Record<string, number>>;
  };
  readonly splits: number;
  /** The `--reuse` output, when one was given. */
  readonly reusedFrom: string | undefined;
  readonly files: readonly ManifestFile[];
  /** Summed stage milliseconds over all splits (CPU-parallel work adds up), plus merge wall time. */
  readonly timings: {
    readonly read: number;
    readonly decode: number;
    readonly tokenize: number;
    readonly infer: number;
    readonly write: number;
    readonly merge: number;
  };
}

/** The per-stage milliseconds a shard marker and the manifest both carry, as `versioned-json` checks them. */
export const stageTimingFields = {
  timings: 'object',
  'timings.read': 'number',
  'timings.decode': 'number',
  'timings.tokenize': 'number',
  'timings.infer': 'number',
  'timings.write': 'number',
} as const;

/** manifest.json's format: versions 1 and 2 are the Manifest above. */
export const manifestFormat: VersionedJsonFormat<Manifest> = {
  version: 2,
  fields: {
    runId: 'string',
    createdAt: 'string',
    completedAt: 'string',
    'inputs[].uri': 'string',
    model: 'object',
    'model.location': 'string',
    'model.dtype': 'string',
    'model.fingerprint.id': 'string',
    'model.contextLength': 'integer',
    ...settingsFields,
    dims: 'integer',
    dtype: 'string',
    normalized: 'boolean',
    rows: 'object',
    'rows.in': 'integer',
    'rows.ok': 'integer',
    'rows.failed': 'integer',
    'rows.reused': 'integer',
    'rows.computed': 'integer',
    'rows.failedByReason': 'object',
    splits: 'integer',
    reusedFrom: 'string?',
    'files[].key': 'string',
    'files[].rows': 'integer',
    'files[].bytes': 'integer',
    'files[].sha256': 'string',
    'files[].role': 'string?',
    'files[].firstRow': 'integer?',
    'files[].firstId': 'integer?',
    ...stageTimingFields,
    'timings.merge': 'number',
  },
  remedy: 'delete manifest.json and _SUCCESS, then run the same command again to publish the output from its shards',
};

/**
 * Reads manifest.json of an output through `format` (the merger's manifest, or a reader's
 * extension of it): a damaged one, one from a newer vecmill, or a missing one beside `_SUCCESS`
 * is refused in one line naming it.
 */
export async function readManifest<T extends Manifest>(output: ObjectStore, format: VersionedJsonFormat<T>): Promise<T> {
  const file = `${outputKeys.manifest} in ${output.description}`;
  let raw: Buffer;
  try {
    raw = await output.read(outputKeys.manifest);
  } catch (err) {
    if (err instanceof NotFoundError) throw new InputError(`${file} is missing although _SUCCESS is there; ${format.remedy}`, { file }, { cause: err });
    throw err;
  }
  return parseVersionedJson(raw, format, file);
}

/** The manifest of a published output (one with `_SUCCESS`), or undefined when it is not published. */
export async function readManifestIfPublished(output: ObjectStore): Promise<Manifest | undefined> {
  if (!(await output.exists(outputKeys.success))) return undefined;
  return readManifest(output, manifestFormat);
}

/** A Parquet part of a published output and where its rows sit. */
export interface PartRange {
  readonly key: string;
  readonly rows: number;
  /** Contiguous position of its first row over the whole output. */
  readonly firstRow: number;
  /** Id of its first row; the part's ids are `firstId … firstId + rows - 1`. */
  readonly firstId: number;
}

/**
 * The Parquet parts of a manifest in row order, for either version: version 1 parts hold ids
 * 0…n-1 (id = position), version 2 parts say their first position and id.
 */
export function partRanges(manifest: Manifest): PartRange[] {
  const parts = manifest.files.filter((f) => f.key.startsWith('embeddings/')).sort((a, b) => (a.key < b.key ? -1 : 1));
  let position = 0;
  return parts.map((f) => {
    const firstRow = position;
    position += f.rows;
    if (manifest.version === 1) return { key: f.key, rows: f.rows, firstRow, firstId: firstRow };
    if (f.firstRow !== firstRow || f.firstId === undefined) {
      throw new InputError(`manifest.json: part ${f.key} says first row ${f.firstRow} and first id ${f.firstId}, but the parts before it hold ${firstRow} rows; ${manifestFormat.remedy}`, { key: f.key });
    }
    return { key: f.key, rows: f.rows, firstRow, firstId: f.firstId };
  });
}
