import { Tokenizer } from '@huggingface/tokenizers';
import { ModelError } from '../errors.js';

/**
 * Captions longer than this many UTF-16 units are cut before BPE: CLIP keeps 77 tokens, so a
 * megabyte caption would only burn CPU. 8192 units hold far more than 77 tokens of any real text.
 */
const maxCaptionChars = 8192;

/** Options for turning captions into the text tower's `input_ids`. */
export interface ClipTokenizerOptions {
  /** Tokens per caption, start and end tokens included (`text_config.max_position_embeddings`, 77 for CLIP). */
  readonly contextLength: number;
}

/** A batch of token ids laid out as the text graph wants them: row-major `[batch, seqLen]`. */
export interface TokenBatch {
  readonly ids: BigInt64Array;
  readonly batch: number;
  readonly seqLen: number;
  /** Tokens per caption before padding (end token included). */
  readonly lengths: readonly number[];
}

/**
 * CLIP tokenization over a model folder's `tokenizer.json`: start and end tokens, truncation that
 * keeps the end token last (the text tower pools at it), padding with the end token (what
 * OpenAI's tokenizer and HF's CLIP folders use; the tower reads only up to the first end token).
 */
export class ClipTokenizer {
  readonly contextLength: number;
  readonly endTokenId: number;
  readonly padTokenId: number;
  private readonly tokenizer: Tokenizer;

  constructor(tokenizerJson: unknown, tokenizerConfig: Readonly<Record<string, unknown>>, options: ClipTokenizerOptions) {
    if (typeof tokenizerJson !== 'object' || tokenizerJson === null) {
      throw new ModelError('tokenizer.json is not a JSON object; the model folder needs a Hugging Face tokenizer.json');
    }
    try {
      this.tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
    } catch (err) {
      throw new ModelError(`tokenizer.json cannot be loaded: ${(err as Error).message}`, {}, { cause: err });
    }
    const end = this.tokenizer.token_to_id('<|endoftext|>');
    if (end === undefined) throw new ModelError('tokenizer.json has no <|endoftext|> token; it is not a CLIP tokenizer');
    this.endTokenId = end;
    this.padTokenId = end;
    this.contextLength = options.contextLength;
  }

  /** Token ids of one caption, truncated to the context length with the end token kept last. */
  encode(text: string): number[] {
    const clipped = text.length > maxCaptionChars ? text.slice(0, maxCaptionChars) : text;
    const ids = this.tokenizer.encode(clipped).ids;
    if (ids.length <= this.contextLength) return ids;
    const cut = ids.slice(0, this.contextLength);
    cut[this.contextLength - 1] = this.endTokenId;
    return cut;
  }

  /**
   * Encodes a batch padded to `padTo` tokens, or to the batch's longest caption when `padTo` is
   * undefined (exact for CLIP's causal text tower; several times cheaper on short captions).
   */
  encodeBatch(texts: readonly string[], padTo: number | undefined): TokenBatch {
    return this.packBatch(texts.map((t) => this.encode(t)), padTo);
  }

  /** Lays out already-encoded captions as one `[batch, seqLen]` tensor, padded as `encodeBatch` does. */
  packBatch(encoded: readonly (readonly number[])[], padTo: number | undefined): TokenBatch {
    const lengths = encoded.map((e) => e.length);
    const seqLen = padTo ?? Math.max(1, ...lengths);
    const ids = new BigInt64Array(encoded.length * seqLen).fill(BigInt(this.padTokenId));
    encoded.forEach((row, i) => {
      for (let j = 0; j < row.length && j < seqLen; j++) ids[i * seqLen + j] = BigInt(row[j] ?? this.padTokenId);
    });
    return { ids, batch: encoded.length, seqLen, lengths };
  }
}
