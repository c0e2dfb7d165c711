import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import { parseNpyHeader } from '@vecmill/shared/formats/npy-writer';
import { outputKeys } from '@vecmill/shared/run-plan';
import type { Manifest } from '@vecmill/shared/manifest';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { runEmbedded } from 'vecmill/embedded-run';
import { checkRowIds, eventLog, readParts, runConfig } from '../support/run-helpers.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

const hasNumpy = spawnSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;

describe('vecmill run (embedded mode, local files)', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let model: string;
  let captions: string[];
  const rows = 300;

  before(async () => {
    ({ dir, cleanup } = await makeTempDir('run'));
    model = await tinyModelDir();
    ({ captions } = await makeDataset({ path: join(dir, 'pairs.tsv'), rows, kind: 'pairs', seed: 3, imageSize: 48 }));
  });
  after(() => cleanup());

  it('embeds every row exactly once, in input order, over many splits', async () => {
    const out = join(dir, 'out');
    const { events, sink } = eventLog();
    const result = await runEmbedded(runConfig(['--input', join(dir, 'pairs.tsv'), '--model', model, '--output', out, '--split-size', '16KiB', '--batch-size', '8', '--formats', 'npy,tsv']), sink);
    const m = result.manifest;
    assert.ok(m.splits > 10, `many splits, got ${m.splits}`);
    assert.equal(m.rows.in, rows);
    assert.equal(m.rows.ok, rows);
    assert.equal(m.rows.failed, 0);
    assert.equal(m.settings.kind, 'pairs');
    assert.equal(result.splitsComputed, m.splits);
    assert.ok(events.some((e) => e.type === 'merge-done'));

    const store = new LocalStore(out);
    assert.equal(await store.exists(outputKeys.success), true);
    const tables = await readParts(store, m);
    const ids: number[] = [];
    const texts: (string | null)[] = [];
    for (const t of tables) {
      for (let i = 0; i < t.numRows; i++) {
        const r = t.row(i);
        ids.push(r.rowIndex as number);
        texts.push(r.text);
        for (const v of [r.textEmbedding, r.imageEmbedding]) {
          assert.ok(v !== null);
          const norm = Math.sqrt(v.reduce((a, x) => a + x * x, 0));
          assert.ok(Math.abs(norm - 1) < 1e-5, `norm ${norm}`);
        }
      }
    }
    assert.deepEqual(await checkRowIds(store, m), [...Array(rows).keys()], 'positions from the manifest are 0…n-1 in output order');
    assert.equal(new Set(ids).size, rows, 'ids are unique');
    assert.deepEqual(texts, captions);
  });

  it('writes .npy files numpy can read, row-aligned with metadata', async () => {
    const out = join(dir, 'out');
    const npyFiles = readdirSync(join(out, 'img_emb')).sort();
    assert.ok(npyFiles.length > 1);
    let total = 0;
    for (const f of npyFiles) {
      const bytes = readFileSync(join(out, 'img_emb', f));
      const h = parseNpyHeader(bytes);
      assert.equal(h.descr, '<f4');
      assert.equal(h.fortranOrder, false);
      total += h.shape[0] as number;
    }
    assert.equal(total, rows);
    if (hasNumpy) {
      const script = `
import glob, numpy as np, sys
for d in ("img_emb", "text_emb"):
    arrs = [np.load(f) for f in sorted(glob.glob(sys.argv[1] + "/" + d + "/*.npy"))]
    a = np.concatenate(arrs)
    assert a.dtype == np.float32, a.dtype
    assert a.shape[0] == ${rows}, a.shape
    n = np.linalg.norm(a, axis=1)
    assert np.allclose(n, 1, atol=1e-5), n
print("ok")
`;
      const r = spawnSync('python3', ['-c', script, out], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim(), 'ok');
    }
  });

  it('writes EasyNLP feature TSV parts that join, in name order, to one line per input row', () => {
    const out = join(dir, 'out');
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as Manifest;
    for (const folder of ['text_feat', 'image_feat']) {
      const parts = readdirSync(join(out, folder)).sort();
      assert.ok(parts.length > 1, `${folder} has a part per chunk`);
      assert.deepEqual(parts.map((p) => `${folder}/${p}`), manifest.files.filter((f) => f.key.startsWith(`${folder}/`)).map((f) => f.key), 'the manifest lists them in name order');
      const joined = parts.map((p) => readFileSync(join(out, folder, p), 'utf8')).join('');
      assert.equal(joined.split('\n').length - 1, rows, `${folder}: the joined parts have one line per input row`);
    }
  });

  it('a re-run after a crash recomputes only the splits without a marker, with identical output', async () => {
    const out = join(dir, 'out');
    const store = new LocalStore(out);
    const before = await readParts(store, JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')));
    await rm(join(out, '_SUCCESS'));
    await rm(join(out, 'shards', 'split-000003.done.json'));
    const result = await runEmbedded(runConfig(['--input', join(dir, 'pairs.tsv'), '--model', model, '--output', out, '--split-size', '16KiB', '--batch-size', '8', '--formats', 'npy,tsv']), () => undefined);
    assert.equal(result.resumed, true);
    assert.equal(result.splitsComputed, 1);
    const again = await readParts(store, result.manifest);
    assert.equal(again.length, before.length);
    for (let p = 0; p < before.length; p++) {
      const a = before[p]!;
      const b = again[p]!;
      assert.equal(a.numRows, b.numRows);
      assert.deepEqual(b.embeddings('image'), a.embeddings('image'));
      assert.deepEqual(b.embeddings('text'), a.embeddings('text'));
    }
  });

  it('a run on a published output does nothing', async () => {
    const result = await runEmbedded(runConfig(['--input', join(dir, 'pairs.tsv'), '--model', model, '--output', join(dir, 'out'), '--split-size', '16KiB']), () => undefined);
    assert.equal(result.alreadyPublished, true);
    assert.equal(result.splitsComputed, 0);
  });

  it('embedding results do not depend on the split size or batch size', async () => {
    const a = await runEmbedded(runConfig(['--input', join(dir, 'pairs.tsv'), '--model', model, '--output', join(dir, 'big'), '--split-size', '64MiB', '--batch-size', '32']), () => undefined);
    const b = await readParts(new LocalStore(join(dir, 'out')), JSON.parse(readFileSync(join(dir, 'out', 'manifest.json'), 'utf8')));
    const big = await readParts(new LocalStore(join(dir, 'big')), a.manifest);
    assert.equal(big.length, 1);
    const whole = big[0]!;
    let row = 0;
    for (const t of b) {
      for (let i = 0; i < t.numRows; i++, row++) {
        const x = t.row(i);
        const y = whole.row(row);
        for (const [u, v] of [[x.imageEmbedding, y.imageEmbedding], [x.textEmbedding, y.textEmbedding]] as const) {
          const maxDiff = Math.max(...u!.map((val, j) => Math.abs(val - v![j]!)));
          assert.ok(maxDiff < 1e-5, `row ${row} differs by ${maxDiff}`);
        }
      }
    }
  });

  it('fails before any work on a bad model folder, naming the missing file', async () => {
    await assert.rejects(
      runEmbedded(runConfig(['--input', join(dir, 'pairs.tsv'), '--model', dir, '--output', join(dir, 'o2')]), () => undefined),
      { code: 'E_MODEL', message: /missing config\.json/ },
    );
  });

  it('fails in one line on a missing input', async () => {
    await assert.rejects(runEmbedded(runConfig(['--input', join(dir, 'nope.tsv'), '--model', model, '--output', join(dir, 'o3')]), () => undefined), {
      code: 'E_INPUT',
      message: /input not found/,
    });
  });
});
