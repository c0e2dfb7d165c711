import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import { readEmbeddingTable } from '@vecmill/shared/formats/embedding-table';
import { parseNpyHeader } from '@vecmill/shared/formats/npy-writer';
import { readParquet } from '@vecmill/shared/formats/parquet-io';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { runEmbedded } from 'vecmill/embedded-run';
import { fixturesSkipReason, sharedFixturesDir } from '../support/fixtures.js';
import { readErrors, readParts, runConfig } from '../support/run-helpers.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { assertNoNullVectors, parquetFilesUnder } from '../support/parquet-vectors.js';
import { makeTempDir } from '../support/tmp.js';

describe('vecmill run on every input kind, float16 output and bad rows', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let model: string;
  before(async () => {
    ({ dir, cleanup } = await makeTempDir('kinds'));
    model = await tinyModelDir();
  });
  after(() => cleanup());

  for (const kind of ['text', 'image'] as const) {
    it(`detects and embeds a ${kind}-only file`, async () => {
      const { captions } = await makeDataset({ path: join(dir, `${kind}.tsv`), rows: 40, kind, seed: 9, imageSize: 40 });
      const out = join(dir, `out-${kind}`);
      const r = await runEmbedded(runConfig(['--input', join(dir, `${kind}.tsv`), '--model', model, '--output', out, '--split-size', '4KiB']), () => undefined);
      assert.equal(r.manifest.settings.kind, kind);
      assert.equal(r.manifest.rows.ok, 40);
      const tables = await readParts(new LocalStore(out), r.manifest);
      assert.equal(tables[0]!.hasText, kind === 'text');
      assert.equal(tables[0]!.hasImage, kind === 'image');
      const present = readdirSync(out).sort();
      assert.equal(present.includes('text_emb'), kind === 'text');
      assert.equal(present.includes('img_emb'), kind === 'image');
      if (kind === 'text') assert.deepEqual(tables.flatMap((t) => Array.from({ length: t.numRows }, (_, i) => t.row(i).text)), captions);
    });
  }

  it('trimming and length-grouping text gives the same embeddings as padding to 77', async () => {
    await makeDataset({ path: join(dir, 'captions.tsv'), rows: 100, kind: 'text', seed: 21 });
    const lines = readFileSync(join(dir, 'captions.tsv'), 'utf8').trimEnd().split('\n');
    writeFileSync(join(dir, 'captions.tsv'), `${lines.map((l, i) => (i % 3 === 0 ? `${l} ${'and more words '.repeat(i % 7)}` : l)).join('\n')}\n`);
    const embed = async (out: string, extra: string[]) => {
      const r = await runEmbedded(runConfig(['--input', join(dir, 'captions.tsv'), '--model', model, '--output', join(dir, out), '--batch-size', '4', ...extra]), () => undefined);
      return (await readParts(new LocalStore(join(dir, out)), r.manifest)).flatMap((t) => Array.from({ length: t.numRows }, (_, i) => t.row(i).textEmbedding!));
    };
    const trimmed = await embed('out-trim', []);
    const padded = await embed('out-pad77', ['--no-trim-text']);
    assert.equal(trimmed.length, 100);
    trimmed.forEach((v, i) => {
      const diff = Math.max(...v.map((x, j) => Math.abs(x - padded[i]![j]!)));
      assert.ok(diff <= 1e-5, `row ${i} differs by ${diff}`);
    });
  });

  it('stores float16 embeddings when asked, in Parquet and as <f2 npy', async () => {
    await makeDataset({ path: join(dir, 'f16.tsv'), rows: 30, kind: 'pairs', seed: 4, imageSize: 40 });
    const out = join(dir, 'out-f16');
    const r = await runEmbedded(runConfig(['--input', join(dir, 'f16.tsv'), '--model', model, '--output', out, '--out-dtype', 'float16']), () => undefined);
    assert.equal(r.manifest.dtype, 'float16');
    const t = (await readParts(new LocalStore(out), r.manifest))[0]!;
    assert.equal(t.dtype, 'float16');
    const v = t.row(0).imageEmbedding!;
    const norm = Math.sqrt(v.reduce((a, x) => a + x * x, 0));
    assert.ok(Math.abs(norm - 1) < 2e-3, `half-precision norm ${norm}`);
    const npy = readdirSync(join(out, 'img_emb'))[0]!;
    assert.equal(parseNpyHeader(readFileSync(join(out, 'img_emb', npy))).descr, '<f2');
    assert.ok((await assertNoNullVectors(parquetFilesUnder(out))).some((n) => n === 2), 'the float16 files hold both vector columns, required and without nulls');
  });

  it('turns bad rows into error rows with reasons while their neighbours embed', async () => {
    const good = await makeDataset({ path: join(dir, 'good.tsv'), rows: 3, kind: 'pairs', seed: 2, imageSize: 40 });
    const goodLines = readFileSync(join(dir, 'good.tsv'), 'utf8').trimEnd().split('\n');
    const lines = [
      goodLines[0],
      'no tab on this line',
      'bad base64\t!!!not*base64!!!',
      `text file\t${Buffer.from('just some text, not an image').toString('base64')}`,
      goodLines[1],
      '',
      `three\tcolumns\t${goodLines[2]!.split('\t')[1]}`,
      goodLines[2],
    ];
    writeFileSync(join(dir, 'mixed.tsv'), `${lines.join('\n')}\n`);
    const out = join(dir, 'out-mixed');
    const r = await runEmbedded(runConfig(['--input', join(dir, 'mixed.tsv'), '--model', model, '--output', out, '--kind', 'pairs']), () => undefined);
    assert.equal(r.manifest.rows.in, 8);
    assert.equal(r.manifest.rows.ok, 3);
    assert.deepEqual(r.manifest.rows.failedByReason, { missing_field: 2, bad_base64: 1, not_an_image: 1, extra_field: 1 });
    const t = (await readParts(new LocalStore(out), r.manifest))[0]!;
    assert.deepEqual(Array.from({ length: 8 }, (_, i) => t.row(i).status), ['ok', 'error', 'error', 'error', 'ok', 'error', 'error', 'ok']);
    assert.equal(t.row(4).text, good.captions[1]);
    const errors = await readErrors(new LocalStore(out), r.manifest);
    assert.equal(errors.numRows, 5);
    assert.deepEqual([...(errors.getChild('id')!.toArray() as BigInt64Array)].map(Number), [1, 2, 3, 5, 6]);
    const meta = readParquet(readFileSync(join(out, 'metadata', readdirSync(join(out, 'metadata'))[0]!)));
    assert.deepEqual([...(meta.getChild('id')!.toArray() as BigInt64Array)].map(Number), [0, 4, 7]);
    assert.deepEqual([...t.embeddings('image', 1, 2)], new Array(t.dims).fill(0), 'an error row holds a zero vector');
    assert.ok((await assertNoNullVectors(parquetFilesUnder(out))).some((n) => n === 2), 'error rows leave no null vector in any file');
  });

  it('embeds the real photographs and rejects the broken files with their reasons', { skip: fixturesSkipReason() }, async () => {
    const images = join(sharedFixturesDir() as string, 'images');
    const rows = readFileSync(join(images, 'captions.tsv'), 'utf8').trim().split('\n').map((l) => l.split('\t') as [string, string]);
    writeFileSync(join(dir, 'photos.tsv'), rows.map(([file, caption]) => `${caption}\t${readFileSync(join(images, file)).toString('base64')}`).join('\n') + '\n');
    const out = join(dir, 'out-photos');
    const r = await runEmbedded(runConfig(['--input', join(dir, 'photos.tsv'), '--model', model, '--output', out]), () => undefined);
    assert.equal(r.manifest.rows.in, rows.length);
    const t = readEmbeddingTable(readFileSync(join(out, r.manifest.files.find((f) => f.key.startsWith('embeddings/'))!.key)));
    const broken = new Set(['truncated.jpg', 'cut_in_half.jpg', 'random_bytes.bin', 'not_an_image.txt', 'empty.bin']);
    rows.forEach(([file], i) => {
      const row = t.row(i);
      assert.equal(row.status, broken.has(file) ? 'error' : 'ok', `${file}: ${row.errorReason ?? ''} ${row.errorMessage ?? ''}`);
    });
  });
});
