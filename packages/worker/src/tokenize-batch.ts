import type { TokenBatch } from './model/clip-tokenizer.js';
import type { TokenLayout } from './model/token-layout.js';
import type { BatchTextEncoder, HashedTexts } from './model/tokenizer-pool.js';
import type { ParsedBatch } from './parse-batch.js';

/** One text model call: the batch rows it embeds and their token ids. */
export interface TextGroup {
  readonly rows: number[];
  readonly tokens: TokenBatch;
}

/** A batch's captions encoded: `texts` caption `i` belongs to batch row `rows[i]`. */
export interface EncodedBatchTexts {
  readonly rows: number[];
  readonly texts: HashedTexts;
}

/** The tokenize step (see createBatchTokenizer). */
export interface BatchTokenizer {
  /** Encodes and hashes the captions of the batch's valid rows not served by `--reuse`, and records their hashes in the batch. */
  encode(batch: ParsedBatch): Promise<EncodedBatchTexts>;
  /** The model calls for the encoded rows still valid once images are decoded. */
  group(batch: ParsedBatch, encoded: EncodedBatchTexts): TextGroup[];
}

/** What the tokenize step works with. */
export interface BatchTokenizerOptions {
  /** Lays the ids out for the model. */
  readonly tokenizer: TokenLayout;
  /** Encodes and hashes, off the event loop in production. */
  readonly textEncoder: BatchTextEncoder;
  /** Tokens per row, or undefined to pad each call to its longest caption. */
  readonly padTo: number | undefined;
  /** Rows per model call. */
  readonly batchSize: number;
}

/**
 * The tokenize step of the embed path, in two halves around image decoding, which can still turn
 * rows into error rows: `encode` sends the captions to the encoder in one call (ids and hashes
 * come back in flat arrays, no object per caption); `group` cuts the rows still to embed into
 * model calls of `batchSize` rows. When calls are padded to their longest caption, rows are
 * first sorted by token length, so each call pads as little as possible.
 */
export function createBatchTokenizer(options: BatchTokenizerOptions): BatchTokenizer {
  const { tokenizer, textEncoder, padTo, batchSize } = options;
  return {
    async encode(b) {
      const rows: number[] = [];
      const captions: string[] = [];
      b.errors.forEach((e, r) => {
        const text = b.text[r];
        if (e !== null || text === null || text === undefined || b.reusedText.has(r)) return;
        rows.push(r);
        captions.push(text);
      });
      const texts = await textEncoder.encodeTexts(captions);
      rows.forEach((r, i) => (b.textSha256[r] = texts.sha256.subarray(32 * i, 32 * i + 32)));
      return { rows, texts };
    },
    group(b, { rows, texts }) {
      const which: number[] = [];
      rows.forEach((r, i) => {
        if (b.errors[r] === null) which.push(i);
      });
      if (padTo === undefined) which.sort((x, y) => (texts.lengths[x] as number) - (texts.lengths[y] as number));
      const groups: TextGroup[] = [];
      for (let i = 0; i < which.length; i += batchSize) {
        const slice = which.slice(i, i + batchSize);
        groups.push({ rows: slice.map((k) => rows[k] as number), tokens: tokenizer.packRows(texts, slice, padTo) });
      }
      return groups;
    },
  };
}
