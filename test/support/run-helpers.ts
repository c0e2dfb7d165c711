import assert from 'node:assert/strict';
import * as arrow from 'apache-arrow';
import { loadRunConfig, type RunConfig } from '@vecmill/shared/config';
import { COLUMNS, readEmbeddingTable, type EmbeddingTable } from '@vecmill/shared/formats/embedding-table';
import { readParquet } from '@vecmill/shared/formats/parquet-io';
import { partRanges, type Manifest } from '@vecmill/shared/manifest';
import type { RunEvent } from '@vecmill/shared/queue/run-events';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';

/** A run config as the CLI would build it, with test-friendly settings (no progress bar). */
export function runConfig(args: readonly string[], env: NodeJS.ProcessEnv = {}): RunConfig {
  return loadRunConfig([...args, '--progress', 'json', '--threads', '1'], env);
}

/** Collects run events for assertions. */
export function eventLog(): { events: RunEvent[]; sink: (e: RunEvent) => void } {
  const events: RunEvent[] = [];
  return { events, sink: (e) => events.push(e) };
}

/** Reads every `embeddings/part-*.parquet` of a published output, in part order, as one list of tables. */
export async function readParts(store: ObjectStore, manifest: Manifest): Promise<EmbeddingTable[]> {
  const keys = manifest.files.map((f) => f.key).filter((k) => k.startsWith('embeddings/')).sort();
  const out: EmbeddingTable[] = [];
  for (const k of keys) out.push(readEmbeddingTable(await store.read(k), k));
  return out;
}

/** The failed rows of a published output: every `errors/` file of its manifest, in key (row) order, as one table. */
export async function readErrors(store: ObjectStore, manifest: Manifest): Promise<arrow.Table> {
  const keys = manifest.files.map((f) => f.key).filter((k) => k.startsWith('errors/')).sort();
  const tables: arrow.Table[] = [];
  for (const k of keys) tables.push(readParquet(await store.read(k), { name: k }));
  return tables.length === 0 ? new arrow.Table() : new arrow.Table(tables.flatMap((t) => t.batches));
}

/**
 * Checks the row-id contract of a published (version 2) output and returns every row's position
 * in output order: each row's id is `split × 2^32 + line`, ids strictly ascend over the parts in
 * name order, and each part's manifest `firstId` / `firstRow` give its first id and its
 * contiguous position. A test then compares the positions with `0…n-1`.
 */
export async function checkRowIds(store: ObjectStore, manifest: Manifest): Promise<number[]> {
  const positions: number[] = [];
  let previous = -1n;
  for (const part of manifest.files.filter((f) => f.key.startsWith('embeddings/')).sort((a, b) => (a.key < b.key ? -1 : 1))) {
    const t = readEmbeddingTable(await store.read(part.key), part.key);
    const ids = t.table.getChild(COLUMNS.rowIndex)!.toArray() as BigInt64Array;
    const splits = t.table.getChild(COLUMNS.splitIndex)!.toArray() as Int32Array;
    const lines = t.table.getChild(COLUMNS.lineIndex)!.toArray() as Int32Array;
    assert.equal(part.firstId, Number(ids[0]), `${part.key}: firstId is its first row's id`);
    assert.equal(part.firstRow, positions.length, `${part.key}: firstRow is the rows before it`);
    for (let i = 0; i < t.numRows; i++) {
      const id = ids[i]!;
      assert.equal(id, (BigInt(splits[i]!) << 32n) + BigInt(lines[i]!), `${part.key} row ${i}: id = split × 2^32 + line`);
      assert.ok(id > previous, `${part.key} row ${i}: ids ascend`);
      previous = id;
      positions.push(part.firstRow! + i);
    }
  }
  return positions;
}

/** The contiguous position (0…n-1, output order) of the row with this id, from the manifest's part ranges. */
export function positionOf(manifest: Manifest, id: bigint | number): number {
  const n = Number(id);
  const part = partRanges(manifest).find((p) => n >= p.firstId && n < p.firstId + p.rows);
  assert.ok(part !== undefined, `id ${id} is in a part of the output`);
  return part.firstRow + (n - part.firstId);
}
