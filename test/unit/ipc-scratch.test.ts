import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as arrow from 'apache-arrow';
import { EmbeddingTableBuilder } from '@vecmill/shared/formats/embedding-table';
import { IpcScratch } from '@vecmill/shared/formats/ipc-scratch';
import { writeParquet } from '@vecmill/shared/formats/parquet-io';

/** An embedding table of `rows` rows with both towers, dictionary columns, nulls and an error row. */
function table(rows: number, dims: number): arrow.Table {
  const builder = new EmbeddingTableBuilder({ dims, outDtype: 'float32', hasText: true, hasImage: true, expectedRows: rows });
  const vectors = (salt: number): Float32Array => Float32Array.from({ length: rows * dims }, (_, i) => Math.fround(Math.sin(i + salt)));
  builder.appendBatch({
    splitIndex: 2,
    lineIndex: Array.from({ length: rows }, (_, i) => i),
    source: 's3://bucket/in.tsv',
    offset: Array.from({ length: rows }, (_, i) => i * 40),
    text: Array.from({ length: rows }, (_, i) => (i % 5 === 3 ? null : `caption ${i} 一只猫`)),
    textEmbedding: vectors(0),
    imageEmbedding: vectors(7),
    textSha256: Array.from({ length: rows }, (_, i) => (i % 5 === 3 ? null : new Uint8Array(32).fill(i & 255))),
    errors: Array.from({ length: rows }, (_, i) => (i === 1 ? { reason: 'corrupt_image', message: 'JPEG ends early' } : null)),
  });
  return builder.build();
}

describe('IpcScratch', () => {
  it('lays out the same IPC stream as tableToIPC, in memory it keeps from call to call', () => {
    const scratch = new IpcScratch();
    const large = table(300, 16);
    const first = scratch.streamOf(large);
    assert.deepEqual(Buffer.from(first), Buffer.from(arrow.tableToIPC(large, 'stream')));
    const small = table(20, 16);
    const second = scratch.streamOf(small);
    assert.deepEqual(Buffer.from(second), Buffer.from(arrow.tableToIPC(small, 'stream')));
    assert.equal(second.buffer, first.buffer, 'a smaller table reuses the memory of the larger one');
    const back = arrow.tableFromIPC(scratch.streamOf(large));
    assert.equal(back.numRows, 300);
    assert.deepEqual(back.getChild('text')!.toArray(), large.getChild('text')!.toArray());
  });

  it('makes writeParquet write the same bytes as without it', () => {
    const scratch = new IpcScratch();
    for (const rows of [5, 200, 50]) {
      const t = table(rows, 8);
      assert.deepEqual(Buffer.from(writeParquet(t, {}, scratch)), Buffer.from(writeParquet(t)));
    }
  });
});
