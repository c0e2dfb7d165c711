import type { FamilyTraits } from '@vecmill/shared/model/model-family';
import type { TokenBatch } from './clip-tokenizer.js';
import type { Embedder } from './embedder.js';

/** What laying out token ids depends on: a few numbers read once from the tokenizer's files. */
export interface TokenLayoutOptions {
  /** Tokens per caption, special tokens included. */
  readonly contextLength: number;
  readonly padTokenId: number;
  /** When a batch may be padded only to its longest caption (see `FamilyTraits.trimming`). */
  readonly trimming: FamilyTraits['trimming'];
  /** The family attends to padding (SigLIP): the mask covers whole rows. */
  readonly attendsToPadding: boolean;
}

/**
 * Captions encoded in one flat layout, as tokenizer threads send them back (transferred, not
 * copied): caption `i` is `ids[starts[i] .. starts[i] + lengths[i])`, and its content hash (sha256
 * of its UTF-8 bytes) is `sha256[32 i .. 32 i + 32)` when hashes were asked for.
 */
export interface EncodedTexts {
  readonly ids: Int32Array;
  readonly starts: Int32Array;
  readonly lengths: Int32Array;
  readonly sha256: Uint8Array | undefined;
}

/** Index of a 64-bit integer's low 32-bit word in an Int32Array view of it (0 on little-endian hosts). */
const lowWord = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 0 : 1;

/**
 * Lays encoded captions out as the text graph wants them: padding, its length, the attention
 * mask's lengths. Separate from `ClipTokenizer` (which is one) because it needs none of the
 * tokenizer's vocabulary: the event loop gets it from a tokenizer thread without building a
 * tokenizer, which costs hundreds of milliseconds of blocking work per model.
 */
export class TokenLayout {
  readonly contextLength: number;
  readonly padTokenId: number;
  readonly trimming: FamilyTraits['trimming'];
  private readonly attendsToPadding: boolean;

  constructor(options: TokenLayoutOptions) {
    this.contextLength = options.contextLength;
    this.padTokenId = options.padTokenId;
    this.trimming = options.trimming;
    this.attendsToPadding = options.attendsToPadding;
  }

  /** What a tokenizer thread sends so the event loop can build the same layout. */
  get options(): TokenLayoutOptions {
    return { contextLength: this.contextLength, padTokenId: this.padTokenId, trimming: this.trimming, attendsToPadding: this.attendsToPadding };
  }

  /** Lays out already-encoded captions as one `[batch, seqLen]` tensor, padded as `ClipTokenizer.encodeBatch` does. */
  packBatch(encoded: readonly (readonly number[])[], padTo: number | undefined): TokenBatch {
    return this.packRows(flattenIds(encoded), Array.from(encoded, (_, i) => i), padTo);
  }

  /**
   * Lays out captions `which` of flat encoded captions (in that order) as one `[batch, seqLen]`
   * tensor, padded to `padTo` tokens, or to the longest of them when `padTo` is undefined. The ids
   * are written as the low 32-bit words of the int64 tensor, so no BigInt is made per token.
   */
  packRows(encoded: EncodedTexts, which: readonly number[], padTo: number | undefined): TokenBatch {
    let seqLen = padTo ?? 1;
    if (padTo === undefined) for (const i of which) seqLen = Math.max(seqLen, encoded.lengths[i] as number);
    const ids = new BigInt64Array(which.length * seqLen);
    const words = new Int32Array(ids.buffer);
    const lengths: number[] = [];
    let w = lowWord;
    for (const i of which) {
      const start = encoded.starts[i] as number;
      const n = Math.min(encoded.lengths[i] as number, seqLen);
      for (let j = 0; j < n; j++, w += 2) words[w] = encoded.ids[start + j] as number;
      for (let j = n; j < seqLen; j++, w += 2) words[w] = this.padTokenId;
      lengths.push(this.attendsToPadding ? seqLen : n);
    }
    return { ids, batch: which.length, seqLen, lengths };
  }

  /**
   * The padding length for a text graph: undefined (pad to the batch's longest caption) only when
   * trimming is asked for, the graph's sequence axis is dynamic, and the family makes it exact
   * with this graph (CLIP always; Chinese-CLIP when the graph takes the attention mask; SigLIP
   * never); else the graph's fixed length, else the context length.
   */
  padLength(trimText: boolean, graph: Pick<Embedder, 'textInput' | 'textTakesMask'>): number | undefined {
    const exact = this.trimming === 'always' || (this.trimming === 'with-mask' && graph.textTakesMask);
    return trimText && exact && graph.textInput.dynamic ? undefined : (graph.textInput.fixedLength ?? this.contextLength);
  }
}

/** The flat layout of captions encoded one by one (no hashes). */
export function flattenIds(encoded: readonly (readonly number[])[]): EncodedTexts {
  const lengths = Int32Array.from(encoded, (e) => e.length);
  const starts = new Int32Array(encoded.length);
  let total = 0;
  lengths.forEach((n, i) => {
    starts[i] = total;
    total += n;
  });
  const ids = new Int32Array(total);
  encoded.forEach((e, i) => ids.set(e, starts[i]));
  return { ids, starts, lengths, sha256: undefined };
}
