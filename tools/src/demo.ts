/**
 * `npm run demo`: a fresh clone's first run. Generates the tiny model and a small pairs dataset
 * with images drawn here, embeds it with `vecmill run` on the embedded default, and prints where
 * everything is. Nothing is downloaded.
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { tuneThreadPool } from '@vecmill/shared/config';
import { makeDataset } from './datagen/make-dataset.js';
import { makeModel } from './modelgen/make-model.js';
import { main } from 'vecmill/main';

async function demo(): Promise<number> {
  tuneThreadPool();
  const root = resolve('.vecmill-demo');
  const modelDir = join(root, 'model-tiny');
  const data = join(root, 'data', 'pairs.tsv');
  const output = join(root, 'output');
  process.stderr.write(`demo: generating the tiny CLIP model in ${modelDir}\n`);
  if (!existsSync(join(modelDir, 'config.json'))) await makeModel({ preset: 'tiny', outDir: modelDir, seed: 42 });
  process.stderr.write(`demo: drawing 500 image-caption pairs into ${data}\n`);
  await makeDataset({ path: data, rows: 500, kind: 'pairs', seed: 7 });
  await rm(output, { recursive: true, force: true });
  process.stderr.write('demo: vecmill run --input … --model … --output … --split-size 256KiB --formats npy,tsv\n');
  const code = await main(['run', '--input', data, '--model', modelDir, '--output', output, '--split-size', '256KiB', '--formats', 'npy,tsv']);
  if (code === 0) {
    process.stdout.write(`\ndemo: done. Look at ${output}/ (embeddings/, img_emb/, text_emb/, metadata/, text_feat/, image_feat/, manifest.json) or run:\n  npx vecmill inspect ${output}\n`);
  }
  return code;
}

demo().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
