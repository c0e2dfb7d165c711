import type { Modality } from '@vecmill/shared/formats/embedding-table';
import { exactSearch, type Metric } from './exact-search.js';
import { findIndex, openHnswIndex } from './hnsw-index.js';
import type { OutputRow, PublishedOutput } from './output-reader.js';

/** One query of `vecmill search`. */
export interface SearchRequest {
  /** The query's embedding (float32, one row), from QueryEmbedder. */
  readonly query: Float32Array;
  readonly k: number;
  /**
   * Which embeddings to search. Default: the image embeddings when the output has them (a text
   * query then finds pictures, CLIP's cross-modal use, as clip-retrieval does), else the text ones.
   * Pass `text` to find captions, e.g. a row by its own caption.
   */
  readonly modality?: Modality;
  /** Default cosine. */
  readonly metric?: Metric;
  /** Ignore an index and scan every row (default false). */
  readonly exact?: boolean;
}

/** A search hit with the row it points at. */
export interface SearchResultRow extends OutputRow {
  readonly score: number;
}

/** What a search did and found. */
export interface SearchResult {
  readonly modality: Modality;
  /** Key of the HNSW index used, or undefined for an exact scan. */
  readonly index: string | undefined;
  readonly hits: readonly SearchResultRow[];
}

/** The modality searched when the request names none: see SearchRequest.modality. */
export function defaultSearchModality(output: PublishedOutput): Modality {
  return output.modalities.includes('image') ? 'image' : 'text';
}

/** Top-k rows for one query: through the output's HNSW index for that modality when there is one, else exactly. */
export async function searchOutput(output: PublishedOutput, request: SearchRequest): Promise<SearchResult> {
  const modality = request.modality ?? defaultSearchModality(output);
  const metric = request.metric ?? 'cosine';
  output.requireModality(modality);
  const entry = request.exact === true ? undefined : findIndex(output, modality, metric);
  let hits;
  if (entry !== undefined) {
    const index = await openHnswIndex(output, entry);
    try {
      hits = index.search(request.query, request.k);
    } finally {
      await index.close();
    }
  } else {
    hits = (await exactSearch(output, modality, request.query, request.k, metric))[0] ?? [];
  }
  const rows = await output.rows(hits.map((h) => h.id));
  return { modality, index: entry?.key, hits: hits.map((h) => ({ ...rows.get(h.id)!, score: h.score })) };
}
