import * as arrow from 'apache-arrow';
import { InputError, VecmillError } from '../errors.js';
import { float16ToFloat32, float32ToFloat16 } from './float16.js';
import { readParquet } from './parquet-io.js';
import { utf8Data } from './utf8-data.js';

/**
 * One embedded input row, as the row-wise API and `EmbeddingTable.row` see it. Shards and final
 * parts share one schema (below), so the merger can re-chunk shards into parts without
 * re-encoding anything.
 */
export interface EmbeddedRow {
  /**
   * The row's id, `splitIndex × 2^32 + lineIndex` (`rowId` in run-plan.ts): null while a chunk is
   * built, set with `EmbeddingTable.withRowIndex` when the worker builds the chunk's final files.
   */
  rowIndex: number | null;
  splitIndex: number;
  /** Index of the line within its split (0-based). */
  lineIndex: number;
  /** Object key / uri of the input file. */
  source: string;
  /** Byte offset of the line in that object. */
  offset: number;
  /** Caption; null for image-only inputs or when undecodable. */
  text: string | null;
  /** Length `dims`; null on error rows (stored as zeros) or when the table has no text embeddings. */
  textEmbedding: Float32Array | null;
  /** Length `dims`; null on error rows (stored as zeros) or when the table has no image embeddings. */
  imageEmbedding: Float32Array | null;
  status: 'ok' | 'error';
  errorReason: string | null;
  errorMessage: string | null;
}

/** Which element type the embedding columns store. */
export type EmbeddingDtype = 'float32' | 'float16';

/** The two embedding columns. */
export type Modality = 'text' | 'image';

/** Shape of an embedding table: fixed per run, identical for every shard and part. */
export interface EmbeddingTableOptions {
  /** Embedding width D. */
  readonly dims: number;
  /** float16 halves shard and output size; conversion happens once, in the worker. */
  readonly outDtype: EmbeddingDtype;
  /** False for image-only inputs: the `text_embedding` column is then omitted. */
  readonly hasText: boolean;
  /** False for text-only inputs: the `image_embedding` column is then omitted. */
  readonly hasImage: boolean;
  /** Rows to allocate for upfront (default 1024); growth doubles, so this only saves copies. */
  readonly expectedRows?: number;
}

/** Why one row failed; `RowError` from errors.ts fits this shape as is. */
export interface RowFailure {
  readonly reason: string;
  readonly message: string;
}

/**
 * A batch of consecutive model outputs from one split, handed over without per-row objects: the
 * embeddings stay one contiguous array of `length × dims` values, exactly as onnxruntime returns
 * them. The batch size is `lineIndex.length`.
 */
export interface EmbeddedBatch {
  readonly splitIndex: number;
  /** Line index of each row within the split. */
  readonly lineIndex: ArrayLike<number>;
  /** Input object all rows come from (a split never spans two objects). */
  readonly source: string;
  /** Byte offset of each row's line in `source`. */
  readonly offset: ArrayLike<number>;
  /** Caption per row; omitted when the input has none (all null). */
  readonly text?: readonly (string | null)[];
  /**
   * Row r at `[r × dims, (r + 1) × dims)`: float32 values, or float16 bit patterns when the model
   * already produces halves. Values at error rows are ignored: error rows store zero vectors.
   */
  readonly textEmbedding?: Float32Array | Uint16Array;
  readonly imageEmbedding?: Float32Array | Uint16Array;
  /**
   * sha256 of each row's caption (UTF-8) / decoded image bytes, null where the row has none:
   * content identity for `--reuse`, independent of where a row sits in which file.
   */
  readonly textSha256?: readonly (Uint8Array | null)[];
  readonly imageSha256?: readonly (Uint8Array | null)[];
  /** Failure per row (null/undefined for ok rows); omitted when every row is ok. */
  readonly errors?: readonly (RowFailure | null | undefined)[];
}

/** Column names, shared by writers, readers and the merger's queries. */
export const COLUMNS = {
  rowIndex: 'row_index',
  splitIndex: 'split_index',
  lineIndex: 'line_index',
  source: 'source',
  /** Not `offset`, which is a reserved word in SQL: DuckDB users would have to quote it. */
  offset: 'byte_offset',
  text: 'text',
  textEmbedding: 'text_embedding',
  imageEmbedding: 'image_embedding',
  textSha256: 'text_sha256',
  imageSha256: 'image_sha256',
  status: 'status',
  errorReason: 'error_reason',
  errorMessage: 'error_message',
} as const;

const STATUS_VALUES = ['ok', 'error'] as const;
const STATUS_OK = 0;
const STATUS_ERROR = 1;

function embeddingColumn(modality: Modality): string {
  return modality === 'text' ? COLUMNS.textEmbedding : COLUMNS.imageEmbedding;
}

function embeddingType(dims: number, dtype: EmbeddingDtype): arrow.FixedSizeList {
  const child = dtype === 'float16' ? new arrow.Float16() : new arrow.Float32();
  return new arrow.FixedSizeList(dims, new arrow.Field('item', child, false));
}

/** What decides an embedding table's columns: the towers it has, their width and element type. */
export type EmbeddingTableShape = Pick<EmbeddingTableOptions, 'dims' | 'outDtype' | 'hasText' | 'hasImage'>;

/**
 * The embedding table's schema, in column order: the one place it is written down. The builder
 * builds exactly these fields and readers check a file against the columns every shape has.
 *
 * - `row_index`: the row's id (see `EmbeddedRow.rowIndex`); `split_index`, `line_index`
 * - `source`: dictionary-encoded (one value per split); `byte_offset`
 * - `text`: the caption, null when the input has none
 * - `text_embedding` / `image_embedding`: fixed-size lists of D floats, only with their tower, and
 *   NOT nullable (Parquet `required`): error rows hold zero vectors, see EmbeddingColumnBuffer
 * - `status` (`ok` / `error`, dictionary-encoded), `error_reason`, `error_message`
 * - `text_sha256` / `image_sha256`: content hashes for `--reuse`, with their tower
 *
 * `split_index`, `line_index` and `byte_offset` are never null either; the other fields are
 * declared nullable, as every file written so far declares them.
 */
export function embeddingTableSchema(shape: EmbeddingTableShape): arrow.Schema {
  const field = (name: string, type: arrow.DataType, nullable = true): arrow.Field => new arrow.Field(name, type, nullable);
  const towers = (make: (m: Modality) => arrow.Field): arrow.Field[] => [...(shape.hasText ? [make('text')] : []), ...(shape.hasImage ? [make('image')] : [])];
  return new arrow.Schema([
    field(COLUMNS.rowIndex, new arrow.Int64()),
    field(COLUMNS.splitIndex, new arrow.Int32(), false),
    field(COLUMNS.lineIndex, new arrow.Int32(), false),
    field(COLUMNS.source, new arrow.Dictionary(new arrow.Utf8(), new arrow.Int32())),
    field(COLUMNS.offset, new arrow.Int64(), false),
    field(COLUMNS.text, new arrow.Utf8()),
    ...towers((m) => field(embeddingColumn(m), embeddingType(shape.dims, shape.outDtype), false)),
    field(COLUMNS.status, new arrow.Dictionary(new arrow.Utf8(), new arrow.Int8())),
    field(COLUMNS.errorReason, new arrow.Utf8()),
    field(COLUMNS.errorMessage, new arrow.Utf8()),
    ...towers((m) => field(m === 'text' ? COLUMNS.textSha256 : COLUMNS.imageSha256, new arrow.FixedSizeBinary(32))),
  ]);
}

/** The columns every embedding table has, whatever its towers: what a reader checks first. */
const BASE_COLUMNS = embeddingTableSchema({ dims: 1, outDtype: 'float32', hasText: false, hasImage: false }).fields.map((f) => f.name);

function internal(message: string): VecmillError {
  return new VecmillError('E_INTERNAL', message);
}

/** Copies float32 or float16 values into `dst`, converting when the element types differ. */
function copyConverting(src: Float32Array | Uint16Array, dst: Float32Array | Uint16Array): void {
  if (dst instanceof Uint16Array) {
    if (src instanceof Uint16Array) dst.set(src);
    else float32ToFloat16(src, dst);
  } else if (src instanceof Float32Array) {
    dst.set(src);
  } else {
    float16ToFloat32(src, dst);
  }
}

/**
 * A growable values buffer for one FixedSizeList embedding column. The column has no validity
 * bitmap: Arrow C++ (pyarrow, pandas, embedding-reader, autofaiss) cannot read a null entry of a
 * FixedSizeList column from Parquet (apache/arrow#35692), so error rows hold zero vectors and the
 * row's `status` says which vectors are meaningful.
 */
class EmbeddingColumnBuffer {
  private values: Float32Array | Uint16Array;

  constructor(
    private readonly dims: number,
    private readonly dtype: EmbeddingDtype,
    capacity: number,
  ) {
    this.values = this.allocate(capacity);
  }

  private allocate(rows: number): Float32Array | Uint16Array {
    return this.dtype === 'float16' ? new Uint16Array(rows * this.dims) : new Float32Array(rows * this.dims);
  }

  grow(capacity: number): void {
    const values = this.allocate(capacity);
    values.set(this.values);
    this.values = values;
  }

  /**
   * Copies a whole batch into rows `[start, start + ok.length)` with one copy or conversion,
   * then zeroes the rows whose `ok` is 0, so error rows are deterministic zero vectors.
   */
  putBatch(start: number, source: Float32Array | Uint16Array, ok: Uint8Array): void {
    const d = this.dims;
    copyConverting(source, this.values.subarray(start * d, (start + ok.length) * d));
    for (let r = 0; r < ok.length; r++) if (ok[r] !== 1) this.values.fill(0, (start + r) * d, (start + r + 1) * d);
  }

  /** Writes one row's embedding into slot `row`, or a zero vector when it has none. */
  putRow(row: number, source: Float32Array | null): void {
    const slot = this.values.subarray(row * this.dims, (row + 1) * this.dims);
    if (source === null) slot.fill(0);
    else copyConverting(source, slot);
  }

  toData(length: number, type: arrow.FixedSizeList): arrow.Data<arrow.FixedSizeList> {
    const child = arrow.makeData({
      type: type.children[0]!.type as arrow.Float,
      length: length * this.dims,
      data: this.values.subarray(0, length * this.dims),
    });
    return arrow.makeData({ type, length, nullCount: 0, child });
  }
}

/** A growable nullable FixedSizeBinary(32) column of content hashes. */
class HashColumnBuffer {
  private values: Uint8Array;
  private validity: Uint8Array;
  private nullCount = 0;

  constructor(capacity: number) {
    this.values = new Uint8Array(capacity * 32);
    this.validity = new Uint8Array(Math.ceil(capacity / 8));
  }

  grow(capacity: number): void {
    const values = new Uint8Array(capacity * 32);
    values.set(this.values);
    this.values = values;
    const validity = new Uint8Array(Math.ceil(capacity / 8));
    validity.set(this.validity);
    this.validity = validity;
  }

  /** Forgets every row, keeping the buffers. */
  reset(): void {
    this.validity.fill(0);
    this.nullCount = 0;
  }

  put(row: number, hash: Uint8Array | null | undefined): void {
    if (hash === null || hash === undefined) {
      this.nullCount++;
      return;
    }
    if (hash.length !== 32) throw internal(`a sha256 has 32 bytes, got ${hash.length}`);
    this.values.set(hash, row * 32);
    this.validity[row >> 3]! |= 1 << (row & 7);
  }

  toData(length: number): arrow.Data<arrow.FixedSizeBinary> {
    return arrow.makeData({
      type: new arrow.FixedSizeBinary(32),
      length,
      nullCount: this.nullCount,
      nullBitmap: this.nullCount === 0 ? null : this.validity.subarray(0, Math.ceil(length / 8)),
      data: this.values.subarray(0, length * 32),
    });
  }
}

/**
 * Builds one embedding table column by column into preallocated typed arrays, so a chunk of
 * 65k rows costs a few large copies instead of 65k small objects. It holds what it is given: a
 * caller that streams (the embed processor) builds a bounded chunk, encodes it, then `reset()`s
 * the builder and fills the same buffers again, so memory never grows with a split's rows.
 * Its columns are `embeddingTableSchema`'s.
 */
export class EmbeddingTableBuilder {
  private capacity: number;
  private length = 0;
  private rowIndex: BigInt64Array;
  private rowIndexValid: Uint8Array;
  private rowIndexNulls = 0;
  private splitIndex: Int32Array;
  private lineIndex: Int32Array;
  private sourceIndex: Int32Array;
  private readonly sourceIds = new Map<string, number>();
  private bytes = 0;
  private readonly fixedRowBytes: number;
  private offset: Float64Array;
  private status: Int8Array;
  private readonly text: (string | null)[] = [];
  private readonly errorReason: (string | null)[] = [];
  private readonly errorMessage: (string | null)[] = [];
  private readonly textColumn: EmbeddingColumnBuffer | undefined;
  private readonly imageColumn: EmbeddingColumnBuffer | undefined;
  private readonly textHashes: HashColumnBuffer | undefined;
  private readonly imageHashes: HashColumnBuffer | undefined;
  private built = false;

  constructor(private readonly options: EmbeddingTableOptions) {
    if (!Number.isInteger(options.dims) || options.dims <= 0) {
      throw internal(`embedding table dims must be a positive integer, got ${options.dims}`);
    }
    const capacity = Math.max(1, options.expectedRows ?? 1024);
    this.capacity = capacity;
    this.rowIndex = new BigInt64Array(capacity);
    this.rowIndexValid = new Uint8Array(Math.ceil(capacity / 8));
    this.splitIndex = new Int32Array(capacity);
    this.lineIndex = new Int32Array(capacity);
    this.sourceIndex = new Int32Array(capacity);
    this.offset = new Float64Array(capacity);
    this.status = new Int8Array(capacity);
    this.textColumn = options.hasText ? new EmbeddingColumnBuffer(options.dims, options.outDtype, capacity) : undefined;
    this.imageColumn = options.hasImage ? new EmbeddingColumnBuffer(options.dims, options.outDtype, capacity) : undefined;
    this.textHashes = options.hasText ? new HashColumnBuffer(capacity) : undefined;
    this.imageHashes = options.hasImage ? new HashColumnBuffer(capacity) : undefined;
    this.fixedRowBytes = EmbeddingTableBuilder.minRowBytes(options);
  }

  /**
   * The bytes `byteLength` counts for a row at the least (one without text or error): so a chunk
   * that closes at a byte cap never holds more than `cap / minRowBytes` rows plus its last batch,
   * which is how `ShardWriter` sizes its builder once instead of growing it.
   */
  static minRowBytes(shape: EmbeddingTableShape): number {
    const towers = (shape.hasText ? 1 : 0) + (shape.hasImage ? 1 : 0);
    // row_index, split/line index, source id, offset, status, then per tower a vector and a hash.
    return 8 + 4 + 4 + 4 + 8 + 1 + towers * (shape.dims * (shape.outDtype === 'float16' ? 2 : 4) + 32);
  }

  /** Rows appended so far. */
  get numRows(): number {
    return this.length;
  }

  /**
   * About how many bytes the rows appended so far occupy (fixed-width columns plus the UTF-16
   * length of the strings): what a streaming caller compares with its chunk byte cap.
   */
  get byteLength(): number {
    return this.bytes;
  }

  /**
   * Empties the builder for the next chunk, keeping its buffers (no reallocation once they have
   * grown to a chunk's size). Call it only once the table `build()` returned is no longer used:
   * that table shares these buffers.
   */
  reset(): void {
    this.length = 0;
    this.bytes = 0;
    this.built = false;
    this.rowIndexValid.fill(0);
    this.rowIndexNulls = 0;
    this.sourceIds.clear();
    this.text.length = 0;
    this.errorReason.length = 0;
    this.errorMessage.length = 0;
    this.textHashes?.reset();
    this.imageHashes?.reset();
  }

  private ensureCapacity(extra: number): void {
    if (this.built) throw internal('rows were appended to an embedding table after build(), which shares its buffers');
    const needed = this.length + extra;
    if (needed <= this.capacity) return;
    let capacity = this.capacity * 2;
    while (capacity < needed) capacity *= 2;
    const grow = <T extends BigInt64Array | Int32Array | Float64Array | Int8Array | Uint8Array>(old: T, make: (n: number) => T, n: number): T => {
      const next = make(n);
      next.set(old as never);
      return next;
    };
    this.rowIndex = grow(this.rowIndex, (n) => new BigInt64Array(n), capacity);
    this.rowIndexValid = grow(this.rowIndexValid, (n) => new Uint8Array(n), Math.ceil(capacity / 8));
    this.splitIndex = grow(this.splitIndex, (n) => new Int32Array(n), capacity);
    this.lineIndex = grow(this.lineIndex, (n) => new Int32Array(n), capacity);
    this.sourceIndex = grow(this.sourceIndex, (n) => new Int32Array(n), capacity);
    this.offset = grow(this.offset, (n) => new Float64Array(n), capacity);
    this.status = grow(this.status, (n) => new Int8Array(n), capacity);
    this.textColumn?.grow(capacity);
    this.imageColumn?.grow(capacity);
    this.textHashes?.grow(capacity);
    this.imageHashes?.grow(capacity);
    this.capacity = capacity;
  }

  private sourceId(source: string): number {
    let id = this.sourceIds.get(source);
    if (id === undefined) {
      id = this.sourceIds.size;
      this.sourceIds.set(source, id);
    }
    return id;
  }

  private checkEmbeddingLength(name: string, values: Float32Array | Uint16Array | undefined, rows: number, present: boolean): void {
    if (!present) {
      if (values !== undefined) throw internal(`batch has ${name} but the table was built without that column`);
      return;
    }
    if (values === undefined) throw internal(`batch lacks ${name}, which this table requires`);
    if (values.length !== rows * this.options.dims) {
      throw internal(`batch ${name} holds ${values.length} values, expected ${rows} rows × ${this.options.dims}`);
    }
  }

  /** Appends a whole model batch; see `EmbeddedBatch` for the layout. */
  appendBatch(batch: EmbeddedBatch): void {
    const rows = batch.lineIndex.length;
    if (batch.offset.length !== rows) throw internal(`batch has ${rows} line indexes but ${batch.offset.length} offsets`);
    if (batch.text !== undefined && batch.text.length !== rows) throw internal(`batch has ${rows} rows but ${batch.text.length} texts`);
    if (batch.errors !== undefined && batch.errors.length !== rows) throw internal(`batch has ${rows} rows but ${batch.errors.length} error slots`);
    this.checkEmbeddingLength('textEmbedding', batch.textEmbedding, rows, this.textColumn !== undefined);
    this.checkEmbeddingLength('imageEmbedding', batch.imageEmbedding, rows, this.imageColumn !== undefined);
    this.ensureCapacity(rows);
    const source = this.sourceId(batch.source);
    const start = this.length;
    this.splitIndex.fill(batch.splitIndex, start, start + rows);
    this.sourceIndex.fill(source, start, start + rows);
    this.rowIndexNulls += rows;
    const ok = new Uint8Array(rows);
    for (let r = 0; r < rows; r++) {
      const row = start + r;
      this.lineIndex[row] = batch.lineIndex[r]!;
      this.offset[row] = batch.offset[r]!;
      const text = batch.text?.[r] ?? null;
      this.text.push(text);
      this.bytes += this.fixedRowBytes + (text?.length ?? 0);
      this.textHashes?.put(row, batch.textSha256?.[r]);
      this.imageHashes?.put(row, batch.imageSha256?.[r]);
      const failure = batch.errors?.[r];
      if (failure === undefined || failure === null) {
        ok[r] = 1;
        this.status[row] = STATUS_OK;
        this.errorReason.push(null);
        this.errorMessage.push(null);
      } else {
        this.status[row] = STATUS_ERROR;
        this.errorReason.push(failure.reason);
        this.errorMessage.push(failure.message);
        this.bytes += failure.reason.length + failure.message.length;
      }
    }
    if (batch.textEmbedding !== undefined) this.textColumn?.putBatch(start, batch.textEmbedding, ok);
    if (batch.imageEmbedding !== undefined) this.imageColumn?.putBatch(start, batch.imageEmbedding, ok);
    this.length += rows;
  }

  /** Appends one row; for tests, tools and error rows produced outside a model batch. */
  append(row: EmbeddedRow): void {
    const d = this.options.dims;
    for (const [name, values, column] of [
      ['textEmbedding', row.textEmbedding, this.textColumn],
      ['imageEmbedding', row.imageEmbedding, this.imageColumn],
    ] as const) {
      if (values === null) {
        if (column !== undefined && row.status === 'ok') throw internal(`an ok row must have ${name}: only error rows go without (they store zeros)`);
        continue;
      }
      if (column === undefined) throw internal(`row has ${name} but the table was built without that column`);
      if (values.length !== d) throw internal(`row ${name} has ${values.length} values, expected ${d}`);
    }
    this.ensureCapacity(1);
    const at = this.length;
    if (row.rowIndex === null) {
      this.rowIndexNulls++;
    } else {
      this.rowIndex[at] = BigInt(row.rowIndex);
      this.rowIndexValid[at >> 3]! |= 1 << (at & 7);
    }
    this.splitIndex[at] = row.splitIndex;
    this.lineIndex[at] = row.lineIndex;
    this.sourceIndex[at] = this.sourceId(row.source);
    this.offset[at] = row.offset;
    this.status[at] = row.status === 'ok' ? STATUS_OK : STATUS_ERROR;
    this.text.push(row.text);
    this.errorReason.push(row.errorReason);
    this.errorMessage.push(row.errorMessage);
    this.bytes += this.fixedRowBytes + (row.text?.length ?? 0) + (row.errorReason?.length ?? 0) + (row.errorMessage?.length ?? 0);
    this.textColumn?.putRow(at, row.textEmbedding);
    this.imageColumn?.putRow(at, row.imageEmbedding);
    this.textHashes?.put(at, null);
    this.imageHashes?.put(at, null);
    this.length++;
  }

  /** The rows appended so far as one record batch. The builder must not be used afterwards. */
  build(): arrow.Table {
    this.built = true;
    const n = this.length;
    const int64 = (values: Float64Array): BigInt64Array => {
      const out = new BigInt64Array(n);
      for (let i = 0; i < n; i++) out[i] = BigInt(values[i]!);
      return out;
    };
    const schema = embeddingTableSchema(this.options);
    const type = (name: string): arrow.DataType => schema.fields.find((f) => f.name === name)!.type as arrow.DataType;
    const columns: Record<string, arrow.Data> = {
      [COLUMNS.rowIndex]: arrow.makeData({
        type: type(COLUMNS.rowIndex) as arrow.Int64,
        length: n,
        nullCount: this.rowIndexNulls,
        nullBitmap: this.rowIndexNulls === 0 ? null : this.rowIndexValid.subarray(0, Math.ceil(n / 8)),
        data: this.rowIndex.subarray(0, n),
      }),
      [COLUMNS.splitIndex]: arrow.makeData({ type: type(COLUMNS.splitIndex) as arrow.Int32, length: n, data: this.splitIndex.subarray(0, n) }),
      [COLUMNS.lineIndex]: arrow.makeData({ type: type(COLUMNS.lineIndex) as arrow.Int32, length: n, data: this.lineIndex.subarray(0, n) }),
      [COLUMNS.source]: arrow.makeData({
        type: type(COLUMNS.source) as arrow.Dictionary<arrow.Utf8, arrow.Int32>,
        length: n,
        data: this.sourceIndex.subarray(0, n),
        dictionary: arrow.vectorFromArray([...this.sourceIds.keys()], new arrow.Utf8()),
      }),
      [COLUMNS.offset]: arrow.makeData({ type: type(COLUMNS.offset) as arrow.Int64, length: n, data: int64(this.offset.subarray(0, n)) }),
      [COLUMNS.text]: utf8Data(this.text),
      [COLUMNS.status]: arrow.makeData({
        type: type(COLUMNS.status) as arrow.Dictionary<arrow.Utf8, arrow.Int8>,
        length: n,
        data: this.status.subarray(0, n),
        dictionary: arrow.vectorFromArray([...STATUS_VALUES], new arrow.Utf8()),
      }),
      [COLUMNS.errorReason]: utf8Data(this.errorReason),
      [COLUMNS.errorMessage]: utf8Data(this.errorMessage),
    };
    if (this.textColumn !== undefined) columns[COLUMNS.textEmbedding] = this.textColumn.toData(n, type(COLUMNS.textEmbedding) as arrow.FixedSizeList);
    if (this.imageColumn !== undefined) columns[COLUMNS.imageEmbedding] = this.imageColumn.toData(n, type(COLUMNS.imageEmbedding) as arrow.FixedSizeList);
    if (this.textHashes !== undefined) columns[COLUMNS.textSha256] = this.textHashes.toData(n);
    if (this.imageHashes !== undefined) columns[COLUMNS.imageSha256] = this.imageHashes.toData(n);
    const children = schema.fields.map((f) => columns[f.name]!);
    const batch = new arrow.RecordBatch(schema, arrow.makeData({ type: new arrow.Struct(schema.fields), length: n, nullCount: 0, children }));
    return new arrow.Table(schema, [batch]);
  }
}

/**
 * Typed, copy-free access to an embedding table (a shard or a part) for the merger and
 * `vecmill inspect`. Embedding ranges come straight from the FixedSizeList child buffers; a copy
 * happens only when a range spans two record batches.
 */
export class EmbeddingTable {
  readonly numRows: number;
  readonly dims: number;
  readonly dtype: EmbeddingDtype;
  readonly hasText: boolean;
  readonly hasImage: boolean;

  /**
   * Wraps an Arrow table after checking it has the embedding-table schema, so that a stray or
   * foreign Parquet file fails here with its name instead of deep inside the merger. `name` (an
   * object key) is only used in that InputError.
   */
  constructor(
    readonly table: arrow.Table,
    name = 'table',
  ) {
    const invalid = (detail: string): InputError =>
      new InputError(`${name} is not a vecmill embedding table (${detail}): re-create it with this version of vecmill`, { name });
    for (const column of BASE_COLUMNS) {
      if (table.getChild(column) === null) throw invalid(`column ${column} is missing`);
    }
    this.numRows = table.numRows;
    this.hasText = table.getChild(COLUMNS.textEmbedding) !== null;
    this.hasImage = table.getChild(COLUMNS.imageEmbedding) !== null;
    const shapes = [...(this.hasText ? [COLUMNS.textEmbedding] : []), ...(this.hasImage ? [COLUMNS.imageEmbedding] : [])].map((column) => {
      const type = table.getChild(column)!.type as arrow.DataType;
      const child = arrow.DataType.isFixedSizeList(type) ? (type.children[0]!.type as arrow.DataType) : undefined;
      if (child === undefined || !arrow.DataType.isFloat(child) || child.precision === arrow.Precision.DOUBLE) {
        throw invalid(`${column} is ${String(type)}, expected a fixed-size list of float32 or float16`);
      }
      return { column, dims: (type as arrow.FixedSizeList).listSize, dtype: child.precision === arrow.Precision.HALF ? 'float16' : 'float32' } as const;
    });
    const [first, second] = shapes;
    if (first === undefined) throw invalid('it has neither text_embedding nor image_embedding');
    if (second !== undefined && (second.dims !== first.dims || second.dtype !== first.dtype)) {
      throw invalid(`${first.column} is ${first.dtype}[${first.dims}] but ${second.column} is ${second.dtype}[${second.dims}]`);
    }
    this.dims = first.dims;
    this.dtype = first.dtype;
  }

  private embeddingVector(modality: Modality): arrow.Vector<arrow.FixedSizeList> {
    const vector = this.table.getChild(embeddingColumn(modality));
    if (vector === null) throw internal(`this table has no ${embeddingColumn(modality)} column`);
    return vector as arrow.Vector<arrow.FixedSizeList>;
  }

  private checkRange(start: number, end: number): void {
    if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end && end <= this.numRows)) {
      throw internal(`row range [${start}, ${end}) is outside a table of ${this.numRows} rows`);
    }
  }

  /**
   * Embeddings of rows `[start, end)` as one row-major array of `(end - start) × dims` values:
   * float32 values, or float16 bit patterns when `dtype` is float16. A view into the table when
   * the range lies in one record batch (do not modify it). Error rows hold zeros: check `present`.
   */
  embeddings(modality: Modality, start = 0, end = this.numRows): Float32Array | Uint16Array {
    this.checkRange(start, end);
    const d = this.dims;
    const views: (Float32Array | Uint16Array)[] = [];
    let chunkStart = 0;
    for (const chunk of this.embeddingVector(modality).data) {
      const chunkEnd = chunkStart + chunk.length;
      const from = Math.max(start, chunkStart);
      const to = Math.min(end, chunkEnd);
      if (from < to) {
        // Arrow JS slices a child's `values` together with its parent, so index 0 is the chunk's first row.
        const values = chunk.children[0]!.values as Float32Array | Uint16Array;
        views.push(values.subarray((from - chunkStart) * d, (to - chunkStart) * d));
      }
      chunkStart = chunkEnd;
    }
    if (views.length === 1) return views[0]!;
    const out = this.dtype === 'float16' ? new Uint16Array((end - start) * d) : new Float32Array((end - start) * d);
    let written = 0;
    for (const view of views) {
      out.set(view, written);
      written += view.length;
    }
    return out;
  }

  /**
   * 1 where row `start + i` has a meaningful embedding of this modality: its status is `ok` (error
   * rows store zero vectors) and, in files of older versions that stored error rows as nulls, the
   * entry is not null.
   */
  present(modality: Modality, start = 0, end = this.numRows): Uint8Array {
    const out = this.statusOk(start, end);
    const vector = this.embeddingVector(modality);
    if (vector.nullCount > 0) for (let i = start; i < end; i++) if (!vector.isValid(i)) out[i - start] = 0;
    return out;
  }

  /**
   * 1 where row `start + i` has status `ok`. Reads the dictionary indices of each record batch
   * rather than decoding every row's status string: chunk files ask this of every row.
   */
  statusOk(start = 0, end = this.numRows): Uint8Array {
    this.checkRange(start, end);
    const out = new Uint8Array(end - start);
    let chunkStart = 0;
    for (const chunk of this.table.getChild(COLUMNS.status)!.data) {
      const chunkEnd = chunkStart + chunk.length;
      const from = Math.max(start, chunkStart);
      const to = Math.min(end, chunkEnd);
      if (from < to) {
        const okIndex = chunk.dictionary === undefined ? -1 : chunk.dictionary.toArray().indexOf('ok');
        const indexes = chunk.values as Int8Array;
        const checkValid = chunk.nullCount > 0;
        if (okIndex !== -1) {
          for (let i = from; i < to; i++) {
            const j = i - chunkStart;
            if (indexes[j] === okIndex && (!checkValid || chunk.getValid(j))) out[i - start] = 1;
          }
        }
      }
      chunkStart = chunkEnd;
    }
    return out;
  }

  /**
   * The content hash of row `index` for a modality (32 bytes), or undefined when the row has
   * none or the table predates hash columns.
   */
  contentHash(modality: Modality, index: number): Uint8Array | undefined {
    const vector = this.table.getChild(modality === 'text' ? COLUMNS.textSha256 : COLUMNS.imageSha256);
    if (vector === null || !vector.isValid(index)) return undefined;
    return vector.get(index) as Uint8Array;
  }

  /** One row as an object (float16 embeddings widened to float32): for inspection and tests, not bulk paths. */
  row(index: number): EmbeddedRow {
    this.checkRange(index, index + 1);
    const get = (column: string): unknown => this.table.getChild(column)!.get(index);
    const embedding = (modality: Modality, has: boolean): Float32Array | null => {
      if (!has || this.present(modality, index, index + 1)[0] !== 1) return null;
      const values = this.embeddings(modality, index, index + 1);
      return values instanceof Uint16Array ? float16ToFloat32(values) : Float32Array.from(values);
    };
    const rowIndex = get(COLUMNS.rowIndex) as bigint | null;
    return {
      rowIndex: rowIndex === null ? null : Number(rowIndex),
      splitIndex: get(COLUMNS.splitIndex) as number,
      lineIndex: get(COLUMNS.lineIndex) as number,
      source: get(COLUMNS.source) as string,
      offset: Number(get(COLUMNS.offset) as bigint),
      text: get(COLUMNS.text) as string | null,
      textEmbedding: embedding('text', this.hasText),
      imageEmbedding: embedding('image', this.hasImage),
      status: get(COLUMNS.status) as 'ok' | 'error',
      errorReason: get(COLUMNS.errorReason) as string | null,
      errorMessage: get(COLUMNS.errorMessage) as string | null,
    };
  }

  /**
   * The same rows with `row_index` set to `first, first + 1, …`: a chunk's consecutive lines get
   * consecutive ids this way. Other columns are shared, not copied.
   */
  withRowIndex(first: number): EmbeddingTable {
    if (this.numRows === 0) return this;
    const chunks: arrow.Data<arrow.Int64>[] = [];
    let next = BigInt(first);
    for (const batch of this.table.batches) {
      const values = new BigInt64Array(batch.numRows);
      for (let i = 0; i < values.length; i++) values[i] = next++;
      chunks.push(arrow.makeData({ type: new arrow.Int64(), length: values.length, data: values }));
    }
    const index = this.table.schema.fields.findIndex((f) => f.name === COLUMNS.rowIndex);
    return new EmbeddingTable(this.table.setChildAt(index, new arrow.Vector(chunks)));
  }

  /** Rows `[start, end)`, sharing buffers with this table. */
  slice(start: number, end: number): EmbeddingTable {
    this.checkRange(start, end);
    return new EmbeddingTable(this.table.slice(start, end));
  }
}

/**
 * Reads a shard or part written by `writeParquet`. `name` (an object key) goes into error
 * messages. Throws InputError when the bytes are not Parquet or not an embedding table.
 */
export function readEmbeddingTable(bytes: Uint8Array, name = 'Parquet data'): EmbeddingTable {
  return new EmbeddingTable(readParquet(bytes, { name }), name);
}
