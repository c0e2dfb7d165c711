import { createHash } from 'node:crypto';
import { CommitError, NotFoundError } from '@vecmill/shared/errors';
import { stageTimingFields } from '@vecmill/shared/manifest';
import { outputKeys } from '@vecmill/shared/run-plan';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { parseVersionedJson, type VersionedJsonFormat } from '@vecmill/shared/versioned-json';

/** Milliseconds spent per stage of a split: where a slow run loses its time. */
export interface StageTimings {
  readonly read: number;
  readonly decode: number;
  readonly tokenize: number;
  readonly infer: number;
  readonly write: number;
}

/** One chunk file of a committed split: the marker lists them in line order. */
export interface ShardFile {
  readonly key: string;
  readonly rows: number;
  readonly bytes: number;
  readonly sha256: string;
}

/**
 * A split's done-marker. Its existence is the commit: the merger reads exactly the chunk files it
 * lists, so files of losing or crashed attempts are never output. Chunk `k` holds the split's
 * lines after those of chunks `0..k-1`; a split without rows has no files.
 */
export interface ShardMarker {
  readonly version: 2;
  readonly runId: string;
  readonly splitIndex: number;
  /** The attempt that wrote the files; its id is part of every file key. */
  readonly attempt: string;
  readonly files: readonly ShardFile[];
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

/** What an attempt hands to `commitShard`. */
export interface ShardCommitRequest {
  readonly runId: string;
  readonly splitIndex: number;
  /** Unique per attempt, so racing attempts never write the same keys. */
  readonly attempt: string;
  /** The chunk files this attempt has stored (`ShardWriter`), in line order. */
  readonly files: readonly ShardFile[];
  readonly rowsIn: number;
  readonly rowsOk: number;
  readonly rowsReused: number;
  readonly failedByReason: Readonly<Record<string, number>>;
  /** Called when the marker is written, so the write stage includes every upload. */
  readonly timings: () => StageTimings;
  readonly worker: string;
}

/**
 * Commits a split whose chunk files are stored under attempt-unique keys: the marker listing
 * them is created only if absent. The first committer wins; a later attempt deletes its own
 * files and returns the winner's marker, so at-least-once execution yields exactly-once output.
 */
export async function commitShard(store: ObjectStore, req: ShardCommitRequest): Promise<{ marker: ShardMarker; committed: boolean }> {
  const rowsFailed = Object.values(req.failedByReason).reduce((a, b) => a + b, 0);
  if (req.rowsOk + rowsFailed !== req.rowsIn) {
    throw new CommitError(`split ${req.splitIndex}: rows in ${req.rowsIn} != ok ${req.rowsOk} + failed ${rowsFailed}; refusing to commit`, { split: req.splitIndex });
  }
  const fileRows = req.files.reduce((a, f) => a + f.rows, 0);
  if (fileRows !== req.rowsIn) {
    throw new CommitError(`split ${req.splitIndex}: its chunk files hold ${fileRows} rows but ${req.rowsIn} were read; refusing to commit`, { split: req.splitIndex });
  }
  const marker: ShardMarker = {
    version: 2,
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
  if (created) return { marker, committed: true };
  const winner = await readShardMarker(store, req.splitIndex);
  if (winner === undefined) throw new CommitError(`split ${req.splitIndex}: the marker exists but cannot be read`, { split: req.splitIndex });
  // A retried conditional PUT whose first try landed reports "exists" for our own marker.
  if (winner.attempt === req.attempt) return { marker: winner, committed: true };
  for (const f of req.files) await store.delete(f.key);
  return { marker: winner, committed: false };
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
const anyMarkerFormat: VersionedJsonFormat<{ readonly version: number }> = { version: 2, fields: commonMarkerFields, remedy };

/** Version 2: the chunk files of the split, listed with their rows and hashes. */
const shardMarkerFormat: VersionedJsonFormat<ShardMarker> = {
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
  let raw: Buffer;
  try {
    raw = await store.read(outputKeys.shardMarker(splitIndex));
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
  const file = `${outputKeys.shardMarker(splitIndex)} in ${store.description}`;
  const { version } = parseVersionedJson(raw, anyMarkerFormat, file);
  return upgradeMarker(version === 1 ? parseVersionedJson(raw, shardMarkerV1Format, file) : parseVersionedJson(raw, shardMarkerFormat, file));
}

/** Version 1 markers (one data file per split), written by earlier versions of vecmill. */
interface ShardMarkerV1 extends Omit<ShardMarker, 'version' | 'attempt' | 'files'> {
  readonly version: 1;
  readonly dataKey: string;
  readonly sha256: string;
  readonly bytes: number;
}

/** Reads a version 1 marker as the one-file version 2 marker it is, so a run started by an earlier vecmill resumes. */
function upgradeMarker(m: ShardMarker | ShardMarkerV1): ShardMarker {
  if (m.version !== 1) return m;
  const { dataKey, sha256, bytes, ...rest } = m;
  return { ...rest, version: 2, attempt: dataKey, files: m.rowsIn === 0 ? [] : [{ key: dataKey, rows: m.rowsIn, bytes, sha256 }] };
}

/** Reads one chunk file of a committed split and checks it against the marker's sha256. */
export async function readShardFile(store: ObjectStore, marker: ShardMarker, file: ShardFile): Promise<Buffer> {
  const data = await store.read(file.key);
  const sha = createHash('sha256').update(data).digest('hex');
  if (sha !== file.sha256) {
    throw new CommitError(`shard data ${file.key} does not match its marker (sha256 differs); delete ${outputKeys.shardMarker(marker.splitIndex)} to recompute the split`, { split: marker.splitIndex, key: file.key });
  }
  return data;
}
