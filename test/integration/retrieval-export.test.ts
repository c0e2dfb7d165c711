import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as lancedb from '@lancedb/lancedb';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import { exportToLance, LANCE_COLUMNS } from '@vecmill/retrieval/lancedb-export';
import { PublishedOutput } from '@vecmill/retrieval/output-reader';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { runEmbedded } from 'vecmill/embedded-run';
import { runConfig } from '../support/run-helpers.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

describe('vecmill export lancedb', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let captions: string[];
  let big: PublishedOutput;
  let small: PublishedOutput;

  before(async () => {
    ({ dir, cleanup } = await makeTempDir('retrieval-export'));
    const model = await tinyModelDir();
    ({ captions } = await makeDataset({ path: join(dir, 'pairs.tsv'), rows: 80, kind: 'pairs', seed: 6, imageSize: 40 }));
    await runEmbedded(runConfig(['--input', join(dir, 'pairs.tsv'), '--model', model, '--output', join(dir, 'out'), '--split-size', '16KiB']), () => undefined);
    big = await PublishedOutput.open(new LocalStore(join(dir, 'out')));
    await makeDataset({ path: join(dir, 'fewer.tsv'), rows: 50, kind: 'pairs', seed: 6, imageSize: 40 });
    await runEmbedded(runConfig(['--input', join(dir, 'fewer.tsv'), '--model', model, '--output', join(dir, 'fewer')]), () => undefined);
    small = await PublishedOutput.open(new LocalStore(join(dir, 'fewer')));
  });
  after(() => cleanup());

  it('loads every row, which reopens with its caption and answers a nearest-neighbour query', async () => {
    const db = join(dir, 'lance');
    const result = await exportToLance(big, { db, table: 'pairs' });
    assert.equal(result.rows, 80);
    assert.equal(result.tableRows, 80);
    const table = await (await lancedb.connect(db)).openTable('pairs');
    assert.equal(await table.countRows(), 80);
    const schema = await table.schema();
    assert.deepEqual(schema.fields.map((f) => f.name).sort(), Object.values(LANCE_COLUMNS).sort());
    const block = (await big.blocks('text').next()).value!;
    const row = 3;
    const query = Float32Array.from(block.embeddings.subarray(row * big.dims, (row + 1) * big.dims));
    const hits = await table.vectorSearch(query).column(LANCE_COLUMNS.text).distanceType('cosine').limit(2).toArray();
    assert.equal(Number(hits[0].id), Number(block.ids[row]));
    // The first block is the first part (position 0 on) and every row is ok: row 3 is input row 3.
    assert.equal(hits[0].caption, captions[row]);
    assert.ok(hits[0]._distance < 1e-5);
    assert.equal(Number(hits[0].offset), block.offsets[row]);
  });

  it('replaces rows by id on re-export, deletes rows past a shorter run, and builds the vector indexes', async () => {
    const db = join(dir, 'lance-again');
    await exportToLance(big, { db, table: 'pairs' });
    const again = await exportToLance(big, { db, table: 'pairs', index: true });
    assert.equal(again.tableRows, 80, 'no duplicates');
    assert.deepEqual([...again.indexed].sort(), [LANCE_COLUMNS.image, LANCE_COLUMNS.text]);
    const table = await (await lancedb.connect(db)).openTable('pairs');
    const ids = (await table.query().select([LANCE_COLUMNS.id]).toArray()).map((r) => Number(r.id)).sort((a, b) => a - b);
    const expected: number[] = [];
    for await (const b of big.rowBlocks(big.modalities)) expected.push(...Array.from(b.ids, Number));
    assert.equal(expected.length, 80);
    assert.ok(expected.some((id) => id >= 2 ** 32), 'ids of later splits are split × 2^32 + line');
    assert.deepEqual(ids, expected, 'exactly the output\'s ids, once each');
    assert.deepEqual((await table.listIndices()).map((i) => i.columns[0]).sort(), [LANCE_COLUMNS.image, LANCE_COLUMNS.text]);
    const shorter = await exportToLance(small, { db, table: 'pairs' });
    assert.equal(shorter.tableRows, 50);
  });

  it('refuses a bad table name in one line', async () => {
    await assert.rejects(exportToLance(big, { db: join(dir, 'x'), table: '../oops' }), (e: Error & { code?: string }) => e.code === 'E_CONFIG' && !e.message.includes('\n'));
  });
});
