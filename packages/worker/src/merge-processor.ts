import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import * as arrow from 'apache-arrow';
import { MergeError } from '@vecmill/shared/errors';
import { COLUMNS, readEmbeddingTable, type EmbeddingTable, type Modality } from '@vecmill/shared/formats/embedding-table';
import { featureTsvLines } from '@vecmill/shared/formats/easynlp-tsv';
import { npyHeader } from '@vecmill/shared/formats/npy-writer';
import { writeParquet } from '@vecmill/shared/formats/parquet-io';
import { readManifestIfPublished, type Manifest, type ManifestFile } from '@vecmill/shared/manifest';
import type { RunEventSink } from '@vecmill/shared/queue/run-events';
import { modalities, outputKeys, type RunPlan } from '@vecmill/shared/run-plan';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { readShardFile, readShardMarker, type ShardFile, type ShardMarker } from './shard-commit.js';

/** The ports the merger works through. */
export interface MergeDeps {
  readonly plan: RunPlan;
  readonly output: ObjectStore;
  readonly events?: RunEventSink;
}

/** Rows of the error table, gathered across shards (failures are few; their columns are small). */
interface ErrorRows {
  readonly rowIndex: bigint[];
  readonly source: string[];
  readonly offset: number[];
  readonly text: (string | null)[];
  readonly reason: string[];
  readonly message: string[];
}

/**
 * Publishes a run once every planned split has a marker: the Parquet parts, the clip-retrieval
 * `.npy` layout with its metadata, the errors table, the optional EasyNLP feature TSVs, then
 * manifest.json and `_SUCCESS` last. Each chunk file of each shard becomes one part and is read
 * on its own, so memory is one chunk's worth (bounded by the workers' chunk size) whatever the
 * run's or a split's size. It refuses to publish when counts do not balance or row ids repeat; a
 * published run is returned as is.
 */
export async function mergeRun(deps: MergeDeps): Promise<Manifest> {
  const { plan, output } = deps;
  const already = await readManifestIfPublished(output);
  if (already !== undefined) return already;
  const started = performance.now();
  deps.events?.({ type: 'merge-start', runId: plan.runId });

  const markers = await readAllMarkers(output, plan);
  const need = modalities(plan.settings.kind);
  const wanted: Modality[] = [...(need.image ? (['image'] as const) : []), ...(need.text ? (['text'] as const) : [])];
  const width = Math.max(5, String(markers.reduce((n, m) => n + m.files.length, 0)).length);
  const files: ManifestFile[] = [];
  const errors: ErrorRows = { rowIndex: [], source: [], offset: [], text: [], reason: [], message: [] };
  const totals = { in: 0, ok: 0, failed: 0, reused: 0, failedByReason: {} as Record<string, number> };
  const timings = { read: 0, decode: 0, tokenize: 0, infer: 0, write: 0, merge: 0 };
  let dims = plan.model.dims;
  let part = 0;
  let npyPart = 0;

  for (const marker of markers) {
    for (const k of Object.keys(timings) as (keyof typeof timings)[]) if (k !== 'merge') timings[k] += marker.timings[k];
    totals.in += marker.rowsIn;
    totals.ok += marker.rowsOk;
    totals.reused += marker.rowsReused;
    totals.failed += marker.rowsFailed;
    for (const [r, n] of Object.entries(marker.failedByReason)) totals.failedByReason[r] = (totals.failedByReason[r] ?? 0) + n;
    const firstRow = totals.in - marker.rowsIn;
    let lines = 0;
    let ok = 0;
    for (const file of marker.files) {
      const chunk = readEmbeddingTable(await readShardFile(output, marker, file), file.key);
      checkChunk(chunk, marker, file, lines);
      dims = chunk.dims;
      const table = chunk.withRowIndex(firstRow + lines);
      lines += chunk.numRows;
      files.push(await publish(output, outputKeys.embeddingsPart(part++, width), writeParquet(table.table), table.numRows));

      const okRows = okRowIndexes(table, wanted);
      ok += okRows.length;
      if (plan.settings.formats.includes('npy') && okRows.length > 0) {
        for (const m of wanted) {
          const key = m === 'image' ? outputKeys.imageNpy(npyPart, width) : outputKeys.textNpy(npyPart, width);
          files.push(await publish(output, key, npyBytes(table, m, okRows), okRows.length));
        }
        files.push(await publish(output, outputKeys.metadata(npyPart, width), writeParquet(metadataTable(table, okRows)), okRows.length));
        npyPart++;
      }
      collectErrors(table, errors);
    }
    if (lines !== marker.rowsIn) {
      throw new MergeError(`split ${marker.splitIndex}: its chunk files hold ${lines} rows but its marker says ${marker.rowsIn}; refusing to publish`, { split: marker.splitIndex });
    }
    if (ok !== marker.rowsOk) {
      throw new MergeError(`split ${marker.splitIndex}: ${ok} rows have every embedding but the marker says ${marker.rowsOk} ok; refusing to publish`, { split: marker.splitIndex });
    }
  }

  if (totals.in !== totals.ok + totals.failed) {
    throw new MergeError(`rows in ${totals.in} != ok ${totals.ok} + failed ${totals.failed}; refusing to publish`, { runId: plan.runId });
  }
  if (errors.rowIndex.length !== totals.failed) {
    throw new MergeError(`the shards hold ${errors.rowIndex.length} error rows but the markers count ${totals.failed}; refusing to publish`, { runId: plan.runId });
  }
  if (errors.rowIndex.length > 0) files.push(await publish(output, outputKeys.errors, writeParquet(errorTable(errors)), errors.rowIndex.length));
  if (plan.settings.formats.includes('tsv')) {
    for (const m of wanted) {
      const key = m === 'image' ? outputKeys.imageTsv : outputKeys.textTsv;
      files.push(await publishStream(output, key, featureTsvStream(output, markers, m), totals.in));
    }
  }

  timings.merge = Math.round(performance.now() - started);
  const manifest: Manifest = {
    version: 1,
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
    dims,
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

/** Every split's marker, in split order; fails naming the splits that have none. */
async function readAllMarkers(output: ObjectStore, plan: RunPlan): Promise<ShardMarker[]> {
  const markers: ShardMarker[] = [];
  const missing: number[] = [];
  for (const split of plan.splits) {
    const m = await readShardMarker(output, split.index);
    if (m === undefined) missing.push(split.index);
    else if (m.runId !== plan.runId || m.splitIndex !== split.index) {
      throw new MergeError(`the marker of split ${split.index} belongs to run ${m.runId} split ${m.splitIndex}; refusing to publish`, { split: split.index });
    } else markers.push(m);
  }
  if (missing.length > 0) {
    throw new MergeError(
      `${missing.length} of ${plan.splits.length} splits have no committed shard (first: ${missing.slice(0, 5).join(', ')}); run the remaining splits before merging`,
      { runId: plan.runId, missing: missing.length },
    );
  }
  return markers;
}

/**
 * A split's chunks must hold lines 0..n-1 of the split, once each and in order (chunk `k` starts
 * where chunk `k - 1` ended): the basis of unique, gap-free row ids.
 */
function checkChunk(chunk: EmbeddingTable, marker: ShardMarker, file: ShardFile, firstLine: number): void {
  if (chunk.numRows !== file.rows) {
    throw new MergeError(`shard ${file.key} has ${chunk.numRows} rows but its marker says ${file.rows}; refusing to publish`, { split: marker.splitIndex });
  }
  const lines = chunk.table.getChild(COLUMNS.lineIndex)!.toArray() as Int32Array;
  const splits = chunk.table.getChild(COLUMNS.splitIndex)!.toArray() as Int32Array;
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== firstLine + i || splits[i] !== marker.splitIndex) {
      throw new MergeError(
        `shard ${file.key}: row ${i} is line ${lines[i]} of split ${splits[i]}, expected line ${firstLine + i} of split ${marker.splitIndex} (duplicate or missing row); refusing to publish`,
        { split: marker.splitIndex },
      );
    }
  }
}

/** Rows that have every embedding the run asked for: the rows the npy layout holds. */
function okRowIndexes(table: EmbeddingTable, wanted: readonly Modality[]): number[] {
  const present = wanted.map((m) => table.present(m));
  const out: number[] = [];
  for (let i = 0; i < table.numRows; i++) if (present.every((p) => p[i] === 1)) out.push(i);
  return out;
}

/** A `.npy` file (header + little-endian rows) of the given rows' embeddings. */
function npyBytes(table: EmbeddingTable, modality: Modality, rows: readonly number[]): Buffer {
  const all = table.embeddings(modality);
  const d = table.dims;
  const picked = rows.length === table.numRows ? all : gather(all, rows, d);
  const body = Buffer.from(picked.buffer, picked.byteOffset, picked.byteLength);
  return Buffer.concat([npyHeader([rows.length, d], table.dtype === 'float16' ? '<f2' : '<f4'), body]);
}

/** The given rows (ascending) of a row-major array, copying each run of consecutive rows at once. */
function gather(values: Float32Array | Uint16Array, rows: readonly number[], d: number): Float32Array | Uint16Array {
  const out = values instanceof Uint16Array ? new Uint16Array(rows.length * d) : new Float32Array(rows.length * d);
  for (let j = 0; j < rows.length; ) {
    let k = j + 1;
    while (k < rows.length && rows[k] === rows[k - 1]! + 1) k++;
    out.set(values.subarray(rows[j]! * d, (rows[k - 1]! + 1) * d), j * d);
    j = k;
  }
  return out;
}

/** clip-retrieval's metadata: one row per npy row, with the global id to join back to the parts. */
function metadataTable(table: EmbeddingTable, rows: readonly number[]): arrow.Table {
  const col = <T>(name: string): arrow.Vector<arrow.DataType> & { get(i: number): T } => table.table.getChild(name)! as never;
  const ids = col<bigint>(COLUMNS.rowIndex);
  const text = col<string | null>(COLUMNS.text);
  const source = col<string>(COLUMNS.source);
  const offset = col<number | bigint>(COLUMNS.offset);
  return new arrow.Table({
    id: arrow.makeVector(BigInt64Array.from(rows, (r) => BigInt(ids.get(r)))),
    caption: arrow.vectorFromArray(rows.map((r) => text.get(r)), new arrow.Utf8()),
    source: arrow.vectorFromArray(rows.map((r) => String(source.get(r))), new arrow.Utf8()),
    offset: arrow.makeVector(BigInt64Array.from(rows, (r) => BigInt(offset.get(r)))),
  });
}

function collectErrors(table: EmbeddingTable, into: ErrorRows): void {
  const status = table.table.getChild(COLUMNS.status)!;
  const get = (name: string, i: number): unknown => table.table.getChild(name)!.get(i);
  for (let i = 0; i < table.numRows; i++) {
    if (status.get(i) === 'ok') continue;
    into.rowIndex.push(BigInt(get(COLUMNS.rowIndex, i) as bigint));
    into.source.push(String(get(COLUMNS.source, i)));
    into.offset.push(Number(get(COLUMNS.offset, i)));
    into.text.push(get(COLUMNS.text, i) as string | null);
    into.reason.push(String(get(COLUMNS.errorReason, i)));
    into.message.push(String(get(COLUMNS.errorMessage, i)));
  }
}

function errorTable(e: ErrorRows): arrow.Table {
  return new arrow.Table({
    id: arrow.makeVector(BigInt64Array.from(e.rowIndex)),
    source: arrow.vectorFromArray(e.source, new arrow.Utf8()),
    offset: arrow.makeVector(BigInt64Array.from(e.offset, (o) => BigInt(o))),
    text: arrow.vectorFromArray(e.text, new arrow.Utf8()),
    error_reason: arrow.vectorFromArray(e.reason, new arrow.Utf8()),
    error_message: arrow.vectorFromArray(e.message, new arrow.Utf8()),
  });
}

/** EasyNLP feature lines for every input row, chunk file by chunk file (a second pass: never a whole split in memory). */
async function* featureTsvStream(output: ObjectStore, markers: readonly ShardMarker[], modality: Modality): AsyncGenerator<Buffer> {
  for (const marker of markers) {
    for (const file of marker.files) {
      const table = readEmbeddingTable(await readShardFile(output, marker, file), file.key);
      for (const lines of featureTsvLines(table, modality)) yield Buffer.from(lines, 'utf8');
    }
  }
}

async function publish(store: ObjectStore, key: string, bytes: Uint8Array, rows: number): Promise<ManifestFile> {
  await store.put(key, bytes);
  return { key, rows, bytes: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest('hex') };
}

async function publishStream(store: ObjectStore, key: string, chunks: AsyncIterable<Buffer>, rows: number): Promise<ManifestFile> {
  const hash = createHash('sha256');
  let bytes = 0;
  const counted = Readable.from(
    (async function* () {
      for await (const c of chunks) {
        hash.update(c);
        bytes += c.byteLength;
        yield c;
      }
    })(),
  );
  await store.put(key, counted);
  return { key, rows, bytes, sha256: hash.digest('hex') };
}

function roundAll<T extends Record<string, number>>(o: T): T {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v)])) as T;
}
