import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import { outputKeys } from '@vecmill/shared/run-plan';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { runEmbedded } from 'vecmill/embedded-run';
import { readOutputRows, runCli, spawnWorker, waitUntil, type OutputRows, type WorkerProcess } from '../support/distributed-helpers.js';
import { redisSkipReason, startRedisServer, type RedisTestServer } from '../support/redis-server.js';
import { runConfig } from '../support/run-helpers.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

const skip = redisSkipReason();

/**
 * The inference thread of a real `vecmill worker` dies mid-split (VECMILL_FAULT_INFERENCE_EXIT
 * makes it exit on a given request, as a crash inside onnxruntime would end it): the job that held
 * it is retried, the worker starts a new thread and keeps serving, /healthz says healthy again, and
 * the run publishes what the embedded mode publishes.
 */
describe('distributed mode: the inference thread dies under a real worker', { skip, timeout: 180_000 }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let model: string;
  let redis: RedisTestServer;
  let reference: OutputRows;
  const workers: WorkerProcess[] = [];
  const embedFlags = (output: string): string[] => ['--input', join(dir, 'pairs.tsv'), '--model', model, '--output', output, '--split-size', '8KiB', '--batch-size', '8'];

  before(async () => {
    ({ dir, cleanup } = await makeTempDir('dist-thread-crash'));
    model = await tinyModelDir();
    await makeDataset({ path: join(dir, 'pairs.tsv'), rows: 96, kind: 'pairs', seed: 13, imageSize: 32 });
    redis = await startRedisServer();
    await runEmbedded(runConfig(embedFlags(join(dir, 'reference'))), () => undefined);
    reference = await readOutputRows(new LocalStore(join(dir, 'reference')));
  });
  after(async () => {
    for (const w of workers) w.child.kill('SIGKILL');
    await redis?.stop();
    await cleanup?.();
  });

  it('the job is retried on a new thread, the worker keeps serving, and the run publishes the clean output', async () => {
    const out = join(dir, 'out');
    const produced = await runCli(['produce', '--redis', redis.url, '--prefix', 'crash', ...embedFlags(out), '--backoff', '100']);
    assert.equal(produced.code, 0, produced.stderr);
    const w = spawnWorker(redis.url, ['--prefix', 'crash', '--metrics-port', '0'], { VECMILL_FAULT_INFERENCE_EXIT: '5' });
    workers.push(w);
    const port = Number((await w.waitFor((l) => l['event'] === 'worker-ready'))['metricsPort']);

    const crash = await w.waitFor((l) => l['event'] === 'inference-thread' && /exited/.test(String(l['message'])));
    assert.match(String(crash['message']), /the inference thread exited \(code 70\)/);
    const jobError = await w.waitFor((l) => l['event'] === 'job-error');
    assert.equal(jobError['final'], false, 'one thread crash is retryable');
    await w.waitFor((l) => l['event'] === 'inference-thread' && /is ready/.test(String(l['message'])));

    const store = new LocalStore(out);
    await waitUntil(() => store.exists(outputKeys.success), 120_000, '_SUCCESS');
    assert.deepEqual(await readOutputRows(store), reference);
    const manifest = JSON.parse((await store.read('manifest.json')).toString('utf8')) as { rows: { failed: number } };
    assert.equal(manifest.rows.failed, 0, 'the crash left no error rows');
    assert.equal(w.lines.filter((l) => l['event'] === 'job-error').length, 1, 'exactly the one attempt that held the thread failed');

    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(health.status, 200, 'healthy again once the new thread is ready');
    assert.equal(w.child.exitCode, null, 'the worker process is still serving');
    w.child.kill('SIGTERM');
    assert.equal(await w.exited, 0, w.stderr());
  });
});
