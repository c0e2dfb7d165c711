import { RowError } from '@vecmill/shared/errors';
import type { ImagePreprocessor } from './model/image-preprocessor.js';
import { mapLimit } from './map-limit.js';
import type { ParsedBatch } from './parse-batch.js';

/** A batch's images as the vision tower takes them: `pixels` holds one CHW image per row of `rows`, in that order. */
export interface DecodedImages {
  readonly rows: number[];
  /** Undefined when no image of the batch decoded. */
  readonly pixels: Float32Array | undefined;
}

/** Decodes a batch's images (see createImageDecoder). */
export type ImageDecoder = (batch: ParsedBatch) => Promise<DecodedImages>;

/**
 * The decode step of the embed path: preprocesses a batch's images into one buffer, at most
 * `concurrency` in flight so every preprocessing thread stays busy, then compacts the buffer so
 * the images that failed leave no gap. An image's own fault becomes its row's error; a dead thread
 * or a closed pool fails the attempt. Records each image's content hash when the threads decoded
 * its base64.
 */
export function createImageDecoder(images: ImagePreprocessor, concurrency: number): ImageDecoder {
  const pixelsPerImage = 3 * images.spec.outHeight * images.spec.outWidth;
  return async function decodeImages(b) {
    const { rows, bytes, decoded } = b.images;
    const buffer = new Float32Array(bytes.length * pixelsPerImage);
    const okSlots = await mapLimit(bytes, concurrency, async (field, slot) => {
      try {
        if (decoded) await images.preprocessInto(field, buffer, slot * pixelsPerImage);
        else b.imageSha256[rows[slot] as number] = await images.preprocessBase64Into(field, buffer, slot * pixelsPerImage);
        return true;
      } catch (err) {
        if (!(err instanceof RowError)) throw err;
        b.errors[rows[slot] as number] = { reason: err.reason, message: err.message };
        return false;
      }
    });
    const decodedRows: number[] = [];
    let write = 0;
    okSlots.forEach((ok, slot) => {
      if (!ok) return;
      if (write !== slot) buffer.copyWithin(write * pixelsPerImage, slot * pixelsPerImage, (slot + 1) * pixelsPerImage);
      decodedRows.push(rows[slot] as number);
      write++;
    });
    return { rows: decodedRows, pixels: write === 0 ? undefined : buffer.subarray(0, write * pixelsPerImage) };
  };
}
