import * as arrow from 'apache-arrow';
import { loadRunConfig, type RunConfig } from '@vecmill/shared/config';
import { readEmbeddingTable, type EmbeddingTable } from '@vecmill/shared/formats/embedding-table';
import { readParquet } from '@vecmill/shared/formats/parquet-io';
import type { Manifest } from '@vecmill/shared/manifest';
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
