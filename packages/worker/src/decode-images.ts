import type { ImagePreprocessor } from './model/image-preprocessor.js';
import { pixelBatch } from './model/image-preprocess.js';
import type { PixelBatch } from './model/pixel-batch.js';
import type { PixelBatchBuffers } from './model/pixel-batch-buffers.js';
import type { ParsedBatch } from './parse-batch.js';

/**
 * A batch's images as the vision tower's thread takes them: `pixels` holds one crop per row of
 * `rows`, in that order, at the start of a shared batch buffer. `release` gives the buffer back for
 * the next batches; call it once the inference that reads `pixels` has settled.
 */
export interface DecodedImages {
  readonly rows: number[];
  /** Undefined when no image of the batch decoded. */
  readonly pixels: PixelBatch | undefined;
  readonly release: () => void;
}

/** Decodes a batch's images (see createImageDecoder). */
export type ImageDecoder = (batch: ParsedBatch) => Promise<DecodedImages>;

/**
 * The decode step of the embed path: the preprocessing threads write a batch's crops straight
 * into a reused shared buffer (no copy, no allocation here), then the images that failed are
 * compacted away so they leave no gap. An image's own fault becomes its row's error; a dead
 * thread or a closed pool fails the attempt. Records each image's content hash when the threads
 * decoded its base64.
 */
export function createImageDecoder(images: ImagePreprocessor, buffers: PixelBatchBuffers): ImageDecoder {
  const per = buffers.bytesPerImage;
  return async function decodeImages(b) {
    const { rows, bytes, decoded } = b.images;
    const buffer = buffers.acquire();
    const release = (): void => buffers.release(buffer);
    let results;
    try {
      results = await images.preprocessBatch(bytes, !decoded, buffer);
    } catch (err) {
      release();
      throw err;
    }
    const decodedRows: number[] = [];
    results.forEach((result, slot) => {
      const row = rows[slot] as number;
      if ('error' in result) {
        b.errors[row] = { reason: result.error.reason, message: result.error.message };
        return;
      }
      if (!decoded) b.imageSha256[row] = result.sha256 ?? null;
      const write = decodedRows.length;
      if (write !== slot) buffer.copyWithin(write * per, slot * per, (slot + 1) * per);
      decodedRows.push(row);
    });
    if (decodedRows.length === 0) {
      release();
      return { rows: decodedRows, pixels: undefined, release: () => undefined };
    }
    return { rows: decodedRows, pixels: pixelBatch(images.spec, buffer, decodedRows.length), release };
  };
}
