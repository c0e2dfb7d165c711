/**
 * Buffers for the large files of chunks (Parquet parts, `.npy` files), shared by the splits a
 * process embeds for one run: a chunk's files are built or copied into buffers taken here, which
 * its writer gives back once the chunk's uploads are done. The process then holds as many as
 * chunk files are built or uploaded at once (a few per split in flight) instead of allocating a
 * chunk's size again per file: garbage that outlives the young generation while it uploads, which
 * the collector then frees only in bursts of tens of megabytes.
 */
export class FileBufferPool {
  private readonly free: Uint8Array[] = [];

  /**
   * A buffer of at least `bytes` bytes: the smallest free one that fits, else a new one an eighth
   * larger, so that it also fits the next chunk's file of that kind, which may be a little larger.
   */
  take(bytes: number): Uint8Array {
    const i = this.free.findLastIndex((b) => b.byteLength >= bytes);
    return i < 0 ? new Uint8Array(Math.ceil(bytes * 1.125)) : this.free.splice(i, 1)[0]!;
  }

  /** Takes buffers back once nothing reads them; keeps the largest few, so a pool never grows past its busiest moment. */
  give(buffers: readonly Uint8Array[]): void {
    this.free.push(...buffers);
    this.free.sort((a, b) => b.byteLength - a.byteLength);
    this.free.length = Math.min(this.free.length, MAX_FREE_BUFFERS);
  }
}

/** Free buffers a pool keeps: per split in flight, a chunk's part and a `.npy` file per tower, for two splits. */
const MAX_FREE_BUFFERS = 6;
