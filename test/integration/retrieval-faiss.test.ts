import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import { exactSearch } from '@vecmill/retrieval/exact-search';
import { PublishedOutput } from '@vecmill/retrieval/output-reader';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { runEmbedded } from 'vecmill/embedded-run';
import { positionOf, runConfig } from '../support/run-helpers.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

/** Debian's python3-faiss installs into the system python, not a pyenv one that may come first on PATH. */
const python = '/usr/bin/python3';
const hasFaiss = spawnSync(python, ['-c', 'import numpy, faiss'], { stdio: 'ignore' }).status === 0;

/** Loads every .npy part with numpy, searches text→image with faiss, prints the top-5 ids and scores of the first 10 captions. */
const numpyFaissScript = `
import glob, json, os, sys
import numpy as np, faiss
out = sys.argv[1]
img = np.concatenate([np.load(p) for p in sorted(glob.glob(os.path.join(out, 'img_emb', '*.npy')))]).astype('float32')
txt = np.concatenate([np.load(p) for p in sorted(glob.glob(os.path.join(out, 'text_emb', '*.npy')))]).astype('float32')
index = faiss.IndexFlatIP(img.shape[1])
index.add(img)
scores, ids = index.search(txt[:10], 5)
print(json.dumps({'shape': list(img.shape), 'ids': ids.tolist(), 'scores': scores.tolist()}))
`;

describe('the .npy outputs with numpy and faiss', { skip: hasFaiss ? false : 'skipped: /usr/bin/python3 lacks numpy or faiss (apt-get install python3-faiss)' }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let out: string;

  before(async () => {
    ({ dir, cleanup } = await makeTempDir('retrieval-faiss'));
    await makeDataset({ path: join(dir, 'pairs.tsv'), rows: 90, kind: 'pairs', seed: 2, imageSize: 40, distinctImages: 90 });
    out = join(dir, 'out');
    await runEmbedded(runConfig(['--input', join(dir, 'pairs.tsv'), '--model', await tinyModelDir(), '--output', out, '--split-size', '16KiB']), () => undefined);
  });
  after(() => cleanup());

  it('loads in numpy and gives the same text→image neighbours in faiss as vecmill\'s exact search', async () => {
    const r = spawnSync(python, ['-c', numpyFaissScript, out], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const fromFaiss = JSON.parse(r.stdout) as { shape: number[]; ids: number[][]; scores: number[][] };
    const output = await PublishedOutput.open(new LocalStore(out));
    assert.deepEqual(fromFaiss.shape, [90, output.dims]);
    const texts = new Float32Array(10 * output.dims);
    let filled = 0;
    for await (const block of output.blocks('text', { requireAll: true })) {
      const take = Math.min(10 - filled, block.ids.length);
      texts.set(block.embeddings.subarray(0, take * output.dims) as Float32Array, filled * output.dims);
      filled += take;
      if (filled === 10) break;
    }
    const ours = await exactSearch(output, 'image', texts, 5, 'ip');
    for (let q = 0; q < 10; q++) {
      ours[q]!.forEach((hit, j) => assert.ok(Math.abs(hit.score - fromFaiss.scores[q]![j]!) < 1e-4, `query ${q} rank ${j}`));
      assert.equal(positionOf(output.manifest, ours[q]![0]!.id), fromFaiss.ids[q]![0], 'npy row i is the row at position i when no row failed');
    }
  });
});
