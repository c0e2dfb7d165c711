import type { ClipTokenizer, TokenBatch } from './model/clip-tokenizer.js';
import type { BatchTextEncoder } from './model/tokenizer-pool.js';
import type { ParsedBatch } from './parse-batch.js';

/** One text model call: the batch rows it embeds and their token ids. */
export interface TextGroup {
  readonly rows: number[];
  readonly tokens: TokenBatch;
}

/** Tokenizes a batch's captions into text model calls (see createBatchTokenizer). */
export type BatchTokenizer = (batch: ParsedBatch) => Promise<TextGroup[]>;

/** What the tokenize step works with. */
export interface BatchTokenizerOptions {
  readonly tokenizer: ClipTokenizer;
  /** Encodes off the event loop when present; else `tokenizer` encodes here. */
  readonly textEncoder: BatchTextEncoder | undefined;
  /** Tokens per row, or undefined to pad each call to its longest caption. */
  readonly padTo: number | undefined;
  /** Rows per model call. */
  readonly batchSize: number;
}

/**
 * The tokenize step of the embed path: encodes the captions of valid rows not served by
 * `--reuse` and cuts them into model calls of `batchSize` rows. When calls are padded to their
 * longest caption, rows are first sorted by token length, so each call pads as little as possible.
 */
export function createBatchTokenizer(options: BatchTokenizerOptions): BatchTokenizer {
  const { tokenizer, textEncoder, padTo, batchSize } = options;
  return async function tokenizeBatch(b) {
    const rows = b.errors.flatMap((e, r) => (e === null && !b.reusedText.has(r) ? [r] : []));
    const texts = rows.map((r) => b.text[r] ?? '');
    const ids = textEncoder !== undefined && texts.length > 0 ? await textEncoder.encodeBatch(texts) : texts.map((t) => tokenizer.encode(t));
    const encoded = rows.map((row, i) => ({ row, ids: ids[i] as number[] }));
    if (padTo === undefined) encoded.sort((x, y) => x.ids.length - y.ids.length);
    const groups: TextGroup[] = [];
    for (let i = 0; i < encoded.length; i += batchSize) {
      const group = encoded.slice(i, i + batchSize);
      groups.push({ rows: group.map((g) => g.row), tokens: tokenizer.packBatch(group.map((g) => g.ids), padTo) });
    }
    return groups;
  };
}
