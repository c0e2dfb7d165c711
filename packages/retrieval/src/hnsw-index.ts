import { createReadStream, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { Index, MetricKind, ScalarKind } from 'usearch';
import { ConfigError, InputError } from '@vecmill/shared/errors';
import type { Modality } from '@vecmill/shared/formats/embedding-table';
import { readManifest } from '@vecmill/shared/manifest';
import { outputKeys } from '@vecmill/shared/run-plan';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { scoringRows, TopKCollector, type Metric, type SearchHit } from './exact-search.js';
import { retrievalManifestFormat, type ManifestIndexEntry, type PublishedOutput, type RetrievalManifest } from './output-reader.js';

/**
 * HNSW graph settings. The defaults are usearch's and hnswlib's usual ones; on a measured
 * 10,000 × 512 clustered set they give recall@10 ≥ 0.99 against exact search.
 */
export interface HnswIndexOptions {
  readonly modality: Modality;
  /** Default cosine. */
  readonly metric?: Metric;
  /** Graph degree M (default 16): more means better recall, a bigger index and a slower build. */
  readonly connectivity?: number;
  /** efConstruction (default 128). */
  readonly expansionAdd?: number;
  /** efSearch stored with the index (default 64); searches may raise it. */
  readonly expansionSearch?: number;
  /** Build threads (default 0: usearch uses every core). */
  readonly threads?: number;
  /** Rows sampled as queries to measure recall@10 against exact search after the build (default 100; 0 skips the check). */
  readonly recallSample?: number;
}

/** Defaults of HnswIndexOptions. */
export const HNSW_DEFAULTS = { metric: 'cosine' as Metric, connectivity: 16, expansionAdd: 128, expansionSearch: 64, threads: 0, recallSample: 100 } as const;

/** `index.json`: everything needed to reopen, trust and reproduce one index file. */
export interface IndexDescriptor {
  readonly version: 1;
  readonly library: 'usearch';
  readonly libraryVersion: string;
  /** Key of the index file inside the output. */
  readonly key: string;
  readonly modality: Modality;
  readonly metric: Metric;
  readonly dims: number;
  readonly rows: number;
  /** Element type usearch stores: the output's own dtype. */
  readonly quantization: 'f32' | 'f16';
  readonly connectivity: number;
  readonly expansionAdd: number;
  readonly expansionSearch: number;
  readonly runId: string;
  readonly modelFingerprint: string;
  readonly buildMs: number;
  /** recall@10 of the index against exact search on `recallSample` rows used as queries; null when skipped. */
  readonly recallAt10: number | null;
  readonly recallSample: number;
  readonly createdAt: string;
}

/** Keys of one index and its sidecar: one index per modality and metric. */
export function indexKeys(modality: Modality, metric: Metric): { index: string; descriptor: string } {
  return { index: `indexes/${modality}-${metric}/index.usearch`, descriptor: `indexes/${modality}-${metric}/index.json` };
}

/**
 * Builds an HNSW index over one modality of a published output with usearch, stores it next to
 * the output with an `index.json` sidecar, and records it in manifest.json. usearch was chosen over
 * hnswlib-node: equal recall at equal M/ef on the same data, a multi-threaded build from typed
 * arrays, float16 storage, and prebuilt binaries in its npm package (hnswlib-node compiles with
 * node-gyp at install). Keys are the rows' global ids.
 */
export async function buildHnswIndex(output: PublishedOutput, options: HnswIndexOptions): Promise<IndexDescriptor> {
  const o = { ...HNSW_DEFAULTS, ...options };
  output.requireModality(o.modality);
  const dims = output.dims;
  const quantization = output.dtype === 'float16' ? 'f16' : 'f32';
  const index = new Index({
    dimensions: dims,
    metric: o.metric === 'cosine' ? MetricKind.Cos : MetricKind.IP,
    quantization: quantization === 'f16' ? ScalarKind.F16 : ScalarKind.F32,
    connectivity: o.connectivity,
    expansion_add: o.expansionAdd,
    expansion_search: o.expansionSearch,
    multi: false,
  });
  const stride = o.recallSample > 0 ? Math.max(1, Math.floor(output.manifest.rows.ok / o.recallSample)) : 0;
  const sample: { ids: bigint[]; values: Float32Array[] } = { ids: [], values: [] };
  const started = performance.now();
  let rows = 0;
  for await (const block of output.blocks(o.modality)) {
    const values = scoringRows(block.embeddings, dims, 'ip');
    index.add(BigUint64Array.from(block.ids, (id) => BigInt.asUintN(64, id)), values, o.threads);
    for (let i = 0; i < block.ids.length; i++) {
      if (stride > 0 && (rows + i) % stride === 0 && sample.ids.length < o.recallSample) {
        sample.ids.push(block.ids[i]!);
        sample.values.push(values.slice(i * dims, (i + 1) * dims));
      }
    }
    rows += block.ids.length;
  }
  if (rows === 0) throw new InputError(`${output.store.description} has no ${o.modality} embeddings to index (every row failed)`);
  const buildMs = Math.round(performance.now() - started);

  const keys = indexKeys(o.modality, o.metric);
  const dir = await mkdtemp(join(tmpdir(), 'vecmill-index-'));
  try {
    const file = join(dir, 'index.usearch');
    index.save(file);
    await output.store.put(keys.index, createReadStream(file));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const recallAt10 = sample.ids.length === 0 ? null : await measureRecall(output, o.modality, o.metric, index, sample.values);
  const descriptor: IndexDescriptor = {
    version: 1,
    library: 'usearch',
    libraryVersion: usearchVersion(),
    key: keys.index,
    modality: o.modality,
    metric: o.metric,
    dims,
    rows,
    quantization,
    connectivity: o.connectivity,
    expansionAdd: o.expansionAdd,
    expansionSearch: o.expansionSearch,
    runId: output.manifest.runId,
    modelFingerprint: output.manifest.model.fingerprint.id,
    buildMs,
    recallAt10,
    recallSample: sample.ids.length,
    createdAt: new Date().toISOString(),
  };
  await output.store.put(keys.descriptor, Buffer.from(JSON.stringify(descriptor, null, 2)));
  await recordIndex(output.store, { key: keys.index, descriptor: keys.descriptor, modality: o.modality, metric: o.metric, library: 'usearch', rows });
  return descriptor;
}

/**
 * Adds (or replaces) an index entry in manifest.json. The merger wrote the manifest; this
 * read-modify-write goes through `put`, which is atomic (temp file + rename locally, one PUT on
 * S3), so a reader never sees a half-written manifest. Two `vecmill index` runs on one output at
 * the same moment may lose one entry (last writer wins); its sidecar stays and a rerun restores it.
 */
export async function recordIndex(store: ObjectStore, entry: ManifestIndexEntry): Promise<RetrievalManifest> {
  const manifest = await readManifest(store, retrievalManifestFormat);
  const others = (manifest.indexes ?? []).filter((e) => e.key !== entry.key);
  const updated: RetrievalManifest = { ...manifest, indexes: [...others, entry] };
  await store.put(outputKeys.manifest, Buffer.from(JSON.stringify(updated, null, 2)));
  return updated;
}

/** An index opened for searching. */
export interface OpenedIndex {
  readonly descriptor: IndexDescriptor;
  /** The k nearest rows of one float32 query, best first. */
  search(query: Float32Array, k: number): SearchHit[];
  close(): Promise<void>;
}

/** The index of `modality` and `metric` recorded in the manifest, or undefined when there is none. */
export function findIndex(output: PublishedOutput, modality: Modality, metric: Metric): ManifestIndexEntry | undefined {
  return output.manifest.indexes?.find((e) => e.modality === modality && e.metric === metric && e.library === 'usearch');
}

/**
 * Opens an index: memory-mapped in place for a local output, else downloaded to a temp file first
 * (usearch reads files by path). Refuses an index built for another run or model.
 */
export async function openHnswIndex(output: PublishedOutput, entry: ManifestIndexEntry): Promise<OpenedIndex> {
  const descriptor = JSON.parse((await output.store.read(entry.descriptor)).toString('utf8')) as IndexDescriptor;
  if (descriptor.runId !== output.manifest.runId || descriptor.modelFingerprint !== output.manifest.model.fingerprint.id) {
    throw new ConfigError(`index ${entry.key} was built for run ${descriptor.runId}, not ${output.manifest.runId}; rebuild it with \`vecmill index\``, { key: entry.key });
  }
  const index = new Index({
    dimensions: descriptor.dims,
    metric: descriptor.metric === 'cosine' ? MetricKind.Cos : MetricKind.IP,
    quantization: descriptor.quantization === 'f16' ? ScalarKind.F16 : ScalarKind.F32,
    connectivity: descriptor.connectivity,
    expansion_add: descriptor.expansionAdd,
    expansion_search: descriptor.expansionSearch,
    multi: false,
  });
  const local = output.store.localPath(descriptor.key);
  let tempDir: string | undefined;
  if (local !== undefined) {
    index.view(local);
  } else {
    tempDir = await mkdtemp(join(tmpdir(), 'vecmill-index-'));
    const file = join(tempDir, 'index.usearch');
    await writeFile(file, Readable.from(output.store.readRange(descriptor.key, 0, Number.MAX_SAFE_INTEGER)));
    index.load(file);
  }
  return {
    descriptor,
    search: (query, k) => searchIndex(index, descriptor.metric, query, k),
    close: async () => {
      if (tempDir !== undefined) await rm(tempDir, { recursive: true, force: true });
    },
  };
}

/** usearch reports distances (1 - similarity for cos and ip); hits carry similarities like exact search. */
function searchIndex(index: Index, metric: Metric, query: Float32Array, k: number): SearchHit[] {
  const matches = index.search(scoringRows(query, query.length, metric), k, 1);
  const out: SearchHit[] = [];
  for (let i = 0; i < matches.keys.length; i++) out.push({ id: BigInt.asIntN(64, matches.keys[i]!), score: 1 - matches.distances[i]! });
  return out;
}

/** recall@10 of the index against exact top-10 (one extra pass over the output) for the sampled queries. */
async function measureRecall(output: PublishedOutput, modality: Modality, metric: Metric, index: Index, queries: readonly Float32Array[]): Promise<number> {
  const d = output.dims;
  const all = new Float32Array(queries.length * d);
  queries.forEach((q, i) => all.set(q, i * d));
  const exact = new TopKCollector(scoringRows(all, d, metric), d, 10);
  for await (const block of output.blocks(modality)) exact.add(scoringRows(block.embeddings, d, metric), block.ids);
  let found = 0;
  let wanted = 0;
  queries.forEach((q, i) => {
    const truth = new Set(exact.hits(i).map((h) => h.id));
    wanted += truth.size;
    for (const hit of searchIndex(index, metric, q, 10)) if (truth.has(hit.id)) found++;
  });
  return wanted === 0 ? 0 : found / wanted;
}

/** usearch's exports map hides its package.json, so find it beside the resolved entry point. */
function usearchVersion(): string {
  const entry = createRequire(import.meta.url).resolve('usearch');
  const pkg = JSON.parse(readFileSync(join(dirname(entry), '..', '..', '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}
