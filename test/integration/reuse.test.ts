import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { runEmbedded } from 'vecmill/embedded-run';
import { readParts, runConfig } from '../support/run-helpers.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

describe('--reuse: incremental nightly runs', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let model: string;
  const rows = 100;
  const args = (input: string, out: string, extra: string[] = []) => ['--input', join(dir, input), '--model', model, '--output', join(dir, out), '--split-size', '8KiB', ...extra];

  before(async () => {
    ({ dir, cleanup } = await makeTempDir('reuse'));
    model = await tinyModelDir();
    await makeDataset({ path: join(dir, 'night1.tsv'), rows, kind: 'pairs', seed: 31, imageSize: 40, distinctImages: rows });
    await runEmbedded(runConfig(args('night1.tsv', 'out1')), () => undefined);
  });
  after(() => cleanup());

  it('an unchanged dataset computes nothing and produces the same output', async () => {
    const r = await runEmbedded(runConfig(args('night1.tsv', 'out2', ['--reuse', join(dir, 'out1')])), () => undefined);
    assert.equal(r.manifest.rows.ok, rows);
    assert.equal(r.manifest.rows.reused, rows);
    assert.equal(r.manifest.rows.computed, 0);
    const stages = r.manifest.timings;
    assert.equal(stages.decode, 0, 'no image was decoded');
    assert.equal(stages.infer, 0, 'no model call was made');
    const a = await readParts(new LocalStore(join(dir, 'out1')), JSON.parse(readFileSync(join(dir, 'out1', 'manifest.json'), 'utf8')));
    const b = await readParts(new LocalStore(join(dir, 'out2')), r.manifest);
    assert.equal(a.length, b.length);
    a.forEach((t, p) => {
      assert.deepEqual(b[p]!.embeddings('image'), t.embeddings('image'));
      assert.deepEqual(b[p]!.embeddings('text'), t.embeddings('text'));
    });
  });

  it('a 10%-changed dataset recomputes 10% of rows', async () => {
    const lines = readFileSync(join(dir, 'night1.tsv'), 'utf8').trimEnd().split('\n');
    const changed = lines.map((l, i) => (i % 10 === 0 ? l.replace(/^[^\t]*/, (c) => `${c} (edited)`) : l));
    writeFileSync(join(dir, 'night2.tsv'), `${changed.join('\n')}\n`);
    const r = await runEmbedded(runConfig(args('night2.tsv', 'out3', ['--reuse', join(dir, 'out1')])), () => undefined);
    assert.equal(r.manifest.rows.ok, rows);
    assert.equal(r.manifest.rows.computed, rows / 10);
    assert.equal(r.manifest.rows.reused, rows - rows / 10);
    assert.equal(r.manifest.reusedFrom, join(dir, 'out1'));
    const fresh = await runEmbedded(runConfig(args('night2.tsv', 'out4')), () => undefined);
    const x = (await readParts(new LocalStore(join(dir, 'out3')), r.manifest)).flatMap((t) => Array.from({ length: t.numRows }, (_, i) => t.row(i)));
    const y = (await readParts(new LocalStore(join(dir, 'out4')), fresh.manifest)).flatMap((t) => Array.from({ length: t.numRows }, (_, i) => t.row(i)));
    x.forEach((row, i) => {
      assert.equal(row.text, y[i]!.text);
      assert.deepEqual(row.textEmbedding, y[i]!.textEmbedding, `text of row ${i}`);
      assert.deepEqual(row.imageEmbedding, y[i]!.imageEmbedding, `image of row ${i}`);
    });
  });

  it('refuses an output made with different settings', async () => {
    await assert.rejects(runEmbedded(runConfig(args('night1.tsv', 'out5', ['--reuse', join(dir, 'out1'), '--no-normalize'])), () => undefined), {
      code: 'E_CONFIG',
      message: /different normalization/,
    });
  });

  it('refuses an output of earlier vecmill, whose CMYK images were converted another way', async () => {
    // The same output as vecmill before 2026-12-07 wrote it: its settings do not name a CMYK conversion.
    const old = join(dir, 'out1-old');
    cpSync(join(dir, 'out1'), old, { recursive: true });
    const manifest = JSON.parse(readFileSync(join(old, 'manifest.json'), 'utf8')) as { settings: Record<string, unknown> };
    assert.equal(manifest.settings['cmykConversion'], 'pillow', 'a manifest written now names the conversion');
    delete manifest.settings['cmykConversion'];
    writeFileSync(join(old, 'manifest.json'), JSON.stringify(manifest));
    await assert.rejects(runEmbedded(runConfig(args('night1.tsv', 'out7', ['--reuse', old])), () => undefined), {
      code: 'E_CONFIG',
      message: /different CMYK conversion/,
    });
  });

  it('refuses an unpublished output', async () => {
    await assert.rejects(runEmbedded(runConfig(args('night1.tsv', 'out6', ['--reuse', join(dir, 'nothing-here')])), () => undefined), {
      code: 'E_CONFIG',
      message: /not a published vecmill output/,
    });
  });
});
