import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import { outputKeys } from '@vecmill/shared/run-plan';
import { openStore } from '@vecmill/shared/storage/open-store';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { runEmbedded } from 'vecmill/embedded-run';
import { checkRowIds, readParts, runConfig } from '../support/run-helpers.js';
import { startS3Server, type S3TestServer } from '../support/s3-server.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

describe('vecmill run with s3:// input, model and output (real S3-compatible server)', () => {
  let s3: S3TestServer;
  let dir: string;
  let cleanup: () => Promise<void>;
  let env: NodeJS.ProcessEnv;
  let bucket: ObjectStore;
  let captions: string[];
  const rows = 200;
  const secret = 'SENTINEL-secret-key-never-logged';

  before(async () => {
    s3 = await startS3Server({ buckets: ['vecmill-data'], secretAccessKey: secret });
    ({ dir, cleanup } = await makeTempDir('run-s3'));
    env = { VECMILL_S3_ENDPOINT: s3.endpoint, AWS_REGION: s3.region, AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey, VECMILL_CACHE: join(dir, 'cache') };
    bucket = openStore({ kind: 's3', bucket: 'vecmill-data', key: '' }, s3.clientOptions);
    const half = rows / 2;
    const a = await makeDataset({ path: join(dir, 'a.tsv'), rows: half, kind: 'pairs', seed: 11, imageSize: 40 });
    const b = await makeDataset({ path: join(dir, 'b.tsv'), rows: half, kind: 'pairs', seed: 12, imageSize: 40, urlSafe: true });
    captions = [...a.captions, ...b.captions];
    await bucket.put('in/part-a.tsv', createReadStream(join(dir, 'a.tsv')));
    await bucket.put('in/part-b.tsv', createReadStream(join(dir, 'b.tsv')));
    const model = await tinyModelDir();
    for (const f of ['config.json', 'preprocessor_config.json', 'tokenizer.json', 'tokenizer_config.json', 'onnx/text_model.onnx', 'onnx/vision_model.onnx']) {
      if ((await stat(join(model, f)).catch(() => undefined)) !== undefined) await bucket.put(`models/tiny/${f}`, createReadStream(join(model, f)));
    }
  });
  after(async () => {
    await s3.close();
    await cleanup();
  });

  it('reads a prefix with ranged GETs, loads the model from S3, publishes to S3 in row order', async () => {
    const config = runConfig(['--input', 's3://vecmill-data/in/', '--model', 's3://vecmill-data/models/tiny/', '--output', 's3://vecmill-data/out/run1/', '--split-size', '8KiB', '--batch-size', '16'], env);
    const result = await runEmbedded(config, () => undefined);
    assert.equal(result.manifest.rows.in, rows);
    assert.equal(result.manifest.rows.ok, rows);
    assert.deepEqual(result.manifest.inputs.map((i) => i.uri), ['s3://vecmill-data/in/part-a.tsv', 's3://vecmill-data/in/part-b.tsv']);
    const out = openStore({ kind: 's3', bucket: 'vecmill-data', key: 'out/run1/' }, s3.clientOptions);
    assert.equal(await out.exists(outputKeys.success), true);
    const texts: (string | null)[] = [];
    const ids: number[] = [];
    for (const t of await readParts(out, result.manifest)) {
      for (let i = 0; i < t.numRows; i++) {
        const r = t.row(i);
        texts.push(r.text);
        ids.push(r.rowIndex as number);
      }
    }
    assert.deepEqual(await checkRowIds(out, result.manifest), [...Array(rows).keys()], 'positions from the manifest are 0…n-1 in output order');
    assert.equal(new Set(ids).size, rows, 'ids are unique');
    assert.deepEqual(texts, captions);
    const manifestText = (await out.read(outputKeys.manifest)).toString();
    assert.ok(!manifestText.includes(secret), 'the secret key never reaches the manifest');
    assert.ok(!(await out.read(outputKeys.plan)).toString().includes(secret), 'nor plan.json');
  });

  it('a re-run after losing one marker recomputes only that split', async () => {
    const out = openStore({ kind: 's3', bucket: 'vecmill-data', key: 'out/run1/' }, s3.clientOptions);
    await out.delete(outputKeys.success);
    await out.delete(outputKeys.shardMarker(2));
    const config = runConfig(['--input', 's3://vecmill-data/in/', '--model', 's3://vecmill-data/models/tiny/', '--output', 's3://vecmill-data/out/run1/', '--split-size', '8KiB', '--batch-size', '16'], env);
    const result = await runEmbedded(config, () => undefined);
    assert.equal(result.splitsComputed, 1);
    assert.equal(result.manifest.rows.in, rows);
  });
});
