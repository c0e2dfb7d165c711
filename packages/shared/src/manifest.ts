import type { ModelFingerprint } from './model/model-folder.js';
import type { EmbedSettings, PlannedInput } from './run-plan.js';

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
