import { VecmillError } from '@vecmill/shared/errors';
import type { Modality } from '@vecmill/shared/formats/embedding-table';
import { float16ToFloat32 } from '@vecmill/shared/formats/float16';
import { l2NormalizeRows } from '@vecmill/worker/model/embedder';
import type { PublishedOutput } from './output-reader.js';

/** How two embeddings are compared: cosine (CLIP's own measure) or the raw inner product. */
export type Metric = 'cosine' | 'ip';

/** One hit of a search: a row id and its similarity (higher is closer). */
export interface SearchHit {
  readonly id: bigint;
  readonly score: number;
}

/**
 * Rows as float32, ready to score: float16 bit patterns are widened and, for cosine, rows are
 * L2-normalized. Never modifies `values` (it may be a view into a Parquet part).
 */
export function scoringRows(values: Float32Array | Uint16Array, dims: number, metric: Metric): Float32Array {
  const rows = values instanceof Uint16Array ? float16ToFloat32(values) : metric === 'cosine' ? values.slice() : values;
  return metric === 'cosine' ? l2NormalizeRows(rows, dims) : rows;
}

/** Dot product of row `a` of `as` with row `b` of `bs`. */
export function dotRows(as: Float32Array, a: number, bs: Float32Array, b: number, dims: number): number {
  let s = 0;
  const ao = a * dims;
  const bo = b * dims;
  for (let j = 0; j < dims; j++) s += as[ao + j]! * bs[bo + j]!;
  return s;
}

/**
 * The k best candidates for each of a set of queries, fed candidate blocks one at a time. Memory
 * is `queries × k` whatever the number of candidates, so exact search and evaluation stream over
 * millions of rows without a quadratic score matrix. Ties keep the earlier candidate.
 */
export class TopKCollector {
  private readonly scores: Float32Array;
  private readonly ids: BigInt64Array;
  private readonly filled: Int32Array;

  /** `queries` are float32 rows already prepared with `scoringRows`. */
  constructor(
    private readonly queries: Float32Array,
    private readonly dims: number,
    readonly k: number,
  ) {
    if (!Number.isInteger(k) || k <= 0) throw new VecmillError('E_INTERNAL', `top-k needs a positive integer k, got ${k}`);
    const n = queries.length / dims;
    this.scores = new Float32Array(n * k);
    this.ids = new BigInt64Array(n * k);
    this.filled = new Int32Array(n);
  }

  get queryCount(): number {
    return this.filled.length;
  }

  /** Scores every query against a block of prepared candidate rows with these ids. */
  add(candidates: Float32Array, ids: BigInt64Array): void {
    const d = this.dims;
    const k = this.k;
    for (let q = 0; q < this.filled.length; q++) {
      const base = q * k;
      for (let c = 0; c < ids.length; c++) {
        const s = dotRows(this.queries, q, candidates, c, d);
        let n = this.filled[q]!;
        if (n === k && s <= this.scores[base + k - 1]!) continue;
        // Insertion into a sorted list of k: k is small (10-100), so this beats a heap.
        let at = n < k ? n : k - 1;
        while (at > 0 && this.scores[base + at - 1]! < s) {
          this.scores[base + at] = this.scores[base + at - 1]!;
          this.ids[base + at] = this.ids[base + at - 1]!;
          at--;
        }
        this.scores[base + at] = s;
        this.ids[base + at] = ids[c]!;
        if (n < k) this.filled[q] = ++n;
      }
    }
  }

  /** The hits of query `q`, best first. */
  hits(q: number): SearchHit[] {
    const out: SearchHit[] = [];
    for (let i = 0; i < this.filled[q]!; i++) out.push({ id: this.ids[q * this.k + i]!, score: this.scores[q * this.k + i]! });
    return out;
  }
}

/**
 * Exact top-k over one modality of a published output: one pass over its parts, one part in
 * memory at a time. `queries` are float32 rows (`n × dims`), e.g. from the query embedder.
 */
export async function exactSearch(output: PublishedOutput, modality: Modality, queries: Float32Array, k: number, metric: Metric): Promise<SearchHit[][]> {
  const d = output.dims;
  const collector = new TopKCollector(scoringRows(queries, d, metric), d, k);
  for await (const block of output.blocks(modality)) collector.add(scoringRows(block.embeddings, d, metric), block.ids);
  return Array.from({ length: collector.queryCount }, (_, q) => collector.hits(q));
}
