/**
 * Batch buffers in shared memory, reused from batch to batch: preprocessing threads write each
 * image's crop straight into its slot, so the main thread never copies pixels, and no batch-sized
 * buffer is allocated (page-faulted, zeroed, collected) per batch. Each buffer holds `batchImages`
 * crops of `bytesPerImage` bytes (see PixelBatch). Every buffer given back is kept, so as many exist
 * as were ever in use at once: two per split in flight (one batch preparing while the previous one
 * is in inference), which the queue's concurrency bounds. Keeping fewer made a new one, megabytes
 * to page-fault in, for most batches of a run with two splits in flight. A buffer never given back
 * (a failed attempt) is simply collected.
 */
export class PixelBatchBuffers {
  private readonly free: Uint8Array[] = [];

  constructor(
    readonly batchImages: number,
    readonly bytesPerImage: number,
  ) {}

  /** A whole buffer over a SharedArrayBuffer: a free one, or a new one when none is free. */
  acquire(): Uint8Array {
    return this.free.pop() ?? new Uint8Array(new SharedArrayBuffer(this.batchImages * this.bytesPerImage));
  }

  /** Takes a buffer back once nothing reads or writes it any more (its batch's inference has settled). */
  release(buffer: Uint8Array): void {
    if (!this.free.includes(buffer)) this.free.push(buffer);
  }
}
