import { MergeError } from '@vecmill/shared/errors';
import { readManifestIfPublished, type Manifest, type ManifestFile } from '@vecmill/shared/manifest';
import type { RunEventSink } from '@vecmill/shared/queue/run-events';
import { outputKeys, rowId, type FileRole, type RunPlan } from '@vecmill/shared/run-plan';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { forEachLimited } from './for-each-limited.js';
import { checkFileRows, parseShardMarker, promoteFiles, type CommittedShardMarker, type ShardMarker, type StagedFile } from './shard-commit.js';

/** The ports the merger works through. */
export interface MergeDeps {
  readonly plan: RunPlan;
  readonly output: ObjectStore;
  readonly events?: RunEventSink;
}

/** Markers read at once: 32 requests in flight hide S3's per-request latency without throttling. */
const MARKER_READS_IN_FLIGHT = 32;

/** A marker's key, `shards/split-NNNNNN.done.json`; staged files below `shards/split-NNNNNN/` do not match. */
const MARKER_KEY = /^shards\/split-(\d+)\.done\.json$/;

/**
 * Publishes a run once every planned split is committed. The workers already wrote every final
 * file (Parquet parts, `.npy` + metadata, errors, feature TSV parts) at commit time, so this only
 * lists and checks: it lists the markers, reads them with bounded parallelism, checks them against
 * the plan (every split exactly once, run and split ids, rows in = ok + failed, per-role file rows),
 * lists each final folder once to verify the promotion (copying from the staged key any file a
 * worker killed between marker and promotion left out), then writes manifest.json and `_SUCCESS`
 * last. No embedding is read or copied, so the cost is a listing plus one read per marker. A
 * published run is returned as is.
 */
export async function mergeRun(deps: MergeDeps): Promise<Manifest> {
  const { plan, output } = deps;
  const already = await readManifestIfPublished(output);
  if (already !== undefined) return already;
  const started = performance.now();
  deps.events?.({ type: 'merge-start', runId: plan.runId });

  const markers = await readAllMarkers(output, plan);
  await verifyPromotion(output, markers);

  const totals = { in: 0, ok: 0, failed: 0, reused: 0, failedByReason: {} as Record<string, number> };
  const timings = { read: 0, decode: 0, tokenize: 0, infer: 0, write: 0, merge: 0 };
  const position = new Map<FileRole, number>();
  const files: ManifestFile[] = [];
  for (const marker of markers) {
    for (const k of Object.keys(timings) as (keyof typeof timings)[]) if (k !== 'merge') timings[k] += marker.timings[k];
    totals.in += marker.rowsIn;
    totals.ok += marker.rowsOk;
    totals.reused += marker.rowsReused;
    totals.failed += marker.rowsFailed;
    for (const [r, n] of Object.entries(marker.failedByReason)) totals.failedByReason[r] = (totals.failedByReason[r] ?? 0) + n;
    let line = 0;
    for (const f of marker.files) {
      const firstRow = position.get(f.role) ?? 0;
      position.set(f.role, firstRow + f.rows);
      const entry: ManifestFile = { key: f.key, rows: f.rows, bytes: f.bytes, sha256: f.sha256, role: f.role, firstRow };
      if (f.role === 'part') {
        files.push({ ...entry, firstId: Number(rowId(marker.splitIndex, line)) });
        line += f.rows;
      } else files.push(entry);
    }
  }
  files.sort((a, b) => (a.key < b.key ? -1 : 1));

  timings.merge = Math.round(performance.now() - started);
  const manifest: Manifest = {
    version: 2,
    runId: plan.runId,
    createdAt: plan.createdAt,
    completedAt: new Date().toISOString(),
    inputs: plan.inputs,
    model: {
      location: plan.model.location,
      dtype: plan.model.dtype,
      fingerprint: plan.model.fingerprint,
      preprocessing: plan.model.preprocessing,
      contextLength: plan.model.contextLength,
    },
    settings: plan.settings,
    dims: plan.model.dims,
    dtype: plan.settings.outDtype,
    normalized: plan.settings.normalize,
    rows: { in: totals.in, ok: totals.ok, failed: totals.failed, reused: totals.reused, computed: totals.ok - totals.reused, failedByReason: totals.failedByReason },
    splits: plan.splits.length,
    reusedFrom: plan.reuse,
    files,
    timings: roundAll(timings),
  };
  await output.put(outputKeys.manifest, Buffer.from(JSON.stringify(manifest, null, 2)));
  await output.put(outputKeys.success, Buffer.from(`${plan.runId}\n`));
  deps.events?.({ type: 'merge-done', runId: plan.runId, rowsIn: totals.in, rowsOk: totals.ok, rowsFailed: totals.failed });
  return manifest;
}

/**
 * Every split's marker, in split order, found by one listing of `shards/` and read with bounded
 * parallelism. Fails naming the splits that have none, and refuses markers of another run or
 * split, of splits the plan does not have, with unbalanced counts, or from an earlier vecmill.
 */
async function readAllMarkers(output: ObjectStore, plan: RunPlan): Promise<CommittedShardMarker[]> {
  const keys: { split: number; key: string }[] = [];
  for await (const info of output.list(outputKeys.shardPrefix)) {
    const m = MARKER_KEY.exec(info.key);
    if (m !== null) keys.push({ split: Number(m[1]), key: info.key });
  }
  const stray = keys.find((k) => k.split >= plan.splits.length || plan.splits[k.split]?.index !== k.split);
  if (stray !== undefined) {
    throw new MergeError(`${stray.key} in ${output.description} commits split ${stray.split}, which run ${plan.runId} does not plan; refusing to publish`, { split: stray.split });
  }
  const found = new Set(keys.map((k) => k.split));
  const missing = plan.splits.map((s) => s.index).filter((i) => !found.has(i));
  if (missing.length > 0) {
    throw new MergeError(
      `${missing.length} of ${plan.splits.length} splits have no committed shard (first: ${missing.slice(0, 5).join(', ')}); run the remaining splits before merging`,
      { runId: plan.runId, missing: missing.length },
    );
  }
  const markers: ShardMarker[] = new Array<ShardMarker>(plan.splits.length);
  await forEachLimited(keys, MARKER_READS_IN_FLIGHT, async ({ split, key }) => {
    markers[split] = parseShardMarker(await output.read(key), `${key} in ${output.description}`);
  });
  return markers.map((m, split) => checkMarker(m, split, plan, output));
}

/** One marker against the plan: run, split, version and counts. */
function checkMarker(m: ShardMarker, split: number, plan: RunPlan, output: ObjectStore): CommittedShardMarker {
  if (m.runId !== plan.runId || m.splitIndex !== split) {
    throw new MergeError(`the marker of split ${split} belongs to run ${m.runId} split ${m.splitIndex}; refusing to publish`, { split });
  }
  if (m.version !== 3) {
    throw new MergeError(
      `run ${plan.runId} was committed by an earlier vecmill (split ${split} has a version ${m.version} marker), whose shards this one does not publish; delete ${outputKeys.shardPrefix} in ${output.description} and run again`,
      { split },
    );
  }
  const refuse = (what: string): MergeError => new MergeError(`split ${split}: ${what}; refusing to publish`, { split });
  if (m.rowsIn !== m.rowsOk + m.rowsFailed) throw refuse(`rows in ${m.rowsIn} != ok ${m.rowsOk} + failed ${m.rowsFailed}`);
  const problem = checkFileRows(m.files, m.rowsIn, m.rowsOk, m.rowsFailed);
  if (problem !== undefined) throw refuse(problem);
  return m;
}

/**
 * Lists each final folder once (the folders at once) and checks every marker's files are there with their sizes; a
 * missing or mis-sized one (a worker killed between its marker and the end of its promotion) is
 * copied again from its staged key. Repairs run with the same bounded parallelism as reads.
 */
async function verifyPromotion(output: ObjectStore, markers: readonly CommittedShardMarker[]): Promise<void> {
  const sizes = new Map<string, number>();
  await Promise.all(
    outputKeys.finalPrefixes.map(async (prefix) => {
      for await (const info of output.list(prefix)) sizes.set(info.key, info.size);
    }),
  );
  const repairs: { marker: CommittedShardMarker; files: StagedFile[] }[] = [];
  for (const marker of markers) {
    const files = marker.files.filter((f) => sizes.get(f.key) !== f.bytes);
    if (files.length > 0) repairs.push({ marker, files });
  }
  await forEachLimited(repairs, MARKER_READS_IN_FLIGHT, ({ marker, files }) => promoteFiles(output, marker, files));
}

function roundAll<T extends Record<string, number>>(o: T): T {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v)])) as T;
}
