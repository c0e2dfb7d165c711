// Outside readers check vecmill's files: DuckDB reads the Parquet parts, numpy loads the .npy
// files and re-derives the EasyNLP feature lines. numpy is optional on a developer machine, so
// its tests skip with a reason when `python3 -c "import numpy"` fails.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import * as arrow from 'apache-arrow';
import { featureTsvLines } from '@vecmill/shared/formats/easynlp-tsv';
import { EmbeddingTable, EmbeddingTableBuilder, type EmbeddingDtype } from '@vecmill/shared/formats/embedding-table';
import { float16ToFloat32, float32ToFloat16 } from '@vecmill/shared/formats/float16';
import { NpyWriter, type NpyDtype } from '@vecmill/shared/formats/npy-writer';
import { writeParquet } from '@vecmill/shared/formats/parquet-io';
import { assertNoNullVectors } from '../support/parquet-vectors.js';
import { makeTempDir } from '../support/tmp.js';

const D = 16;
const ROWS = 40;
const FAILED = new Set([3, 17, 39]);

/** Values from 1e-9 to 1e5: half subnormals, halves that underflow to 0 and overflow to inf. */
function values(rows: number): Float32Array {
  return Float32Array.from({ length: rows * D }, (_, i) => Math.fround(Math.sin(i * 0.77) * 10 ** ((i % 15) - 9)));
}

function build(dtype: EmbeddingDtype): EmbeddingTable {
  const builder = new EmbeddingTableBuilder({ dims: D, outDtype: dtype, hasText: true, hasImage: true });
  const all = values(ROWS);
  builder.appendBatch({
    splitIndex: 2,
    lineIndex: Array.from({ length: ROWS }, (_, i) => i),
    source: 's3://bucket/images.tsv',
    offset: Array.from({ length: ROWS }, (_, i) => i * 70_000),
    text: Array.from({ length: ROWS }, (_, i) => (i % 5 === 0 ? null : `caption ${i} — ünïcödé 图片`)),
    textEmbedding: all,
    imageEmbedding: all.map((v) => -v),
    errors: Array.from({ length: ROWS }, (_, i) => (FAILED.has(i) ? { reason: 'corrupt_image', message: `row ${i} is broken` } : null)),
  });
  return new EmbeddingTable(builder.build()).withRowIndex(500);
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('DuckDB reads vecmill Parquet', () => {
  let temp: Awaited<ReturnType<typeof makeTempDir>>;
  let instance: DuckDBInstance;
  let db: DuckDBConnection;
  const files: Record<EmbeddingDtype, string> = { float32: '', float16: '' };

  before(async () => {
    temp = await makeTempDir('formats-duckdb');
    for (const dtype of ['float32', 'float16'] as const) {
      files[dtype] = join(temp.dir, `part-${dtype}.parquet`);
      await writeFile(files[dtype], writeParquet(build(dtype).table, { rowGroupRows: 16 }));
    }
    instance = await DuckDBInstance.create(':memory:');
    db = await instance.connect();
  });

  after(async () => {
    db.closeSync();
    instance.closeSync();
    await temp.cleanup();
  });

  const query = async (sql: string): Promise<Record<string, unknown>[]> => (await db.runAndReadAll(sql)).getRowObjectsJson();

  for (const dtype of ['float32', 'float16'] as const) {
    it(`sees the columns with the right types (${dtype})`, async () => {
      const rows = await query(`DESCRIBE SELECT * FROM read_parquet('${files[dtype]}')`);
      assert.deepEqual(Object.fromEntries(rows.map((r) => [r.column_name, r.column_type])), {
        row_index: 'BIGINT',
        split_index: 'INTEGER',
        line_index: 'INTEGER',
        source: 'VARCHAR',
        byte_offset: 'BIGINT',
        text: 'VARCHAR',
        // Parquet has no fixed-size list, so DuckDB sees a list; every row casts to FLOAT[D].
        text_embedding: 'FLOAT[]',
        image_embedding: 'FLOAT[]',
        status: 'VARCHAR',
        error_reason: 'VARCHAR',
        error_message: 'VARCHAR',
        text_sha256: 'BLOB',
        image_sha256: 'BLOB',
      });
    });

    it(`reads every row and value (${dtype})`, async () => {
      const rows = await query(
        `SELECT row_index, line_index, byte_offset, text, status, error_reason, text_embedding::FLOAT[${D}] AS t, image_embedding,
                typeof(text_embedding::FLOAT[${D}]) AS cast_type
         FROM read_parquet('${files[dtype]}') ORDER BY row_index`,
      );
      assert.equal(rows.length, ROWS);
      const stored = dtype === 'float16' ? float16ToFloat32(float32ToFloat16(values(ROWS))) : values(ROWS);
      rows.forEach((row, i) => {
        assert.equal(Number(row.row_index), 500 + i);
        assert.equal(row.line_index, i);
        assert.equal(Number(row.byte_offset), i * 70_000);
        assert.equal(row.text, i % 5 === 0 ? null : `caption ${i} — ünïcödé 图片`);
        assert.equal(row.status, FAILED.has(i) ? 'error' : 'ok');
        assert.equal(row.cast_type, `FLOAT[${D}]`);
        if (FAILED.has(i)) {
          assert.equal(row.error_reason, 'corrupt_image');
          assert.deepEqual(row.t, new Array(D).fill(0), 'an error row holds a zero vector, not a null');
          return;
        }
        const expected = [...stored.subarray(i * D, (i + 1) * D)];
        assert.deepEqual((row.t as number[]).map(Math.fround), expected);
        // Adding 0 folds -0 into 0: the negated image embedding turns the zeros of underflowed halves into -0.
        assert.deepEqual((row.image_embedding as number[]).map((v) => Math.fround(-v) + 0), expected.map((v) => v + 0));
      });
    });
  }

  it('declares every vector column required with no null entry, and the check catches the layout pyarrow cannot read', async () => {
    assert.deepEqual(await assertNoNullVectors([files.float32, files.float16]), [2, 2]);
    // Earlier versions stored error rows as null FixedSizeList entries (apache/arrow#35692).
    const item = new arrow.Field('item', new arrow.Float32(), false);
    const type = new arrow.FixedSizeList(2, item);
    const vectors = arrow.makeData({ type, length: 2, nullCount: 1, nullBitmap: Uint8Array.of(0b01), child: arrow.makeData({ type: new arrow.Float32(), length: 4, data: new Float32Array(4) }) });
    const schema = new arrow.Schema([new arrow.Field('text_embedding', type, true)]);
    const old = join(temp.dir, 'nullable.parquet');
    await writeFile(old, writeParquet(new arrow.Table(schema, new arrow.RecordBatch(schema, arrow.makeData({ type: new arrow.Struct(schema.fields), length: 2, children: [vectors] })))));
    await assert.rejects(assertNoNullVectors([old]), /text_embedding is declared OPTIONAL, not REQUIRED/);
  });

  it('keeps row-group statistics for row_index (so readers can skip groups) but not for embeddings', async () => {
    const stats = async (column: string): Promise<[unknown, unknown][]> =>
      (await query(`SELECT stats_min, stats_max FROM parquet_metadata('${files.float32}') WHERE path_in_schema = '${column}' ORDER BY row_group_id`)).map((r) => [r.stats_min, r.stats_max]);
    assert.deepEqual((await stats('row_index')).map(([min, max]) => [Number(min), Number(max)]), [[500, 515], [516, 531], [532, 539]]);
    assert.deepEqual(await stats('text_embedding, list, item'), [[null, null], [null, null], [null, null]]);
  });
});

const numpySkip = ((): string | false => {
  const probe = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' });
  return probe.status === 0 ? false : 'skipped: python3 with numpy is not available';
})();

describe('numpy reads vecmill .npy and EasyNLP files', { skip: numpySkip }, () => {
  let temp: Awaited<ReturnType<typeof makeTempDir>>;
  before(async () => {
    temp = await makeTempDir('formats-numpy');
  });
  after(async () => temp.cleanup());

  async function npy(path: string, dtype: NpyDtype, rows: Float32Array, chunkRows: number): Promise<void> {
    const writer = new NpyWriter(rows.length / D, D, dtype, path);
    const done = collect(writer.stream);
    for (let start = 0; start < rows.length; start += chunkRows * D) await writer.write(rows.subarray(start, start + chunkRows * D));
    writer.end();
    await writeFile(path, await done);
  }

  it('loads float32 and float16 files, zero-row files, and matches numpy float16 rounding bit for bit', async () => {
    const expected = values(ROWS);
    await writeFile(join(temp.dir, 'expected.f32'), expected);
    await npy(join(temp.dir, 'f4.npy'), '<f4', expected, 7);
    await npy(join(temp.dir, 'f2.npy'), '<f2', expected, 7);
    await npy(join(temp.dir, 'empty.npy'), '<f2', new Float32Array(0), 1);
    const script = `
import json, sys, numpy as np
d = sys.argv[1]
exp = np.fromfile(d + '/expected.f32', dtype='<f4').reshape(-1, ${D})
f4 = np.load(d + '/f4.npy'); f2 = np.load(d + '/f2.npy'); empty = np.load(d + '/empty.npy')
mm = np.load(d + '/f4.npy', mmap_mode='r')
with np.errstate(over='ignore'):
    ref16 = exp.astype(np.float16)
print(json.dumps({
  'f4': [str(f4.dtype), list(f4.shape), bool(np.array_equal(f4, exp))],
  'f2': [str(f2.dtype), list(f2.shape), bool(np.array_equal(f2.view(np.uint16), ref16.view(np.uint16)))],
  'empty': [str(empty.dtype), list(empty.shape)],
  'mmap': bool(np.array_equal(mm, exp)),
}))`;
    const run = spawnSync('python3', ['-c', script, temp.dir], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), {
      f4: ['float32', [ROWS, D], true],
      f2: ['float16', [ROWS, D], true],
      empty: ['float16', [0, D]],
      mmap: true,
    });
  });

  it("writes EasyNLP feature lines exactly as '\\t'.join(str(x)) of numpy float32 rows", async () => {
    const table = build('float32');
    await writeFile(join(temp.dir, 'text_feat.tsv'), [...featureTsvLines(table, 'text', 8)].join(''));
    await writeFile(join(temp.dir, 'expected.f32'), values(ROWS));
    const script = `
import json, sys, numpy as np
d = sys.argv[1]
exp = np.fromfile(d + '/expected.f32', dtype='<f4').reshape(-1, ${D})
lines = open(d + '/text_feat.tsv', encoding='utf-8').read().split('\\n')
assert lines[-1] == '', 'file must end with a newline'
lines = lines[:-1]
empty = [i for i, l in enumerate(lines) if l == '']
same = all(l == '\\t'.join(str(x) for x in exp[i]) for i, l in enumerate(lines) if l != '')
print(json.dumps({'lines': len(lines), 'empty': empty, 'same': same}))`;
    const run = spawnSync('python3', ['-c', script, temp.dir], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), { lines: ROWS, empty: [...FAILED], same: true });
  });
});
