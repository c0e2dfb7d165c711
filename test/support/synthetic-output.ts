import { createHash } from 'node:crypto';
import { EmbeddingTableBuilder } from '@vecmill/shared/formats/embedding-table';
import { writeParquet } from '@vecmill/shared/formats/parquet-io';
import type { Manifest, ManifestFile } from '@vecmill/shared/manifest';
import { outputKeys, pad } from '@vecmill/shared/run-plan';
import { LocalStore } from '@vecmill/shared/storage/local-store';

/** Vectors to publish: row i gets row i of each matrix (`rows × dims`, float32). */
export interface SyntheticVectors {
  readonly dims: number;
  readonly image?: Float32Array;
  readonly text?: Float32Array;
  /** One caption per row (default `row {i}`). */
  readonly captions?: readonly string[];
  /** Rows per Parquet part (default 1000). */
  readonly rowsPerPart?: number;
}

/**
 * Publishes an output whose embeddings are given rather than computed, in the layout of manifest
 * version 1 (parts `embeddings/part-NNNNN.parquet`, ids 0…n-1: what the previous vecmill
 * published and nightly runs still reuse), so retrieval code is tested on known structure and on
 * the older layout; the real runs of the same tests cover version 2. `base` is the manifest of a real run (model, settings) that the synthetic one
 * copies, changing only what the vectors decide.
 */
export async function writeSyntheticOutput(dir: string, base: Manifest, v: SyntheticVectors): Promise<void> {
  const store = new LocalStore(dir);
  const any = v.image ?? v.text;
  if (any === undefined) throw new Error('give image or text vectors');
  const rows = any.length / v.dims;
  const perPart = v.rowsPerPart ?? 1000;
  const files: ManifestFile[] = [];
  for (let part = 0, start = 0; start < rows; part++, start += perPart) {
    const end = Math.min(rows, start + perPart);
    const b = new EmbeddingTableBuilder({ dims: v.dims, outDtype: 'float32', hasText: v.text !== undefined, hasImage: v.image !== undefined, expectedRows: end - start });
    for (let i = start; i < end; i++) {
      b.append({
        rowIndex: i,
        splitIndex: part,
        lineIndex: i - start,
        source: 'synthetic.tsv',
        offset: i * 100,
        text: v.captions?.[i] ?? `row ${i}`,
        textEmbedding: v.text?.slice(i * v.dims, (i + 1) * v.dims) ?? null,
        imageEmbedding: v.image?.slice(i * v.dims, (i + 1) * v.dims) ?? null,
        status: 'ok',
        errorReason: null,
        errorMessage: null,
      });
    }
    const bytes = writeParquet(b.build());
    const key = `embeddings/part-${pad(part, 5)}.parquet`;
    await store.put(key, bytes);
    files.push({ key, rows: end - start, bytes: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest('hex') });
  }
  const kind = v.image !== undefined && v.text !== undefined ? 'pairs' : v.image !== undefined ? 'image' : 'text';
  const manifest: Manifest = {
    ...base,
    version: 1,
    settings: { ...base.settings, kind, outDtype: 'float32' },
    dims: v.dims,
    dtype: 'float32',
    rows: { ...base.rows, in: rows, ok: rows, failed: 0, failedByReason: {} },
    files,
  };
  await store.put(outputKeys.manifest, Buffer.from(JSON.stringify(manifest, null, 2)));
  await store.put(outputKeys.success, Buffer.from(`${base.runId}\n`));
}

/** `rows` random unit vectors of `dims` values, deterministic for a seed. */
export function randomUnitVectors(rows: number, dims: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296 - 0.5;
  };
  const out = new Float32Array(rows * dims);
  for (let r = 0; r < rows; r++) {
    let norm = 0;
    for (let j = 0; j < dims; j++) {
      const x = next();
      out[r * dims + j] = x;
      norm += x * x;
    }
    const inv = 1 / Math.sqrt(norm);
    for (let j = 0; j < dims; j++) out[r * dims + j]! *= inv;
  }
  return out;
}
