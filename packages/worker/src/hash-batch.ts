import { createHash } from 'node:crypto';
import type { ParsedBatch } from './parse-batch.js';

/**
 * Records the content hash of each valid row's caption (when the run has a text tower) and of each
 * image decoded here: the keys `--reuse` finds earlier embeddings by, and columns of the output.
 * Images left to the preprocessing threads are hashed there, after their base64 is decoded.
 */
export function hashBatch(batch: ParsedBatch, options: { readonly text: boolean }): void {
  if (options.text) {
    batch.errors.forEach((e, r) => {
      const text = batch.text[r];
      if (e === null && text !== null && text !== undefined) batch.textSha256[r] = sha256(Buffer.from(text, 'utf8'));
    });
  }
  if (batch.images.decoded) batch.images.rows.forEach((r, k) => (batch.imageSha256[r] = sha256(batch.images.bytes[k] as Buffer)));
}

function sha256(bytes: Uint8Array): Uint8Array {
  return createHash('sha256').update(bytes).digest();
}
