import { createHash } from 'node:crypto';
import { CommitError, NotFoundError } from '@vecmill/shared/errors';
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

/**
 * A split's done-marker. Its existence is the commit: the merger reads exactly the data file it
 * names, so data files of losing or crashed attempts are never output.
 */
export interface ShardMarker {
  readonly version: 1;
  readonly runId: string;
  readonly splitIndex: number;
  readonly dataKey: string;
  readonly sha256: string;
  readonly bytes: number;
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
  /** Unique per attempt, so racing attempts never write the same data key. */
  readonly attempt: string;
  readonly data: Uint8Array;
  readonly rowsIn: number;
  readonly rowsOk: number;
  readonly rowsReused: number;
  readonly failedByReason: Readonly<Record<string, number>>;
  /** Called after the data is stored, so the write stage includes the upload. */
  readonly timings: () => StageTimings;
  readonly worker: string;
}

/**
 * Commits a shard: the data goes to an attempt-unique key (atomic put), then the marker is
 * created only if absent. The first committer wins; a later attempt deletes its own data and
 * returns the winner's marker, so at-least-once execution yields exactly-once output.
 */
export async function commitShard(store: ObjectStore, req: ShardCommitRequest): Promise<{ marker: ShardMarker; committed: boolean }> {
  const rowsFailed = Object.values(req.failedByReason).reduce((a, b) => a + b, 0);
  if (req.rowsOk + rowsFailed !== req.rowsIn) {
    throw new CommitError(`split ${req.splitIndex}: rows in ${req.rowsIn} != ok ${req.rowsOk} + failed ${rowsFailed}; refusing to commit`, { split: req.splitIndex });
  }
  const dataKey = outputKeys.shardData(req.splitIndex, req.attempt);
  await store.put(dataKey, req.data);
  const marker: ShardMarker = {
    version: 1,
    runId: req.runId,
    splitIndex: req.splitIndex,
    dataKey,
    sha256: createHash('sha256').update(req.data).digest('hex'),
    bytes: req.data.byteLength,
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
  if (winner.dataKey === dataKey) return { marker: winner, committed: true };
  await store.delete(dataKey);
  return { marker: winner, committed: false };
}

/** The shard marker's format: version 1 is the ShardMarker above. */
const shardMarkerFormat: VersionedJsonFormat<ShardMarker> = {
  version: 1,
  fields: {
    runId: 'string',
    splitIndex: 'integer',
    dataKey: 'string',
    sha256: 'string',
    bytes: 'integer',
    rowsIn: 'integer',
    rowsOk: 'integer',
    rowsReused: 'integer',
    rowsFailed: 'integer',
    failedByReason: 'object',
    timings: 'object',
    'timings.read': 'number',
    'timings.decode': 'number',
    'timings.tokenize': 'number',
    'timings.infer': 'number',
    'timings.write': 'number',
    worker: 'string',
    committedAt: 'string',
  },
  remedy: 'delete it to recompute the split',
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
  return parseVersionedJson(raw, shardMarkerFormat, `${outputKeys.shardMarker(splitIndex)} in ${store.description}`);
}

/** Reads a committed shard's data and checks it against the marker's sha256. */
export async function readShardData(store: ObjectStore, marker: ShardMarker): Promise<Buffer> {
  const data = await store.read(marker.dataKey);
  const sha = createHash('sha256').update(data).digest('hex');
  if (sha !== marker.sha256) {
    throw new CommitError(`shard data ${marker.dataKey} does not match its marker (sha256 differs); delete ${outputKeys.shardMarker(marker.splitIndex)} to recompute the split`, { split: marker.splitIndex, key: marker.dataKey });
  }
  return data;
}
