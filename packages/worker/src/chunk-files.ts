import { createHash } from 'node:crypto';
import { setImmediate } from 'node:timers/promises';
import * as arrow from 'apache-arrow';
import { CommitError } from '@vecmill/shared/errors';
import { COLUMNS, type EmbeddingTable, type Modality } from '@vecmill/shared/formats/embedding-table';
import { featureTsvLines } from '@vecmill/shared/formats/easynlp-tsv';
import { utf8Data } from '@vecmill/shared/formats/utf8-data';
import { npyHeader } from '@vecmill/shared/formats/npy-writer';
import type { IpcScratch } from '@vecmill/shared/formats/ipc-scratch';
import { writeParquet } from '@vecmill/shared/formats/parquet-io';
import { outputKeys, rowId, type FileRole } from '@vecmill/shared/run-plan';

/** Rows formatted as EasyNLP text between two turns of the event loop (32 × 768 floats is a few ms). */
const TSV_ROWS_PER_SLICE = 32;

/** Which final files a chunk gets and how they are named: fixed by the run's plan. */
export interface ChunkLayout {
  readonly splitIndex: number;
  readonly chunkIndex: number;
  /** `splitNameWidth` of the plan. */
  readonly width: number;
  /** The run asked for the clip-retrieval `.npy` + metadata layout. */
  readonly npy: boolean;
  /** The run asked for the EasyNLP feature TSVs. */
  readonly tsv: boolean;
}

/** Where `chunkFiles` puts a file of `bytes` bytes: exactly that many, valid until the caller reuses them. */
export type FileBuffer = (bytes: number) => Uint8Array;

/** Reused memory a chunk's files are built in, owned by the caller; what is absent is allocated per file. */
export interface ChunkBuffers {
  /**
   * The bytes of the chunk's large files: `.npy` files are built there, and its Parquet part,
   * which parquet-wasm hands out in a fresh array, is copied there at once, so that array dies
   * young instead of living on until the upload is done (see `FileBufferPool`).
   */
  readonly file?: FileBuffer;
  /** The Arrow IPC stream of each Parquet file on its way into parquet-wasm. */
  readonly ipc?: IpcScratch;
}

/** One final file of a chunk, built in memory (bounded by the chunk size) before it is staged. */
export interface ChunkFile {
  readonly role: FileRole;
  /** The key it is published under once its split is committed. */
  readonly key: string;
  readonly rows: number;
  readonly bytes: Uint8Array;
  readonly sha256: string;
}

/**
 * Everything a chunk of a split contributes to the published output, built at commit time so that
 * publishing never reads an embedding again: the Parquet part (with every row's stable id in
 * `row_index`), per modality the `.npy` of the rows that have every embedding plus their
 * clip-retrieval metadata, the errors of its failed rows, and the EasyNLP feature TSV part(s).
 * `firstLine` is the split line the chunk must start at: its rows must be lines
 * `firstLine, firstLine + 1, …` of `layout.splitIndex` in order (the basis of unique ids), or the
 * attempt fails before anything is staged. A chunk without ok rows gets no `.npy`/metadata, one
 * without failed rows no errors file. `buffers` is the caller's reused memory to build them in.
 */
export async function chunkFiles(chunk: EmbeddingTable, firstLine: number, layout: ChunkLayout, buffers: ChunkBuffers = {}): Promise<ChunkFile[]> {
  checkLines(chunk, firstLine, layout.splitIndex);
  const table = chunk.withRowIndex(Number(rowId(layout.splitIndex, firstLine)));
  const wanted: Modality[] = [...(table.hasImage ? (['image'] as const) : []), ...(table.hasText ? (['text'] as const) : [])];
  const file = (role: FileRole, rows: number, bytes: Uint8Array): ChunkFile => ({
    role,
    key: outputKeys.final(role, layout.splitIndex, layout.chunkIndex, layout.width),
    rows,
    bytes,
    sha256: createHash('sha256').update(bytes).digest('hex'),
  });
  const files: ChunkFile[] = [];
  // Each file is built and hashed in a turn of its own (a Parquet encode of a full chunk is tens
  // of ms), so a worker's event loop renews its BullMQ locks between them.
  const add = async (role: FileRole, rows: number, build: () => Uint8Array): Promise<void> => {
    files.push(file(role, rows, build()));
    await setImmediate();
  };
  await add('part', table.numRows, () => kept(writeParquet(table.table, {}, buffers.ipc), buffers.file));
  const ok = okRowIndexes(table, wanted);
  if (layout.npy && ok.length > 0) {
    for (const m of wanted) await add(m === 'image' ? 'npy-image' : 'npy-text', ok.length, () => npyBytes(table, m, ok, buffers.file));
    await add('metadata', ok.length, () => writeParquet(metadataTable(table, ok), {}, buffers.ipc));
  }
  const failed = table.numRows - okCount(table);
  if (failed > 0) await add('errors', failed, () => writeParquet(errorTable(table), {}, buffers.ipc));
  if (layout.tsv) {
    for (const m of wanted) {
      // Formatting floats as text is the slowest step: a few rows at a time, yielding between
      // them, so a worker's event loop keeps renewing its BullMQ locks during a large chunk.
      const pieces: Buffer[] = [];
      for (const lines of featureTsvLines(table, m, TSV_ROWS_PER_SLICE)) {
        pieces.push(Buffer.from(lines, 'utf8'));
        await setImmediate();
      }
      files.push(file(m === 'image' ? 'tsv-image' : 'tsv-text', table.numRows, Buffer.concat(pieces)));
    }
  }
  return files;
}

/** `bytes` copied into the caller's memory when it gives some, else `bytes` itself. */
function kept(bytes: Uint8Array, buffer: FileBuffer | undefined): Uint8Array {
  if (buffer === undefined) return bytes;
  const out = buffer(bytes.byteLength);
  out.set(bytes);
  return out;
}

/** Chunk rows must be lines `firstLine…` of the split, once each and in order: ids are then unique and gap-free. */
function checkLines(chunk: EmbeddingTable, firstLine: number, splitIndex: number): void {
  const lines = chunk.table.getChild(COLUMNS.lineIndex)!.toArray() as Int32Array;
  const splits = chunk.table.getChild(COLUMNS.splitIndex)!.toArray() as Int32Array;
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== firstLine + i || splits[i] !== splitIndex) {
      throw new CommitError(
        `split ${splitIndex}: chunk row ${i} is line ${lines[i]} of split ${splits[i]}, expected line ${firstLine + i} of split ${splitIndex} (duplicate or missing row); refusing to commit`,
        { split: splitIndex },
      );
    }
  }
}

function okCount(table: EmbeddingTable): number {
  const ok = table.statusOk();
  let n = 0;
  for (let i = 0; i < ok.length; i++) n += ok[i]!;
  return n;
}

/** Rows that have every embedding the run asked for: the rows the npy layout holds. */
function okRowIndexes(table: EmbeddingTable, wanted: readonly Modality[]): number[] {
  const present = new Uint8Array(table.numRows).fill(1);
  for (const m of wanted) {
    const p = table.present(m);
    for (let i = 0; i < p.length; i++) present[i]! &= p[i]!;
  }
  const out: number[] = [];
  for (let i = 0; i < present.length; i++) if (present[i] === 1) out.push(i);
  return out;
}

/**
 * A `.npy` file (header + little-endian rows) of the given rows' (ascending) embeddings, copying
 * each run of consecutive rows at once, into `buffer`'s memory when given.
 */
function npyBytes(table: EmbeddingTable, modality: Modality, rows: readonly number[], buffer: FileBuffer | undefined): Uint8Array {
  const all = table.embeddings(modality);
  const values = new Uint8Array(all.buffer, all.byteOffset, all.byteLength);
  const rowBytes = table.dims * all.BYTES_PER_ELEMENT;
  const header = npyHeader([rows.length, table.dims], table.dtype === 'float16' ? '<f2' : '<f4');
  const size = header.length + rows.length * rowBytes;
  const out = buffer?.(size) ?? new Uint8Array(size);
  out.set(header, 0);
  for (let j = 0; j < rows.length; ) {
    let k = j + 1;
    while (k < rows.length && rows[k] === rows[k - 1]! + 1) k++;
    out.set(values.subarray(rows[j]! * rowBytes, (rows[k - 1]! + 1) * rowBytes), header.length + j * rowBytes);
    j = k;
  }
  return out;
}

/**
 * clip-retrieval's metadata: one row per npy row, with the row's id to join back to the parts.
 * Built from the chunk's column buffers, not row by row: with every row ok (the usual chunk) the
 * caption column is the chunk's own.
 */
function metadataTable(table: EmbeddingTable, rows: readonly number[]): arrow.Table {
  const all = rows.length === table.numRows;
  const int64 = (name: string): BigInt64Array => {
    const values = table.table.getChild(name)!.toArray() as BigInt64Array;
    return all ? values : BigInt64Array.from(rows, (r) => values[r]!);
  };
  const text = table.table.getChild(COLUMNS.text)! as arrow.Vector<arrow.Utf8>;
  const caption = all && text.data.length === 1 ? text : arrow.makeVector(utf8Data(rows.map((r) => text.get(r))));
  const sources = stringsOf(table.table.getChild(COLUMNS.source)! as arrow.Vector<arrow.Dictionary<arrow.Utf8>>);
  return new arrow.Table({
    id: arrow.makeVector(int64(COLUMNS.rowIndex)),
    caption,
    source: arrow.makeVector(utf8Data(rows.map((r) => String(sources[r])))),
    offset: arrow.makeVector(int64(COLUMNS.offset)),
  });
}

/** Every row's value of a dictionary-encoded string column, decoding each dictionary once. */
function stringsOf(column: arrow.Vector<arrow.Dictionary<arrow.Utf8>>): (string | null)[] {
  const out: (string | null)[] = [];
  for (const chunk of column.data) {
    const words = chunk.dictionary?.toArray() as (string | null)[] | undefined;
    const indexes = chunk.values as ArrayLike<number>;
    for (let i = 0; i < chunk.length; i++) out.push(words === undefined || (chunk.nullCount > 0 && !chunk.getValid(i)) ? null : (words[indexes[i]!] ?? null));
  }
  return out;
}

/** The chunk's failed rows: id, where the line is, its caption and why it failed. */
function errorTable(table: EmbeddingTable): arrow.Table {
  const status = table.table.getChild(COLUMNS.status)!;
  const get = (name: string, i: number): unknown => table.table.getChild(name)!.get(i);
  const rows: number[] = [];
  for (let i = 0; i < table.numRows; i++) if (status.get(i) !== 'ok') rows.push(i);
  return new arrow.Table({
    id: arrow.makeVector(BigInt64Array.from(rows, (i) => BigInt(get(COLUMNS.rowIndex, i) as bigint))),
    source: arrow.vectorFromArray(rows.map((i) => String(get(COLUMNS.source, i))), new arrow.Utf8()),
    offset: arrow.makeVector(BigInt64Array.from(rows, (i) => BigInt(get(COLUMNS.offset, i) as bigint))),
    text: arrow.vectorFromArray(rows.map((i) => get(COLUMNS.text, i) as string | null), new arrow.Utf8()),
    error_reason: arrow.vectorFromArray(rows.map((i) => String(get(COLUMNS.errorReason, i))), new arrow.Utf8()),
    error_message: arrow.vectorFromArray(rows.map((i) => String(get(COLUMNS.errorMessage, i))), new arrow.Utf8()),
  });
}
