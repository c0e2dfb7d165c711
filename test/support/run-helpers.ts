import { loadRunConfig, type RunConfig } from '@vecmill/shared/config';
import { readEmbeddingTable, type EmbeddingTable } from '@vecmill/shared/formats/embedding-table';
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
