import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as arrow from 'apache-arrow';
import { InputError, VecmillError } from '@vecmill/shared/errors';
import {
  COLUMNS,
  EmbeddingTable,
  EmbeddingTableBuilder,
  readEmbeddingTable,
  type EmbeddedRow,
  type EmbeddingDtype,
} from '@vecmill/shared/formats/embedding-table';
import { float16ToFloat32, float32ToFloat16 } from '@vecmill/shared/formats/float16';
import { writeParquet, type ParquetCompression } from '@vecmill/shared/formats/parquet-io';

const D = 8;
const SOURCE = 's3://bucket/in/part-0001.tsv';
const CAPTIONS = ['a red bicycle', '一只猫坐在窗台上', null, 'emoji 🚲🐈 and combining é', 'tab-free\nnewline inside'];

/** Deterministic float32 values; row r, column j. */
function value(r: number, j: number): number {
  return Math.fround(Math.sin(r * 31 + j) * 0.25);
}

function batchEmbeddings(rows: number, firstRow: number, salt: number): Float32Array {
  return Float32Array.from({ length: rows * D }, (_, i) => value(firstRow + Math.floor(i / D) + salt, i % D));
}

/** Five rows of split 3: rows 1 and 4 failed (image broken, text missing). */
function mixedTable(dtype: EmbeddingDtype, options: { hasText?: boolean; hasImage?: boolean } = {}): arrow.Table {
  const hasText = options.hasText ?? true;
  const hasImage = options.hasImage ?? true;
  const builder = new EmbeddingTableBuilder({ dims: D, outDtype: dtype, hasText, hasImage, expectedRows: 2 });
  builder.appendBatch({
    splitIndex: 3,
    lineIndex: [0, 1, 2],
    source: SOURCE,
    offset: [0, 1234, 5_000_000_000],
    text: CAPTIONS.slice(0, 3),
    ...(hasText ? { textEmbedding: batchEmbeddings(3, 0, 0) } : {}),
    ...(hasImage ? { imageEmbedding: batchEmbeddings(3, 0, 100) } : {}),
    errors: [null, { reason: 'corrupt_image', message: 'JPEG ends early at byte 512' }, undefined],
  });
  builder.appendBatch({
    splitIndex: 3,
    lineIndex: [3, 4],
    source: SOURCE,
    offset: [6_000_000_000, 6_000_000_100],
    text: CAPTIONS.slice(3),
    ...(hasText ? { textEmbedding: batchEmbeddings(2, 3, 0) } : {}),
    ...(hasImage ? { imageEmbedding: batchEmbeddings(2, 3, 100) } : {}),
    errors: [null, { reason: 'empty_text', message: 'caption is empty' }],
  });
  return builder.build();
}

function expectedEmbedding(row: number, salt: number, dtype: EmbeddingDtype): Float32Array {
  const values = batchEmbeddings(1, row, salt);
  return dtype === 'float16' ? float16ToFloat32(float32ToFloat16(values)) : values;
}

function assertMixedRows(table: EmbeddingTable, dtype: EmbeddingDtype): void {
  assert.equal(table.numRows, 5);
  assert.equal(table.dims, D);
  assert.equal(table.dtype, dtype);
  for (let r = 0; r < 5; r++) {
    const row = table.row(r);
    const failed = r === 1 || r === 4;
    assert.equal(row.rowIndex, null);
    assert.equal(row.splitIndex, 3);
    assert.equal(row.lineIndex, r);
    assert.equal(row.source, SOURCE);
    assert.equal(row.text, CAPTIONS[r]);
    assert.equal(row.status, failed ? 'error' : 'ok');
    assert.equal(row.errorReason, r === 1 ? 'corrupt_image' : r === 4 ? 'empty_text' : null);
    assert.equal(row.textEmbedding === null, failed);
    if (!failed) {
      assert.deepEqual(row.textEmbedding, expectedEmbedding(r, 0, dtype));
      assert.deepEqual(row.imageEmbedding, expectedEmbedding(r, 100, dtype));
    }
  }
  assert.equal(table.row(2).offset, 5_000_000_000);
  assert.equal(table.row(1).errorMessage, 'JPEG ends early at byte 512');
}

describe('EmbeddingTableBuilder', () => {
  it('builds the documented schema with FixedSizeList embeddings of the chosen dtype', () => {
    for (const [dtype, child] of [['float32', 'Float32'], ['float16', 'Float16']] as const) {
      const table = mixedTable(dtype);
      const types = Object.fromEntries(table.schema.fields.map((f) => [f.name, String(f.type)]));
      assert.deepEqual(Object.keys(types), [
        'row_index', 'split_index', 'line_index', 'source', 'byte_offset', 'text',
        'text_embedding', 'image_embedding', 'status', 'error_reason', 'error_message', 'text_sha256', 'image_sha256',
      ]);
      assert.equal(types.image_sha256, 'FixedSizeBinary[32]');
      assert.equal(types.text_embedding, `FixedSizeList[${D}]<${child}>`);
      assert.equal(types.row_index, 'Int64');
      assert.equal(types.source, 'Dictionary<Int32, Utf8>');
      assert.equal(table.getChild(COLUMNS.textEmbedding)!.nullCount, 0, 'error rows are zero vectors, not nulls');
      assert.equal(table.schema.fields.find((f) => f.name === COLUMNS.textEmbedding)!.nullable, false);
      assert.equal(table.schema.fields.find((f) => f.name === COLUMNS.imageEmbedding)!.nullable, false);
      assert.equal(table.getChild(COLUMNS.rowIndex)!.nullCount, 5);
    }
  });

  it('omits the embedding column of a modality the input does not have', () => {
    const imageOnly = mixedTable('float32', { hasText: false });
    assert.equal(imageOnly.getChild(COLUMNS.textEmbedding), null);
    assert.notEqual(imageOnly.getChild(COLUMNS.imageEmbedding), null);
    const textOnly = new EmbeddingTable(mixedTable('float32', { hasImage: false }));
    assert.equal(textOnly.hasImage, false);
    assert.equal(textOnly.row(0).imageEmbedding, null);
  });

  it('stores error rows as zero vectors that status marks as not present', () => {
    const table = new EmbeddingTable(mixedTable('float32'));
    assert.equal(table.row(1).imageEmbedding, null);
    assert.deepEqual([...table.present('image')], [1, 0, 1, 1, 0]);
    assert.deepEqual([...table.embeddings('image', 1, 2)], new Array(D).fill(0));
  });

  it('accepts float16 model outputs and widens them for a float32 table', () => {
    const halves = float32ToFloat16(batchEmbeddings(1, 0, 0));
    const builder = new EmbeddingTableBuilder({ dims: D, outDtype: 'float32', hasText: true, hasImage: false });
    builder.appendBatch({ splitIndex: 0, lineIndex: [0], source: 'x', offset: [0], textEmbedding: halves });
    assert.deepEqual(new EmbeddingTable(builder.build()).row(0).textEmbedding, float16ToFloat32(halves));
  });

  it('appends single rows, including an assigned row index', () => {
    const builder = new EmbeddingTableBuilder({ dims: 2, outDtype: 'float16', hasText: false, hasImage: true });
    const row: EmbeddedRow = {
      rowIndex: 41, splitIndex: 1, lineIndex: 7, source: 'local.tsv', offset: 99, text: null,
      textEmbedding: null, imageEmbedding: Float32Array.of(1, -0.5), status: 'ok', errorReason: null, errorMessage: null,
    };
    builder.append(row);
    builder.append({ ...row, rowIndex: null, lineIndex: 8, imageEmbedding: null, status: 'error', errorReason: 'bad_base64', errorMessage: 'not base64' });
    const table = new EmbeddingTable(builder.build());
    assert.deepEqual(table.row(0), row);
    assert.equal(table.row(1).rowIndex, null);
    assert.equal(table.row(1).imageEmbedding, null);
  });

  it('grows past its initial capacity without losing rows', () => {
    const builder = new EmbeddingTableBuilder({ dims: D, outDtype: 'float32', hasText: true, hasImage: false, expectedRows: 1 });
    for (let b = 0; b < 10; b++) {
      builder.appendBatch({ splitIndex: 0, lineIndex: [2 * b, 2 * b + 1], source: 'x', offset: [0, 0], textEmbedding: batchEmbeddings(2, 2 * b, 0) });
    }
    const table = new EmbeddingTable(builder.build());
    assert.equal(table.numRows, 20);
    assert.deepEqual(table.embeddings('text'), batchEmbeddings(20, 0, 0));
  });

  it('reset() empties the builder and reuses its buffers for the next chunk', () => {
    const builder = new EmbeddingTableBuilder({ dims: D, outDtype: 'float32', hasText: true, hasImage: false });
    builder.appendBatch({ splitIndex: 0, lineIndex: [0, 1], source: 'a', offset: [0, 9], text: ['x', 'y'], textEmbedding: batchEmbeddings(2, 0, 0), textSha256: [new Uint8Array(32), null], errors: [null, { reason: 'empty_text', message: 'm' }] });
    const bytesOfTwo = builder.byteLength;
    assert.ok(bytesOfTwo >= 2 * D * 4, 'the byte estimate counts the vectors');
    const first = readEmbeddingTable(writeParquet(builder.build()));
    builder.reset();
    assert.equal(builder.numRows, 0);
    assert.equal(builder.byteLength, 0);
    builder.appendBatch({ splitIndex: 0, lineIndex: [2], source: 'b', offset: [20], text: ['z'], textEmbedding: batchEmbeddings(1, 2, 0) });
    const second = new EmbeddingTable(builder.build());
    assert.equal(first.numRows, 2);
    assert.equal(first.row(1).status, 'error');
    assert.equal(second.numRows, 1);
    assert.deepEqual(second.row(0), { ...second.row(0), lineIndex: 2, source: 'b', text: 'z', status: 'ok', errorReason: null });
    assert.deepEqual(second.row(0).textEmbedding, batchEmbeddings(1, 2, 0));
    assert.equal(second.contentHash('text', 0), undefined, 'hash validity was cleared');
  });

  it('refuses an ok row without an embedding of a column the table has', () => {
    const builder = new EmbeddingTableBuilder({ dims: 2, outDtype: 'float32', hasText: true, hasImage: false });
    const row: EmbeddedRow = { rowIndex: null, splitIndex: 0, lineIndex: 0, source: 's', offset: 0, text: 'a', textEmbedding: null, imageEmbedding: null, status: 'ok', errorReason: null, errorMessage: null };
    assert.throws(() => builder.append(row), /an ok row must have textEmbedding/);
  });

  it('rejects batches that do not match the table shape', () => {
    const builder = new EmbeddingTableBuilder({ dims: D, outDtype: 'float32', hasText: true, hasImage: false });
    const base = { splitIndex: 0, lineIndex: [0, 1], source: 'x', offset: [0, 0] };
    assert.throws(() => builder.appendBatch({ ...base, textEmbedding: new Float32Array(D) }), /expected 2 rows × 8/);
    assert.throws(() => builder.appendBatch({ ...base }), /lacks textEmbedding/);
    assert.throws(() => builder.appendBatch({ ...base, textEmbedding: new Float32Array(2 * D), imageEmbedding: new Float32Array(2 * D) }), /without that column/);
    assert.equal(builder.numRows, 0);
    builder.build();
    assert.throws(() => builder.appendBatch({ ...base, textEmbedding: new Float32Array(2 * D) }), /after build/);
  });
});

describe('Parquet round trip', () => {
  for (const dtype of ['float32', 'float16'] as const) {
    it(`keeps every column of a ${dtype} table with ok and error rows`, () => {
      const bytes = writeParquet(mixedTable(dtype));
      assert.equal(new TextDecoder().decode(bytes.subarray(0, 4)), 'PAR1');
      const table = readEmbeddingTable(bytes, 'shards/00003.parquet');
      assert.equal(String(table.table.getChild(COLUMNS.imageEmbedding)!.type), `FixedSizeList[${D}]<${dtype === 'float16' ? 'Float16' : 'Float32'}>`);
      assertMixedRows(table, dtype);
      const raw = table.embeddings('text');
      assert.ok(dtype === 'float16' ? raw instanceof Uint16Array : raw instanceof Float32Array);
    });
  }

  it('reads back every compression codec', () => {
    for (const compression of ['zstd', 'snappy', 'none'] as ParquetCompression[]) {
      assertMixedRows(readEmbeddingTable(writeParquet(mixedTable('float32'), { compression })), 'float32');
    }
  });

  it('reads a file of many row groups as one batch, so embedding ranges are views', () => {
    const builder = new EmbeddingTableBuilder({ dims: D, outDtype: 'float32', hasText: false, hasImage: true });
    builder.appendBatch({ splitIndex: 0, lineIndex: Array.from({ length: 100 }, (_, i) => i), source: 'x', offset: new Array(100).fill(0), imageEmbedding: batchEmbeddings(100, 0, 0) });
    const table = readEmbeddingTable(writeParquet(builder.build(), { rowGroupRows: 16 }));
    assert.equal(table.table.batches.length, 1);
    const all = table.embeddings('image');
    const middle = table.embeddings('image', 20, 30);
    assert.equal(middle.buffer, all.buffer);
    assert.deepEqual(middle, batchEmbeddings(10, 20, 0));
  });

  it('round-trips a table with zero rows', () => {
    const empty = new EmbeddingTableBuilder({ dims: D, outDtype: 'float16', hasText: true, hasImage: true }).build();
    const table = readEmbeddingTable(writeParquet(empty));
    assert.equal(table.numRows, 0);
    assert.equal(table.dims, D);
    assert.equal(table.dtype, 'float16');
    assert.equal(table.embeddings('text').length, 0);
    assert.equal(table.withRowIndex(10).numRows, 0);
  });

  it('reports unreadable bytes and foreign tables as InputError naming the file', () => {
    assert.throws(() => readEmbeddingTable(new TextEncoder().encode('not parquet at all'), 'shards/bad.parquet'), (err: unknown) => {
      assert.ok(err instanceof InputError);
      assert.match(err.message, /shards\/bad\.parquet is not a readable Parquet file/);
      return true;
    });
    const foreign = writeParquet(new arrow.Table({ a: arrow.vectorFromArray([1, 2, 3]) }));
    assert.throws(() => readEmbeddingTable(foreign, 'other.parquet'), (err: unknown) => {
      assert.ok(err instanceof InputError);
      assert.match(err.message, /other\.parquet is not a vecmill embedding table \(column row_index is missing\)/);
      return true;
    });
  });
});

describe('EmbeddingTable', () => {
  it('concatenates ranges that span record batches and keeps single-batch ranges as views', () => {
    const first = new EmbeddingTable(mixedTable('float16'));
    const joined = new EmbeddingTable(first.table.concat(mixedTable('float16')));
    assert.equal(joined.table.batches.length, 2);
    const across = joined.embeddings('text', 3, 7);
    assert.ok(across instanceof Uint16Array);
    assert.deepEqual(across.subarray(0, 2 * D), first.embeddings('text', 3, 5));
    assert.deepEqual(across.subarray(2 * D), first.embeddings('text', 0, 2));
    assert.deepEqual([...joined.present('text', 3, 7)], [1, 0, 1, 0]);
    assert.throws(() => joined.embeddings('text', 8, 11), VecmillError);
  });

  it('gives sliced tables the right embeddings', () => {
    const table = new EmbeddingTable(mixedTable('float32')).slice(2, 5);
    assert.equal(table.numRows, 3);
    assert.deepEqual(table.row(0).textEmbedding, expectedEmbedding(2, 0, 'float32'));
    assert.deepEqual(table.embeddings('image', 1, 2), expectedEmbedding(3, 100, 'float32'));
    assert.deepEqual([...table.present('image')], [1, 1, 0]);
  });

  it('assigns global row indexes across batches and keeps them through Parquet', () => {
    const two = new EmbeddingTable(mixedTable('float32').concat(mixedTable('float32')));
    const numbered = two.withRowIndex(1_000);
    assert.deepEqual(Array.from({ length: 10 }, (_, i) => numbered.row(i).rowIndex), Array.from({ length: 10 }, (_, i) => 1_000 + i));
    assert.equal(numbered.table.getChild(COLUMNS.rowIndex)!.nullCount, 0);
    const back = readEmbeddingTable(writeParquet(numbered.table));
    assert.equal(back.row(9).rowIndex, 1_009);
    assert.deepEqual(back.row(5).textEmbedding, expectedEmbedding(0, 0, 'float32'));
    assert.equal(back.row(6).textEmbedding, null);
    assert.equal(two.row(0).rowIndex, null, 'the original table is unchanged');
  });

  it('rejects tables whose embedding columns disagree', () => {
    const table = mixedTable('float32');
    const otherDims = new EmbeddingTableBuilder({ dims: 4, outDtype: 'float32', hasText: false, hasImage: true });
    otherDims.appendBatch({ splitIndex: 0, lineIndex: [0, 1, 2, 3, 4], source: 'x', offset: [0, 0, 0, 0, 0], imageEmbedding: new Float32Array(20) });
    const mixed = table.setChild(COLUMNS.imageEmbedding, otherDims.build().getChild(COLUMNS.imageEmbedding)!);
    assert.throws(() => new EmbeddingTable(mixed, 'parts/x.parquet'), /parts\/x\.parquet is not a vecmill embedding table \(text_embedding is float32\[8\] but image_embedding is float32\[4\]\)/);
  });
});

describe('content hash columns', () => {
  it('stores a sha256 per row and modality, null where a row has none', () => {
    const b = new EmbeddingTableBuilder({ dims: 2, outDtype: 'float32', hasText: true, hasImage: true });
    const h = (n: number): Uint8Array => new Uint8Array(32).fill(n);
    b.appendBatch({
      splitIndex: 0,
      source: 's',
      lineIndex: [0, 1],
      offset: [0, 10],
      text: ['a', null],
      textEmbedding: new Float32Array(4),
      imageEmbedding: new Float32Array(4),
      textSha256: [h(1), null],
      imageSha256: [h(2), h(3)],
      errors: [null, { reason: 'missing_field', message: 'm' }],
    });
    const t = readEmbeddingTable(writeParquet(b.build()));
    assert.deepEqual(t.contentHash('text', 0), h(1));
    assert.equal(t.contentHash('text', 1), undefined);
    assert.deepEqual(t.contentHash('image', 1), h(3));
  });
});
