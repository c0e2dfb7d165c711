import * as arrow from 'apache-arrow';
import * as parquet from 'parquet-wasm';
import { InputError, VecmillError } from '../errors.js';
import type { IpcScratch } from './ipc-scratch.js';

/** Page compression codec. */
export type ParquetCompression = 'zstd' | 'snappy' | 'none';

/** How `writeParquet` lays out a file. */
export interface ParquetWriteOptions {
  /** Default 'snappy': see DEFAULT_PARQUET_WRITE_OPTIONS for why. */
  readonly compression?: ParquetCompression;
  /** Rows per row group (default 65,536): bounds a reader's memory per group. */
  readonly rowGroupRows?: number;
}

/** How `readParquet` decodes a file. */
export interface ParquetReadOptions {
  /** Shown in error messages: the object key or path the bytes came from. */
  readonly name?: string;
}

/**
 * Snappy by default: embeddings are near-random floats that no codec shrinks much. Measured on
 * 100k rows × 2 × 512: snappy leaves float32 and float16 embeddings at ~100% of their raw size,
 * zstd at ~92%, but zstd writes 1.5–3× slower, and the merger's single pass must keep up with the
 * fleet. Choose zstd when storage cost matters more than merge time; `none` is for debugging.
 */
export const DEFAULT_PARQUET_WRITE_OPTIONS: Required<ParquetWriteOptions> = {
  compression: 'snappy',
  rowGroupRows: 65536,
};

const CODECS: Record<ParquetCompression, parquet.Compression> = {
  zstd: parquet.Compression.ZSTD,
  snappy: parquet.Compression.SNAPPY,
  none: parquet.Compression.UNCOMPRESSED,
};

/**
 * Encodes an Arrow table as one Parquet file in memory (Arrow IPC stream → parquet-wasm). The
 * Arrow schema travels in the file's metadata, so FixedSizeList<Float32|Float16> and dictionary
 * columns come back with the same types. The whole table passes through WebAssembly memory,
 * which never shrinks and tops out at 4 GiB: write tables of at most a few hundred MB (the
 * merger writes parts, not one giant file). With `scratch`, the IPC stream is laid out in its
 * reused memory instead of a new buffer of the table's size (see `IpcScratch`).
 */
export function writeParquet(table: arrow.Table, options: ParquetWriteOptions = {}, scratch?: IpcScratch): Uint8Array {
  const { compression, rowGroupRows } = { ...DEFAULT_PARQUET_WRITE_OPTIONS, ...options };
  if (!Number.isInteger(rowGroupRows) || rowGroupRows <= 0) {
    throw new VecmillError('E_INTERNAL', `rowGroupRows must be a positive integer, got ${rowGroupRows}`);
  }
  let builder = new parquet.WriterPropertiesBuilder()
    .setCompression(CODECS[compression])
    .setMaxRowGroupSize(rowGroupRows)
    .setCreatedBy('vecmill')
    .setStatisticsEnabled(parquet.EnabledStatistics.None)
    .setDictionaryEnabled(false);
  // Min/max statistics and dictionary pages on embedding values cost most of the write time
  // (measured: dictionary encoding alone made 20k x 2 x 512 float32 rows 6x slower) and gain
  // nothing on near-random floats; scalar columns keep both, so readers can skip row groups.
  // parquet-wasm can only address top-level columns, which are exactly the scalar ones.
  for (const field of table.schema.fields) {
    const nested = ((field.type as arrow.DataType).children?.length ?? 0) > 0;
    if (!nested) builder = builder.setColumnStatisticsEnabled(field.name, parquet.EnabledStatistics.Chunk).setColumnDictionaryEnabled(field.name, true);
  }
  const properties = builder.build();
  const wasmTable = parquet.Table.fromIPCStream(scratch?.streamOf(table) ?? arrow.tableToIPC(table, 'stream'));
  return parquet.writeParquet(wasmTable, properties);
}

/** The reader clamps the batch size to the file's row count, so this yields one batch per file without preallocating. */
const WHOLE_FILE_BATCH = 2 ** 31 - 1;

/**
 * Decodes a whole Parquet file into one Arrow table, reading all rows as a single record batch
 * so that embedding columns stay one contiguous buffer. Throws InputError when the bytes are not
 * a readable Parquet file.
 */
export function readParquet(bytes: Uint8Array, options: ParquetReadOptions = {}): arrow.Table {
  const name = options.name ?? 'Parquet data';
  let ipc: Uint8Array;
  try {
    const wasmTable = parquet.readParquet(bytes, { batchSize: WHOLE_FILE_BATCH });
    ipc = wasmTable.intoIPCStream();
  } catch (err) {
    throw new InputError(`${name} is not a readable Parquet file (${String(err)}): re-create it`, { name }, { cause: err });
  }
  return arrow.tableFromIPC(ipc);
}
