/** Options of a ReadBufferPool; each has the default it documents. */
export interface ReadBufferPoolOptions {
  /** Size of each buffer, so the most a read fills at once. Default 1 MiB, as the local store's streams read. */
  readonly bufferBytes?: number;
  /**
   * Free buffers kept for later reads; more are dropped for the collector. Default 128: at least
   * what two splits in flight hold at once (a batch of image lines, up to 16 MiB, and the read
   * ahead: 96 buffers in all on the bench's image TSV). With 32, the buffers two splits released
   * at once were mostly dropped and made anew, a page fault per 4 KiB each time.
   */
  readonly maxFree?: number;
  /**
   * Buffers a lease tracks at once; past that it forgets the oldest, which is then never reused
   * (and is collected once its reader drops it), so a reader that never releases holds nothing
   * extra. Default 64.
   */
  readonly maxHeldPerLease?: number;
}

export const DEFAULT_READ_BUFFER_BYTES = 1 << 20;

/**
 * Buffers that local reads fill and later reads fill again. Reading a large TSV into a fresh
 * 1 MiB buffer per read cost, on the 2-core bench machine, a page fault for every 4 KiB of input
 * (the allocator maps each such buffer anew) and a garbage collection every few dozen megabytes
 * (V8 counts each buffer against its external-memory limit): together a tenth of the CPU of an
 * image run. A reader leases buffers by file position and releases them by position once it
 * holds no view of their bytes, so reuse never depends on when the collector runs.
 */
export class ReadBufferPool {
  readonly bufferBytes: number;
  private readonly maxFree: number;
  private readonly maxHeldPerLease: number;
  private readonly free: Buffer[] = [];

  constructor(options: ReadBufferPoolOptions = {}) {
    this.bufferBytes = options.bufferBytes ?? DEFAULT_READ_BUFFER_BYTES;
    this.maxFree = options.maxFree ?? 128;
    this.maxHeldPerLease = options.maxHeldPerLease ?? 64;
  }

  /** A lease for one reader of one object's range: positions are that object's. */
  lease(): ReadBufferLease {
    return new ReadBufferLease(this, this.maxHeldPerLease);
  }

  /** @internal A free buffer, or a new one. */
  get(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.bufferBytes);
  }

  /** @internal Takes back a buffer no reader holds a view of. */
  put(buffer: Buffer): void {
    if (this.free.length < this.maxFree) this.free.push(buffer);
  }
}

/**
 * One reader's buffers: the store takes one per read with the object range it is filled from,
 * and the reader releases every buffer whose bytes all lie before an offset once no view of them
 * is left (for the embed processor: once a batch's lines are decoded, tokenized and copied out).
 */
export class ReadBufferLease {
  private readonly pool: ReadBufferPool;
  private readonly maxHeld: number;
  private held: { readonly buffer: Buffer; readonly end: number }[] = [];

  constructor(pool: ReadBufferPool, maxHeld: number) {
    this.pool = pool;
    this.maxHeld = maxHeld;
  }

  /** Size of the buffers `take` hands out. */
  get bufferBytes(): number {
    return this.pool.bufferBytes;
  }

  /** A buffer of `length` bytes (at most `bufferBytes`) to fill with the object's bytes `[start, start + length)`. */
  take(start: number, length: number): Buffer {
    if (length > this.pool.bufferBytes) throw new RangeError(`a read buffer holds ${this.pool.bufferBytes} bytes, ${length} were asked for`);
    const buffer = this.pool.get();
    this.held.push({ buffer, end: start + length });
    if (this.held.length > this.maxHeld) this.held.shift();
    return buffer.subarray(0, length);
  }

  /**
   * Gives back the buffer `chunk` was read into (a view `take` handed out), whatever its offsets:
   * for a chunk its reader never exposed, as the bytes of a line it skips. Anything else is ignored.
   */
  reuse(chunk: Uint8Array): void {
    const at = this.held.findIndex((h) => h.buffer.buffer === chunk.buffer);
    if (at === -1) return;
    this.pool.put(this.held[at]!.buffer);
    this.held.splice(at, 1);
  }

  /** Gives back every buffer filled only from bytes before `offset`: the reader holds no view of them any more. */
  release(offset: number): void {
    const kept: { readonly buffer: Buffer; readonly end: number }[] = [];
    for (const h of this.held) {
      if (h.end <= offset) this.pool.put(h.buffer);
      else kept.push(h);
    }
    this.held = kept;
  }
}
