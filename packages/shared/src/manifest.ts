import { InputError, NotFoundError } from './errors.js';
import type { ModelFingerprint } from './model/model-folder.js';
import { outputKeys, settingsFields, type EmbedSettings, type PlannedInput } from './run-plan.js';
import type { ObjectStore } from './storage/object-store.js';
import { parseVersionedJson, type VersionedJsonFormat } from './versioned-json.js';

/** One published file: consumers check row counts and hashes against these. */
export interface ManifestFile {
  readonly key: string;
  readonly rows: number;
  readonly bytes: number;
  readonly sha256: string;
}

/**
 * manifest.json: everything needed to trust, reproduce and compare an output. Written by the
 * merger just before `_SUCCESS`; `vecmill inspect` prints its summary.
 */
export interface Manifest {
  readonly version: 1;
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

/** manifest.json's format: version 1 is the Manifest above. */
export const manifestFormat: VersionedJsonFormat<Manifest> = {
  version: 1,
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
