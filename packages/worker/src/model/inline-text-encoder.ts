import { createHash } from 'node:crypto';
import type { ClipTokenizer } from './clip-tokenizer.js';
import { flattenIds } from './token-layout.js';
import type { BatchTextEncoder, HashedTexts } from './tokenizer-pool.js';

/** Encodes and hashes on the calling thread: what the embed processor uses when it is given no tokenizer pool (tests, tools). */
export class InlineTextEncoder implements BatchTextEncoder {
  constructor(private readonly tokenizer: ClipTokenizer) {}

  async encodeTexts(texts: readonly string[]): Promise<HashedTexts> {
    const sha256 = new Uint8Array(32 * texts.length);
    texts.forEach((t, i) => sha256.set(createHash('sha256').update(t, 'utf8').digest(), 32 * i));
    return { ...flattenIds(texts.map((t) => this.tokenizer.encode(t))), sha256 };
  }
}
