import { CommitError, VecmillError } from '@vecmill/shared/errors';
import { EmbeddingTable, EmbeddingTableBuilder, type EmbeddedBatch, type EmbeddingTableOptions } from '@vecmill/shared/formats/embedding-table';
import { MAX_SPLITS, outputKeys, readPlan, splitNameWidth } from '@vecmill/shared/run-plan';
import { IpcScratch } from '@vecmill/shared/formats/ipc-scratch';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { chunkFiles, type ChunkLayout } from './chunk-files.js';
import type { ChunkSlots } from './chunk-slots.js';
import { FileBufferPool } from './file-buffer-pool.js';
import type { StagedFile } from './shard-commit.js';

/** How large one chunk of a split may grow before its files are built and staged. */
export interface ShardChunkOptions {
  /** Rows per chunk file. Default 65,536. */
  readonly maxRows?: number;
  /**
   * Approximate in-memory bytes of a chunk (embeddings, hashes, strings), checked after each
   * batch. Default 4 MiB: about 1,340 rows of one 768-dim float32 tower, 1,000 of two 512-dim
   * ones. Every split in flight holds a chunk being filled (in buffers sized once for the cap plus
   * one batch) plus, while it is encoded and uploaded, its files (its Parquet part and `.npy` in
   * reused buffers); Parquet encoding runs in 32-bit WebAssembly, whose memory
   * never shrinks and grows to about five chunks, and it blocks the event loop. Measured on 78k
   * captions with a 768-dim tower: peak RSS 480 MiB at 16 MiB chunks (115 MiB of it WebAssembly),
   * 411 at 8, 324 at 4 (28 MiB WebAssembly), 317 at 2; a second split in flight adds about 16 MiB
   * at 4 MiB. Four times the parts of 16 MiB is the cost.
   */
  readonly maxBytes?: number;
}

/** The longest `.npy` header `npyHeader` writes (version 1, padded to 64 bytes). */
const NPY_HEADER_BYTES = 128;

/** Chunks close at whichever bound comes first; a split's memory never depends on its rows. */
export const DEFAULT_SHARD_CHUNK_OPTIONS: Required<ShardChunkOptions> = {
  maxRows: 65_536,
  maxBytes: 4 * 2 ** 20,
};

/** Where a writer stores its chunks and what they hold. */
export interface ShardWriterOptions {
  readonly splitIndex: number;
  /** Unique per attempt: goes into every staged key, so racing attempts never collide. */
  readonly attempt: string;
  readonly table: Omit<EmbeddingTableOptions, 'expectedRows'>;
  readonly chunk?: ShardChunkOptions;
  /**
   * The most rows one `append` takes (the embed processor's batch): with it, the builder is sized
   * once for a full chunk (the rows under the byte cap plus one batch) instead of growing by
   * doubling, which both overshoots and leaves the smaller buffers behind as garbage.
   */
  readonly batchRows?: number;
  /** Where chunks keep their Parquet part and `.npy` files: shared by the splits of a run (the embed processor's); a pool of its own when absent. */
  readonly fileBuffers?: FileBufferPool;
  /** Where chunks lay out their tables for parquet-wasm: shared by the splits of a run (encodes are synchronous); one of its own when absent. */
  readonly ipcScratch?: IpcScratch;
  /** How many chunks of the run are built and uploaded at once, shared by its splits; unbounded across splits when absent. */
  readonly chunkSlots?: ChunkSlots;
}

/**
 * Streams a split's rows into bounded chunks as they are embedded: rows go into one reused
 * `EmbeddingTableBuilder` until a chunk is full; the chunk's final files (`chunkFiles`: Parquet
 * part, `.npy` + metadata, errors, feature TSVs, as plan.json asks) are then built in memory and
 * staged under attempt-unique keys while the next chunk fills. A chunk's files are built only once
 * the previous chunk's uploads are done, so memory is one chunk's files whatever the split's size.
 * `finish` returns the staged files for the marker; `commitShard` promotes them to their final keys.
 */
export class ShardWriter {
  private readonly builder: EmbeddingTableBuilder;
  private readonly maxRows: number;
  private readonly maxBytes: number;
  private readonly done: StagedFile[] = [];
  private readonly fileBuffers: FileBufferPool;
  private readonly ipcScratch: IpcScratch;
  /** The `.npy` bytes of a full chunk: every buffer taken is at least this large, so buffers given back fit later chunks' files. */
  private readonly npyChunkBytes: number;
  private upload: Promise<void> | undefined;
  private layout: Promise<Omit<ChunkLayout, 'chunkIndex'>> | undefined;
  private chunks = 0;
  private lines = 0;
  private elapsed = 0;

  constructor(
    private readonly store: ObjectStore,
    private readonly options: ShardWriterOptions,
  ) {
    const { maxRows, maxBytes } = { ...DEFAULT_SHARD_CHUNK_OPTIONS, ...options.chunk };
    if (!Number.isInteger(maxRows) || maxRows <= 0 || !(maxBytes > 0)) {
      throw new VecmillError('E_INTERNAL', `shard chunks need positive bounds, got ${maxRows} rows and ${maxBytes} bytes`);
    }
    this.maxRows = maxRows;
    this.maxBytes = maxBytes;
    const underCap = Math.ceil(maxBytes / EmbeddingTableBuilder.minRowBytes(options.table)) - 1;
    const expectedRows = options.batchRows === undefined ? 1024 : underCap + options.batchRows;
    this.builder = new EmbeddingTableBuilder({ ...options.table, expectedRows: Math.min(maxRows, expectedRows) });
    this.fileBuffers = options.fileBuffers ?? new FileBufferPool();
    this.ipcScratch = options.ipcScratch ?? new IpcScratch();
    this.npyChunkBytes = NPY_HEADER_BYTES + Math.min(maxRows, expectedRows) * options.table.dims * (options.table.outDtype === 'float16' ? 2 : 4);
  }

  /** Milliseconds spent building chunk files and waiting for their uploads: the split's write stage. */
  get elapsedMs(): number {
    return this.elapsed;
  }

  /** Adds a batch of consecutive rows, closing chunks at the row bound exactly and at the byte bound after the batch. */
  async append(batch: EmbeddedBatch): Promise<void> {
    const rows = batch.lineIndex.length;
    for (let from = 0; from < rows; ) {
      const to = Math.min(rows, from + this.maxRows - this.builder.numRows);
      this.builder.appendBatch(from === 0 && to === rows ? batch : sliceBatch(batch, from, to, this.options.table.dims));
      from = to;
      if (this.builder.numRows >= this.maxRows || this.builder.byteLength >= this.maxBytes) await this.flush();
    }
  }

  /** Stages the last chunk and waits for every upload; the staged files, chunk by chunk in line order. */
  async finish(): Promise<StagedFile[]> {
    if (this.builder.numRows > 0) await this.flush();
    const t0 = performance.now();
    await this.upload;
    this.elapsed += performance.now() - t0;
    return [...this.done];
  }

  /** Names and formats come from the run's plan.json, read once per attempt. */
  private chunkLayout(): Promise<Omit<ChunkLayout, 'chunkIndex'>> {
    this.layout ??= readPlan(this.store).then((plan) => {
      if (plan === undefined) throw new CommitError(`split ${this.options.splitIndex}: ${outputKeys.plan} is missing in ${this.store.description}; the run cannot be committed`, { split: this.options.splitIndex });
      if (plan.splits.length > MAX_SPLITS) throw new CommitError(`run ${plan.runId} has ${plan.splits.length} splits, more than ${MAX_SPLITS}; plan it with a larger split size`, { runId: plan.runId });
      return { splitIndex: this.options.splitIndex, width: splitNameWidth(plan.splits.length), npy: plan.settings.formats.includes('npy'), tsv: plan.settings.formats.includes('tsv') };
    });
    return this.layout;
  }

  private async flush(): Promise<void> {
    const t0 = performance.now();
    // The previous chunk's uploads end before this chunk's files are built: its buffers are back
    // in the pool first, so a split holds one chunk's files at a time. They had the time this
    // chunk took to fill, so this rarely waits.
    await this.upload;
    const layout = { ...(await this.chunkLayout()), chunkIndex: this.chunks++ };
    // The slot is held from building the files until their uploads are done, whichever way.
    const release = (await this.options.chunkSlots?.acquire()) ?? (() => undefined);
    const table = new EmbeddingTable(this.builder.build());
    const taken: Uint8Array[] = [];
    const file = (bytes: number): Uint8Array => {
      const buffer = this.fileBuffers.take(Math.max(bytes, this.npyChunkBytes));
      taken.push(buffer);
      return buffer.subarray(0, bytes);
    };
    let files;
    try {
      files = await chunkFiles(table, this.lines, layout, { file, ipc: this.ipcScratch });
    } catch (err) {
      release();
      throw err;
    }
    this.lines += table.numRows;
    this.builder.reset();
    const staged = files.map((f) => ({ ...f, staged: outputKeys.staged(this.options.splitIndex, this.options.attempt, f.key) }));
    for (const { bytes, ...f } of staged) this.done.push({ ...f, bytes: bytes.byteLength });
    // The buffers go back once every upload of the chunk is done; after a failure some may still
    // be read by the others, so they are left to the garbage collector.
    this.upload = Promise.all(staged.map((f) => this.store.put(f.staged, f.bytes)))
      .then(() => this.fileBuffers.give(taken))
      .finally(release);
    // Marked handled here; `finish` or the next flush awaits it and rethrows its failure.
    this.upload.catch(() => undefined);
    this.elapsed += performance.now() - t0;
  }
}

/** Rows `[from, to)` of a batch, as views where the batch holds typed arrays. */
function sliceBatch(b: EmbeddedBatch, from: number, to: number, dims: number): EmbeddedBatch {
  const rows = <T>(a: ArrayLike<T> | readonly T[]): T[] => Array.prototype.slice.call(a, from, to) as T[];
  return {
    splitIndex: b.splitIndex,
    source: b.source,
    lineIndex: rows(b.lineIndex),
    offset: rows(b.offset),
    ...(b.text !== undefined ? { text: b.text.slice(from, to) } : {}),
    ...(b.textEmbedding !== undefined ? { textEmbedding: b.textEmbedding.subarray(from * dims, to * dims) } : {}),
    ...(b.imageEmbedding !== undefined ? { imageEmbedding: b.imageEmbedding.subarray(from * dims, to * dims) } : {}),
    ...(b.textSha256 !== undefined ? { textSha256: b.textSha256.slice(from, to) } : {}),
    ...(b.imageSha256 !== undefined ? { imageSha256: b.imageSha256.slice(from, to) } : {}),
    ...(b.errors !== undefined ? { errors: b.errors.slice(from, to) } : {}),
  };
}
