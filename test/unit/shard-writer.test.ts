import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { COLUMNS, readEmbeddingTable } from '@vecmill/shared/formats/embedding-table';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { ShardWriter } from '@vecmill/worker/shard-writer';
import { makeTempDir } from '../support/tmp.js';

const D = 4;
const table = { dims: D, outDtype: 'float32', hasText: true, hasImage: false } as const;

/** Appends `batches` batches of `size` consecutive rows; row r's vector is all r. */
async function fill(writer: ShardWriter, batches: number, size: number): Promise<void> {
  for (let b = 0; b < batches; b++) {
    const lines = Array.from({ length: size }, (_, i) => b * size + i);
    await writer.append({
      splitIndex: 2,
      source: 'in.tsv',
      lineIndex: lines,
      offset: lines.map((l) => l * 10),
      text: lines.map((l) => `caption ${l}`),
      textEmbedding: Float32Array.from({ length: size * D }, (_, i) => lines[Math.floor(i / D)]!),
      errors: lines.map((l) => (l % 7 === 3 ? { reason: 'empty_text', message: 'm' } : null)),
    });
  }
}

describe('ShardWriter', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ dir, cleanup } = await makeTempDir('shard-writer')));
  after(() => cleanup());

  it('cuts chunks at exactly maxRows, across batch boundaries, and stores each with its sha256', async () => {
    const store = new LocalStore(dir);
    const writer = new ShardWriter(store, { splitIndex: 2, attempt: 'a1', table, chunk: { maxRows: 5 } });
    await fill(writer, 4, 3);
    const files = await writer.finish();
    assert.deepEqual(files.map((f) => f.rows), [5, 5, 2]);
    assert.deepEqual(files.map((f) => f.key), [0, 1, 2].map((k) => `shards/split-000002/a1/chunk-00000${k}.parquet`));
    let line = 0;
    for (const f of files) {
      const bytes = await store.read(f.key);
      assert.equal(createHash('sha256').update(bytes).digest('hex'), f.sha256);
      assert.equal(bytes.byteLength, f.bytes);
      const t = readEmbeddingTable(bytes, f.key);
      assert.deepEqual([...(t.table.getChild(COLUMNS.lineIndex)!.toArray() as Int32Array)], Array.from({ length: f.rows }, (_, i) => line + i));
      for (let r = 0; r < t.numRows; r++) {
        const l = line + r;
        assert.deepEqual(t.row(r).textEmbedding, l % 7 === 3 ? null : new Float32Array(D).fill(l));
        assert.equal(t.row(r).text, `caption ${l}`);
      }
      line += f.rows;
    }
    assert.equal(line, 12);
  });

  it('closes a chunk once its bytes pass maxBytes, and writes no file for no rows', async () => {
    const store = new LocalStore(dir);
    const writer = new ShardWriter(store, { splitIndex: 2, attempt: 'a2', table, chunk: { maxBytes: 1 } });
    await fill(writer, 3, 4);
    assert.deepEqual((await writer.finish()).map((f) => f.rows), [4, 4, 4]);
    assert.deepEqual(await new ShardWriter(store, { splitIndex: 3, attempt: 'a3', table }).finish(), []);
  });

  it('fails the split when an upload fails', async () => {
    const store = new LocalStore(dir);
    const failing = Object.assign(Object.create(store) as LocalStore, { put: () => Promise.reject(new Error('disk full')) });
    const writer = new ShardWriter(failing, { splitIndex: 4, attempt: 'a4', table, chunk: { maxRows: 2 } });
    await assert.rejects(async () => {
      await fill(writer, 3, 2);
      await writer.finish();
    }, /disk full/);
  });
});
