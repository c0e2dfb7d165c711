import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeModel } from '@vecmill/tools/modelgen/make-model';

/**
 * The tiny generated model, made once per test process in a shared temp folder (seeded, so every
 * process gets identical files). Real ONNX graphs, milliseconds per batch.
 */
export async function tinyModelDir(): Promise<string> {
  const dir = join(tmpdir(), `vecmill-test-model-tiny-${process.pid}`);
  if (!existsSync(join(dir, 'config.json'))) {
    await mkdir(dir, { recursive: true });
    await makeModel({ preset: 'tiny', outDir: dir, seed: 42 });
  }
  return dir;
}
