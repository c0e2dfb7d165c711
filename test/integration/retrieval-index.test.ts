import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import { exactSearch } from '@vecmill/retrieval/exact-search';
import { buildHnswIndex, findIndex, openHnswIndex, type IndexDescriptor } from '@vecmill/retrieval/hnsw-index';
import { PublishedOutput, type RetrievalManifest } from '@vecmill/retrieval/output-reader';
import { searchOutput } from '@vecmill/retrieval/search-output';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { runEmbedded } from 'vecmill/embedded-run';
import { runConfig } from '../support/run-helpers.js';
import { randomUnitVectors, writeSyntheticOutput } from '../support/synthetic-output.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

describe('vecmill index: HNSW index over a published output', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let out: string;
  const rows = 3000;
  const dims = 32;
  const vectors = randomUnitVectors(rows, dims, 11);

  before(async () => {
    ({ dir, cleanup } = await makeTempDir('retrieval-index'));
    await makeDataset({ path: join(dir, 'text.tsv'), rows: 4, kind: 'text', seed: 1 });
    const base = await runEmbedded(runConfig(['--input', join(dir, 'text.tsv'), '--model', await tinyModelDir(), '--output', join(dir, 'base')]), () => undefined);
    out = join(dir, 'synthetic');
    await writeSyntheticOutput(out, base.manifest, { dims, text: vectors, rowsPerPart: 700 });
  });
  after(() => cleanup());

  it('has recall@10 of at least 0.95 against exact search on 3,000 random unit vectors', async () => {
    const output = await PublishedOutput.open(new LocalStore(out));
    const descriptor = await buildHnswIndex(output, { modality: 'text' });
    assert.equal(descriptor.rows, rows);
    const reopened = await PublishedOutput.open(new LocalStore(out));
    const entry = findIndex(reopened, 'text', 'cosine');
    assert.ok(entry !== undefined, 'the manifest records the index');
    const index = await openHnswIndex(reopened, entry);
    const queries = randomUnitVectors(100, dims, 99);
    const exact = await exactSearch(reopened, 'text', queries, 10, 'cosine');
    let found = 0;
    for (let q = 0; q < 100; q++) {
      const truth = new Set(exact[q]!.map((h) => h.id));
      for (const hit of index.search(queries.subarray(q * dims, (q + 1) * dims), 10)) if (truth.has(hit.id)) found++;
    }
    await index.close();
    const recall = found / 1000;
    assert.ok(recall >= 0.95, `recall@10 ${recall}`);
    assert.ok(descriptor.recallAt10 !== null && descriptor.recallAt10 >= 0.95, `recorded recall ${descriptor.recallAt10}`);
  });

  it('records its parameters in index.json and manifest.json, and a rebuild replaces the entry', async () => {
    const first = await buildHnswIndex(await PublishedOutput.open(new LocalStore(out)), { modality: 'text', connectivity: 8 });
    const second = await buildHnswIndex(await PublishedOutput.open(new LocalStore(out)), { modality: 'text', connectivity: 12, expansionSearch: 80 });
    assert.equal(first.key, second.key);
    const sidecar = JSON.parse(await readFile(join(out, 'indexes/text-cosine/index.json'), 'utf8')) as IndexDescriptor;
    assert.equal(sidecar.library, 'usearch');
    assert.equal(sidecar.connectivity, 12);
    assert.equal(sidecar.expansionSearch, 80);
    assert.equal(sidecar.dims, dims);
    assert.equal(sidecar.rows, rows);
    assert.match(sidecar.libraryVersion, /^\d+\.\d+\.\d+$/);
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as RetrievalManifest;
    assert.deepEqual(manifest.indexes, [{ key: 'indexes/text-cosine/index.usearch', descriptor: 'indexes/text-cosine/index.json', modality: 'text', metric: 'cosine', library: 'usearch', rows }]);
    assert.equal(manifest.rows.in, rows, 'the rest of the manifest is kept');
  });

  it('search uses the index when present and agrees with exact search on a stored vector', async () => {
    const output = await PublishedOutput.open(new LocalStore(out));
    const query = vectors.slice(1234 * dims, 1235 * dims);
    const viaIndex = await searchOutput(output, { query, k: 3 });
    const exact = await searchOutput(output, { query, k: 3, exact: true });
    assert.equal(viaIndex.index, 'indexes/text-cosine/index.usearch');
    assert.equal(exact.index, undefined);
    assert.equal(viaIndex.hits[0]!.id, 1234n);
    assert.equal(exact.hits[0]!.id, 1234n);
    assert.equal(exact.hits[0]!.caption, 'row 1234');
    assert.ok(Math.abs(viaIndex.hits[0]!.score - 1) < 1e-5);
  });

  it('refuses to index a modality the output does not have, in one line', async () => {
    const output = await PublishedOutput.open(new LocalStore(out));
    await assert.rejects(buildHnswIndex(output, { modality: 'image' }), (e: Error) => /has no image embeddings.*use --modality text/.test(e.message) && !e.message.includes('\n'));
  });
});
