import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import { projectRoot } from '../support/fixtures.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

describe('memory stays flat in input size', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ dir, cleanup } = await makeTempDir('memory')));
  after(() => cleanup());

  it('streams a 1 GB pairs file through the tiny model with peak RSS under 1 GB', async () => {
    const path = join(dir, 'big.tsv');
    const { bytes } = await makeDataset({ path, rows: 330, kind: 'pairs', imageSize: 1024, noise: 255, imageFormat: 'png', distinctImages: 4, seed: 5 });
    assert.ok(bytes >= 1e9, `file is ${bytes} bytes`);
    assert.equal(statSync(path).size, bytes);
    const model = await tinyModelDir();
    const r = spawnSync(
      process.execPath,
      [join(projectRoot, 'test', 'dist', 'support', 'measure-run.js'), '--input', path, '--model', model, '--output', join(dir, 'out'), '--progress', 'json'],
      { encoding: 'utf8', maxBuffer: 64 << 20 },
    );
    assert.equal(r.status, 0, r.stderr.slice(-2000));
    const result = JSON.parse(r.stdout.trim().split('\n').pop() as string) as { maxRssBytes: number; rows: number; ok: number };
    process.stderr.write(`memory test: ${(bytes / 1e9).toFixed(2)} GB input, peak RSS ${(result.maxRssBytes / 2 ** 20).toFixed(0)} MiB\n`);
    assert.equal(result.rows, 330);
    assert.equal(result.ok, 330);
    assert.ok(result.maxRssBytes < 1e9, `peak RSS ${result.maxRssBytes} bytes`);
  });
});
