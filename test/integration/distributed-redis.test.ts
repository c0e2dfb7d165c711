import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Job, Queue, Worker } from 'bullmq';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import { makeModel } from '@vecmill/tools/modelgen/make-model';
import { queueNames, splitJobId } from '@vecmill/shared/queue/queue-names';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { runEmbedded } from 'vecmill/embedded-run';
import { readOutputRows, runCli, spawnWorker, waitUntil, type OutputRows, type WorkerProcess } from '../support/distributed-helpers.js';
import { redisSkipReason, startRedisServer, type RedisTestServer } from '../support/redis-server.js';
import { runConfig } from '../support/run-helpers.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

const skip = redisSkipReason();
const PASSWORD = 'sentinel-pw-9f3c';

describe('distributed mode: Redis restarts, flushes and long batches', { skip }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let model: string;
  let redis: RedisTestServer;
  let reference: OutputRows;
  const workers: WorkerProcess[] = [];
  const embedFlags = (output: string): string[] => ['--input', join(dir, 'pairs.tsv'), '--model', model, '--output', output, '--split-size', '4KiB', '--batch-size', '4'];

  before(async () => {
    ({ dir, cleanup } = await makeTempDir('dist-redis'));
    model = await tinyModelDir();
    await makeDataset({ path: join(dir, 'pairs.tsv'), rows: 120, kind: 'pairs', seed: 17, imageSize: 32 });
    redis = await startRedisServer({ appendonly: true, password: PASSWORD });
    await runEmbedded(runConfig(embedFlags(join(dir, 'reference'))), () => undefined);
    reference = await readOutputRows(new LocalStore(join(dir, 'reference')));
  });
  after(async () => {
    for (const w of workers) w.child.kill('SIGKILL');
    await redis?.stop();
    await cleanup?.();
  });

  const worker = (prefix: string, flags: readonly string[] = []): WorkerProcess => {
    const w = spawnWorker(redis.url, ['--prefix', prefix, '--lock-duration', '2000', '--stalled-interval', '500', ...flags]);
    workers.push(w);
    return w;
  };
  const produce = async (prefix: string, output: string): Promise<string> => {
    const r = await runCli(['produce', '--redis', redis.url, '--prefix', prefix, ...embedFlags(output)]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, new RegExp(PASSWORD));
    return r.stdout.trim();
  };
  const stop = async (...ws: WorkerProcess[]): Promise<void> => {
    for (const w of ws) w.child.kill('SIGTERM');
    for (const w of ws) assert.equal(await w.exited, 0, w.stderr());
  };

  it('a Redis restart (AOF on) in the middle of a run: workers reconnect and the run finishes', async () => {
    const out = join(dir, 'restart');
    const runId = await produce('restart', out);
    const w = worker('restart');
    await w.waitFor((l) => l['event'] === 'split-done');
    await redis.restart();
    const doneBefore = w.lines.filter((l) => l['event'] === 'split-done').length;
    assert.ok(!readdirSync(out).includes('_SUCCESS'), 'the restart happened mid-run');
    await waitUntil(() => readdirSync(out).includes('_SUCCESS'), 90_000, '_SUCCESS after the restart');
    await stop(w);
    assert.deepEqual(await readOutputRows(new LocalStore(out)), reference);
    assert.ok(w.lines.filter((l) => l['event'] === 'split-done').length > doneBefore, 'splits were done after the restart');
    assert.doesNotMatch(w.stderr(), new RegExp(PASSWORD), 'the password never reaches the log');
    const status = await runCli(['status', '--redis', redis.url, '--prefix', 'restart', '--run', runId]);
    assert.equal(status.code, 0, status.stdout + status.stderr);
  });

  it('FLUSHALL in the middle of a run: produce --resume re-enqueues only the missing splits, identical output', async () => {
    const out = join(dir, 'flushed');
    const runId = await produce('flush', out);
    const w = worker('flush');
    await w.waitFor((l) => l['event'] === 'split-done' && Number(l['split']) >= 2);
    const client = await redis.client();
    await client.flushall();
    const lost = await runCli(['status', '--redis', redis.url, '--prefix', 'flush', '--run', runId]);
    assert.equal(lost.code, 1);
    assert.match(lost.stderr, /does not know run/);
    const committedBefore = readdirSync(join(out, 'shards')).filter((f) => f.endsWith('.done.json')).length;
    const resumed = await runCli(['produce', '--redis', redis.url, '--prefix', 'flush', '--resume', runId, '--output', out]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(resumed.stdout.trim(), runId);
    const [, pending, total] = /(\d+) of (\d+) splits enqueued/.exec(resumed.stderr) ?? [];
    assert.ok(Number(pending) < Number(total), `only missing splits are enqueued: ${resumed.stderr}`);
    assert.ok(Number(pending) <= Number(total) - committedBefore);
    await waitUntil(() => readdirSync(out).includes('_SUCCESS'), 90_000, '_SUCCESS after the resume');
    await stop(w);
    assert.deepEqual(await readOutputRows(new LocalStore(out)), reference);
  });

  it('a batch several times longer than the lock duration never stalls its job (inference runs off the event loop)', async () => {
    const vit = join(dir, 'vit-b-32');
    await makeModel({ preset: 'vit-b-32', outDir: vit, seed: 1, variants: ['fp32'] });
    await makeDataset({ path: join(dir, 'images.tsv'), rows: 96, kind: 'image', seed: 2, imageSize: 64 });
    const out = join(dir, 'long-batch');
    const r = await runCli(['produce', '--redis', redis.url, '--prefix', 'long', '--input', join(dir, 'images.tsv'), '--model', vit, '--output', out, '--batch-size', '48']);
    assert.equal(r.code, 0, r.stderr);
    const runId = r.stdout.trim();
    // Short enough that every batch outlasts it several times, long enough that a 2-core machine
    // running other test files beside this one still renews it (renewal runs every lockMs / 2).
    const lockMs = 600;
    const w = worker('long', ['--lock-duration', String(lockMs), '--stalled-interval', '300']);
    const embedQ = new Queue(queueNames.embed, { connection: await redis.client(), prefix: 'long' });
    await waitUntil(async () => (await (await Job.fromId(embedQ, splitJobId(runId, 0)))?.getState()) === 'active', 60_000, 'the split to start');
    const stolen: string[] = [];
    const watcher = new Worker(
      queueNames.embed,
      async (job) => {
        if (job.name !== 'gate') stolen.push(String(job.id));
      },
      { connection: { host: '127.0.0.1', port: redis.port, password: PASSWORD, maxRetriesPerRequest: null }, prefix: 'long', stalledInterval: 300, lockDuration: lockMs },
    );
    try {
      await waitUntil(() => readdirSync(out).includes('_SUCCESS'), 120_000, '_SUCCESS');
      const job = (await Job.fromId(embedQ, splitJobId(runId, 0)))!;
      const line = await w.waitFor((l) => l['event'] === 'split-done');
      const manifest = JSON.parse((await new LocalStore(out).read('manifest.json')).toString('utf8')) as { timings: { infer: number } };
      assert.ok(manifest.timings.infer > 2 * lockMs, `each batch outlasts the lock (infer ${manifest.timings.infer} ms over 2 batches)`);
      assert.equal(line['computed'], true);
      assert.deepEqual(stolen, [], 'no stalled job was handed to another worker');
      assert.equal(job.stalledCounter, 0);
      assert.equal(job.attemptsStarted, 1);
      assert.ok(!w.lines.some((l) => l['event'] === 'job-stalled'));
    } finally {
      await watcher.close();
      await embedQ.close();
      await stop(w);
    }
  });
});
