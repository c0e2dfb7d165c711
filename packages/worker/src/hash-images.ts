import { createHash } from 'node:crypto';
import type { ParsedBatch } from './parse-batch.js';

/**
 * Records the content hash of each image decoded here (the `--reuse` path, where the hash decides
 * whether the image is decoded at all). Images left to the preprocessing threads are hashed there,
 * after their base64 is decoded; captions are hashed by the tokenizer threads.
 */
export function hashImages(batch: ParsedBatch): void {
  const { rows, bytes, decoded } = batch.images;
  if (decoded) rows.forEach((r, k) => (batch.imageSha256[r] = createHash('sha256').update(bytes[k] as Buffer).digest()));
}
