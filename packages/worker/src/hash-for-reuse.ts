import { createHash } from 'node:crypto';
import type { ParsedBatch } from './parse-batch.js';

/**
 * Under `--reuse` the content hashes decide what is decoded and tokenized at all, so they are
 * computed here, before the lookup: of each image (decoded here on that path) and, when the run
 * has a text tower, of each valid row's caption (sha256 of its UTF-8 bytes). Without `--reuse`,
 * images are hashed by the preprocessing threads and captions by the tokenizer threads.
 */
export function hashForReuse(batch: ParsedBatch, options: { readonly text: boolean }): void {
  if (options.text) {
    batch.errors.forEach((e, r) => {
      const text = batch.text[r];
      if (e === null && text !== null && text !== undefined) batch.textSha256[r] = sha256(Buffer.from(text, 'utf8'));
    });
  }
  const { rows, bytes, decoded } = batch.images;
  if (decoded) rows.forEach((r, k) => (batch.imageSha256[r] = sha256(bytes[k] as Buffer)));
}

function sha256(bytes: Uint8Array): Uint8Array {
  return createHash('sha256').update(bytes).digest();
}
