/**
 * A batch of images as preprocessing leaves them and the vision tower's thread receives them: each
 * image's crop as 8-bit RGB, interleaved (`height x width x 3` bytes, Hugging Face's zero padding
 * already in place), back to back in `crops`, and the table that turns each byte into the model's
 * float for its channel (rescale and normalize: 3 x 256 float32, channel-major). A quarter the size
 * of the float tensor, which only the thread that runs the model makes (`ChwTensor`): the batch
 * buffers shared between threads, page-faulted in once per run and held by every batch in flight,
 * are a quarter of what they were as floats.
 */
export interface PixelBatch {
  readonly crops: Uint8Array;
  readonly count: number;
  readonly height: number;
  readonly width: number;
  readonly table: Float32Array;
}

/** Bytes of one image's crop in a PixelBatch of `height x width` images. */
export function cropBytes(height: number, width: number): number {
  return 3 * height * width;
}

/** Images `[first, first + count)` of `batch`, over the same memory. */
export function slicePixelBatch(batch: PixelBatch, first: number, count: number): PixelBatch {
  const per = cropBytes(batch.height, batch.width);
  return { ...batch, crops: batch.crops.subarray(first * per, (first + count) * per), count };
}
