import { CommitError, NotFoundError } from '@vecmill/shared/errors';
import { stageTimingFields } from '@vecmill/shared/manifest';
import { outputKeys, type FileRole } from '@vecmill/shared/run-plan';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { parseVersionedJson, type VersionedJsonFormat } from '@vecmill/shared/versioned-json';
import { forEachLimited } from './for-each-limited.js';

/** Milliseconds spent per stage of a split: where a slow run loses its time. */
export interface StageTimings {
  readonly read: number;
  readonly decode: number;
  readonly tokenize: number;
  readonly infer: number;
  readonly write: number;
}

/** A final file of a split as its attempt staged it: the marker lists these, the manifest their final keys. */
export interface StagedFile {
  readonly role: FileRole;
  /** The final key, e.g. `embeddings/part-000012-000003.parquet`. */
  readonly key: string;
  /** Where the attempt stored the bytes (`shards/split-…/<attempt>/<key>`), copied to `key` once committed. */
  readonly staged: string;
  readonly rows: number;
  readonly bytes: number;
  readonly sha256: string;
}

/** A chunk file as version 1 and 2 markers listed it (runs started by earlier vecmill). */
export interface LegacyShardFile {
  readonly key: string;
  readonly rows: number;
  readonly bytes: number;
  readonly sha256: string;
}

/** What every marker version says about a split. */
interface MarkerCounts {
  readonly runId: string;
  readonly splitIndex: number;
  /** The attempt that wrote the files; its id is part of every staged key. */
  readonly attempt: string;
  readonly rowsIn: number;
  readonly rowsOk: number;
  /** Ok rows whose every embedding was copied from the `--reuse` output. */
  readonly rowsReused: number;
  readonly rowsFailed: number;
  readonly failedByReason: Readonly<Record<string, number>>;
  readonly timings: StageTimings;
  readonly worker: string;
  readonly committedAt: string;
}

/**
 * A split's done-marker, version 3. Its existence is the commit: it lists every final file of the
 * split (chunk by chunk in line order) with the staged key holding its bytes, so only the winning
 * attempt's bytes ever reach final names, and publishing only checks and lists. A split without
 * rows has no files.
 */
export interface CommittedShardMarker extends MarkerCounts {
  readonly version: 3;
  readonly files: readonly StagedFile[];
}

/**
 * A version 1 or 2 marker (chunk files that a merge had to rewrite), read as version 2: a split
 * committed by an earlier vecmill counts as done, and publishing refuses such a run in one line.
 */
export interface LegacyShardMarker extends MarkerCounts {
  readonly version: 2;
  readonly files: readonly LegacyShardFile[];
}

/** Any marker this vecmill reads. */
export type ShardMarker = CommittedShardMarker | LegacyShardMarker;

/** What an attempt hands to `commitShard`. */
export interface ShardCommitRequest {
  readonly runId: string;
  readonly splitIndex: number;
  /** Unique per attempt, so racing attempts never write the same keys. */
  readonly attempt: string;
  /** The files this attempt has staged (`ShardWriter.finish`), chunk by chunk in line order. */
  readonly files: readonly StagedFile[];
  readonly rowsIn: number;
  readonly rowsOk: number;
  readonly rowsReused: number;
  readonly failedByReason: Readonly<Record<string, number>>;
  /** Called when the marker is written, so the write stage includes every upload. */
  readonly timings: () => StageTimings;
  readonly worker: string;
}

/** Final files copied at once while promoting a split. */
const PROMOTE_PARALLEL = 8;

/**
 * Commits a split whose final files are staged under attempt-unique keys: the marker listing them
 * is created only if absent, and the first committer wins. The winner then promotes its staged
 * files to their final keys (server-side copies) and deletes the staged copies. A later attempt
 * deletes its own staged files, makes sure the winner's files are promoted (the winner may have
 * died between marker and promotion) and returns the winner's marker, so at-least-once execution
 * yields exactly-once output and no losing attempt's bytes are ever visible under a final name.
 */
export async function commitShard(store: ObjectStore, req: ShardCommitRequest): Promise<{ marker: ShardMarker; committed: boolean }> {
  const rowsFailed = Object.values(req.failedByReason).reduce((a, b) => a + b, 0);
  const refuse = (what: string): CommitError => new CommitError(`split ${req.splitIndex}: ${what}; refusing to commit`, { split: req.splitIndex });
  if (req.rowsOk + rowsFailed !== req.rowsIn) throw refuse(`rows in ${req.rowsIn} != ok ${req.rowsOk} + failed ${rowsFailed}`);
  const problem = checkFileRows(req.files, req.rowsIn, req.rowsOk, rowsFailed);
  if (problem !== undefined) throw refuse(problem);
  const marker: CommittedShardMarker = {
    version: 3,
    runId: req.runId,
    splitIndex: req.splitIndex,
    attempt: req.attempt,
    files: req.files,
    rowsIn: req.rowsIn,
    rowsOk: req.rowsOk,
    rowsReused: req.rowsReused,
    rowsFailed,
    failedByReason: req.failedByReason,
    timings: req.timings(),
    worker: req.worker,
    committedAt: new Date().toISOString(),
  };
  const created = await store.putIfAbsent(outputKeys.shardMarker(req.splitIndex), Buffer.from(JSON.stringify(marker, null, 1)));
  let winner: ShardMarker | undefined = marker;
  if (!created) {
    winner = await readShardMarker(store, req.splitIndex);
    if (winner === undefined) throw new CommitError(`split ${req.splitIndex}: the marker exists but cannot be read`, { split: req.splitIndex });
  }
  // A retried conditional PUT whose first try landed reports "exists" for our own marker.
  const won = winner.attempt === req.attempt;
  if (!won) await forEachLimited(req.files, PROMOTE_PARALLEL, (f) => store.delete(f.staged));
  if (winner.version === 3) {
    await promoteFiles(store, winner);
    if (won) await forEachLimited(winner.files, PROMOTE_PARALLEL, (f) => store.delete(f.staged));
  }
  return { marker: winner, committed: won };
}

/**
 * What is wrong with the rows a split's files hold, if anything: the parts and each feature TSV
 * hold every row, each `.npy` and the metadata the ok rows, the errors files the failed rows.
 */
export function checkFileRows(files: readonly StagedFile[], rowsIn: number, rowsOk: number, rowsFailed: number): string | undefined {
  const sums = new Map<FileRole, number>();
  for (const f of files) sums.set(f.role, (sums.get(f.role) ?? 0) + f.rows);
  const expected: Record<FileRole, number> = { part: rowsIn, 'tsv-image': rowsIn, 'tsv-text': rowsIn, 'npy-image': rowsOk, 'npy-text': rowsOk, metadata: rowsOk, errors: rowsFailed };
  const parts = sums.get('part') ?? 0;
  if (parts !== rowsIn) return `its parts hold ${parts} rows but ${rowsIn} were read`;
  if ((sums.get('errors') ?? 0) !== rowsFailed) return `its errors files hold ${sums.get('errors') ?? 0} rows but ${rowsFailed} failed`;
  for (const [role, rows] of sums) {
    if (rows !== expected[role]) return `its ${role} files hold ${rows} rows, expected ${expected[role]}`;
  }
  return undefined;
}

/**
 * Copies each staged file of a committed split to its final key. Idempotent: copying again
 * writes the same bytes. A staged file already deleted (its winner finished promoting) is fine
 * when the final file is there with the marker's size; anything else fails the caller.
 */
export async function promoteFiles(store: ObjectStore, marker: CommittedShardMarker, files: readonly StagedFile[] = marker.files): Promise<void> {
  await forEachLimited(files, PROMOTE_PARALLEL, async (f) => {
    try {
      await store.copy(f.staged, f.key);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      const final = await store.stat(f.key).catch((e: unknown) => {
        if (e instanceof NotFoundError) return undefined;
        throw e;
      });
      if (final?.size !== f.bytes) {
        throw new CommitError(
          `split ${marker.splitIndex}: ${f.key} cannot be promoted (its staged copy ${f.staged} is gone and the final file is ${final === undefined ? 'missing' : `${final.size} bytes, not ${f.bytes}`}); delete ${outputKeys.shardMarker(marker.splitIndex)} to recompute the split`,
          { split: marker.splitIndex, key: f.key },
        );
      }
    }
  });
}

/** Fields every marker version has, and the remedy for a damaged one. */
const commonMarkerFields = {
  runId: 'string',
  splitIndex: 'integer',
  rowsIn: 'integer',
  rowsOk: 'integer',
  rowsReused: 'integer',
  rowsFailed: 'integer',
  failedByReason: 'object',
  ...stageTimingFields,
  worker: 'string',
  committedAt: 'string',
} as const;
const remedy = 'delete it to recompute the split';

/** What every version shares: read first, to pick the version's own checks. */
const anyMarkerFormat: VersionedJsonFormat<{ readonly version: number }> = { version: 3, fields: commonMarkerFields, remedy };

/** Version 3: every final file of the split with its staged key, role, rows and hash. */
const shardMarkerFormat: VersionedJsonFormat<CommittedShardMarker> = {
  version: 3,
  fields: {
    ...commonMarkerFields,
    attempt: 'string',
    files: 'array',
    'files[].role': 'string',
    'files[].key': 'string',
    'files[].staged': 'string',
    'files[].rows': 'integer',
    'files[].bytes': 'integer',
    'files[].sha256': 'string',
  },
  remedy,
};

/** Version 2: the chunk files of the split, listed with their rows and hashes. */
const shardMarkerV2Format: VersionedJsonFormat<LegacyShardMarker> = {
  version: 2,
  fields: { ...commonMarkerFields, attempt: 'string', files: 'array', 'files[].key': 'string', 'files[].rows': 'integer', 'files[].bytes': 'integer', 'files[].sha256': 'string' },
  remedy,
};

/** Version 1, written by earlier vecmill: one data file per split. */
const shardMarkerV1Format: VersionedJsonFormat<ShardMarkerV1> = {
  version: 1,
  fields: { ...commonMarkerFields, dataKey: 'string', sha256: 'string', bytes: 'integer' },
  remedy,
};

/**
 * The split's marker, or undefined when no attempt has committed it yet. A damaged marker, or
 * one from a newer vecmill, is refused in one line naming it.
 */
export async function readShardMarker(store: ObjectStore, splitIndex: number): Promise<ShardMarker | undefined> {
  const key = outputKeys.shardMarker(splitIndex);
  let raw: Buffer;
  try {
    raw = await store.read(key);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
  return parseShardMarker(raw, `${key} in ${store.description}`);
}

/** Parses a marker of any version this vecmill reads; `file` names it in errors. */
export function parseShardMarker(raw: Uint8Array, file: string): ShardMarker {
  const { version } = parseVersionedJson(raw, anyMarkerFormat, file);
  if (version === 3) return parseVersionedJson(raw, shardMarkerFormat, file);
  return upgradeMarker(version === 1 ? parseVersionedJson(raw, shardMarkerV1Format, file) : parseVersionedJson(raw, shardMarkerV2Format, file));
}

/** Version 1 markers (one data file per split), written by earlier versions of vecmill. */
interface ShardMarkerV1 extends Omit<LegacyShardMarker, 'version' | 'attempt' | 'files'> {
  readonly version: 1;
  readonly dataKey: string;
  readonly sha256: string;
  readonly bytes: number;
}

/** Reads a version 1 marker as the one-file version 2 marker it is. */
function upgradeMarker(m: LegacyShardMarker | ShardMarkerV1): LegacyShardMarker {
  if (m.version !== 1) return m;
  const { dataKey, sha256, bytes, ...rest } = m;
  return { ...rest, version: 2, attempt: dataKey, files: m.rowsIn === 0 ? [] : [{ key: dataKey, rows: m.rowsIn, bytes, sha256 }] };
}
