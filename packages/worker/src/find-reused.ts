import type { ParsedBatch } from './parse-batch.js';
import type { ReuseLookup } from './reuse-index.js';

/**
 * Looks every hashed row up in the previous output (`--reuse`); reused images are dropped from
 * the batch's images so they are never decoded.
 */
export async function findReused(reuse: ReuseLookup, b: ParsedBatch): Promise<void> {
  for (let r = 0; r < b.errors.length; r++) {
    const th = b.textSha256[r];
    if (th !== null && th !== undefined) {
      const v = await reuse.find('text', th);
      if (v !== undefined) b.reusedText.set(r, v);
    }
    const ih = b.imageSha256[r];
    if (ih !== null && ih !== undefined) {
      const v = await reuse.find('image', ih);
      if (v !== undefined) b.reusedImage.set(r, v);
    }
  }
  const { rows, bytes } = b.images;
  for (let k = rows.length - 1; k >= 0; k--) {
    if (b.reusedImage.has(rows[k] as number)) {
      rows.splice(k, 1);
      bytes.splice(k, 1);
    }
  }
}
