import assert from 'node:assert/strict';
import { appendFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import { loadProduceConfig } from '@vecmill/shared/config';
import { gateJobId, mergeJobId, queueNames } from '@vecmill/shared/queue/queue-names';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { produceRun } from '@vecmill/producer/produce-run';
import { runEmbedded } from 'vecmill/embedded-run';
import { readOutputRows, runCli, spawnWorker, waitUntil, type OutputRows, type WorkerProcess } from '../support/distributed-helpers.js';
import { assertNoNullVectors, parquetFilesUnder } from '../support/parquet-vectors.js';
import { redisSkipReason, startRedisServer, type RedisTestServer } from '../support/redis-server.js';
import { runConfig } from '../support/run-helpers.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

const skip = redisSkipReason();

describe('distributed mode on a real Redis (local files)', { skip }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let model: string;
  let redis: RedisTestServer;
  let client: Redis;
  let reference: OutputRows;
  const workers: WorkerProcess[] = [];
  const embedFlags = (output: string, input = 'pairs.tsv'): string[] => ['--input', join(dir, input), '--model', model, '--output', output, '--split-size', '8KiB', '--batch-size', '8'];

  before(async () => {
    ({ dir, cleanup } = await makeTempDir('dist'));
    model = await tinyModelDir();
    await makeDataset({ path: join(dir, 'pairs.tsv'), rows: 160, kind: 'pairs', seed: 11, imageSize: 32 });
    redis = await startRedisServer();
    client = await redis.client();
    await runEmbedded(runConfig([...embedFlags(join(dir, 'reference'))]), () => undefined);
    reference = await readOutputRows(new LocalStore(join(dir, 'reference')));
  });
  after(async () => {
    for (const w of workers) w.child.kill('SIGKILL');
    await redis?.stop();
    await cleanup?.();
  });

  const produce = async (prefix: string, output: string, extra: readonly string[] = []): Promise<string> => {
    const r = await runCli(['produce', '--redis', redis.url, '--prefix', prefix, ...embedFlags(output), ...extra]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  const status = (prefix: string, runId: string) => runCli(['status', '--redis', redis.url, '--prefix', prefix, '--run', runId, '--json']);
  const worker = (prefix: string, flags: readonly string[] = []): WorkerProcess => {
    const w = spawnWorker(redis.url, ['--prefix', prefix, '--stalled-interval', '1000', '--lock-duration', '3000', ...flags]);
    workers.push(w);
    return w;
  };
  const stopAll = async (ws: readonly WorkerProcess[]): Promise<void> => {
    for (const w of ws) w.child.kill('SIGTERM');
    for (const w of ws) assert.equal(await w.exited, 0, w.stderr());
  };

  it('three worker processes produce the embedded mode’s ids, texts and embeddings; status says succeeded', async () => {
    const out = join(dir, 'three');
    const runId = await produce('three', out);
    const running = await status('three', runId);
    assert.equal(running.code, 3, running.stderr);
    const ws = [worker('three', ['--metrics-port', '0']), worker('three'), worker('three')];
    await waitUntil(() => readdirSync(out).includes('_SUCCESS'), 120_000, '_SUCCESS');
    const port = Number((await ws[0]!.waitFor((l) => l['event'] === 'worker-ready'))['metricsPort']);
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(health.status, 200);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const okRows = Number(/^vecmill_rows_total\{status="ok"\} (\d+)$/m.exec(metrics)?.[1]);
    assert.ok(okRows > 0, metrics);
    assert.match(metrics, /^vecmill_split_stage_seconds_count\{stage="infer"\} [1-9]/m);
    assert.match(metrics, /^vecmill_batch_stage_seconds_count\{stage="decode"\} [1-9]/m);
    assert.match(metrics, /^vecmill_jobs_finished_total\{queue="embed",outcome="completed"\} [1-9]/m);
    assert.match(metrics, /^vecmill_jobs_active\{queue="embed"\} 0$/m);
    await stopAll(ws);
    assert.deepEqual(await readOutputRows(new LocalStore(out)), reference);
    assert.ok((await assertNoNullVectors(parquetFilesUnder(out))).some((n) => n === 2), 'worker-written chunks and parts declare their vectors required, without nulls');
    const done = await status('three', runId);
    assert.equal(done.code, 0, done.stderr);
    const s = JSON.parse(done.stdout) as { state: string; splits: { done: number; total: number }; rows: { done: number } };
    assert.equal(s.state, 'succeeded');
    assert.equal(s.splits.done, s.splits.total);
    assert.equal(s.rows.done, 160);
    const computed = ws.flatMap((w) => w.lines.filter((l) => l['event'] === 'split-done' && l['computed'] === true).map((l) => l['split']));
    assert.equal(computed.length, s.splits.total, 'every split computed exactly once');
    assert.equal(new Set(computed).size, s.splits.total);
  });

  it('a produce that crashed halfway, then run twice, enqueues nothing twice and gives identical output', async () => {
    const out = join(dir, 'crashed');
    const config = loadProduceConfig(['--redis', redis.url, '--prefix', 'crash', '--chunk-size', '4', '--run-id', 'crashrun', ...embedFlags(out)]);
    await assert.rejects(
      produceRun(config, {
        onChunk: (added) => {
          if (added >= 8) throw new Error('simulated crash after two chunks');
        },
      }),
      /simulated crash/,
    );
    const embedQ = new Queue(queueNames.embed, { connection: client, prefix: 'crash' });
    const mergeQ = new Queue(queueNames.merge, { connection: client, prefix: 'crash' });
    try {
      const gate = await Job.fromId(embedQ, gateJobId('crashrun'));
      assert.equal(await gate?.getState(), 'delayed', 'the gate holds the merge back');
      assert.equal(await (await Job.fromId(mergeQ, mergeJobId('crashrun')))?.getState(), 'waiting-children');
      const half = await status('crash', 'crashrun');
      assert.equal(half.code, 3);
      assert.equal((JSON.parse(half.stdout) as { enqueued: boolean }).enqueued, false);

      await produce('crash', out, ['--run-id', 'crashrun', '--chunk-size', '4']);
      await produce('crash', out, ['--run-id', 'crashrun', '--chunk-size', '4']);
      const splits = (JSON.parse((await status('crash', 'crashrun')).stdout) as { splits: { total: number } }).splits.total;
      const counts = await embedQ.getJobCounts();
      const embedJobs = Object.values(counts).reduce((a, b) => a + b, 0);
      assert.equal(embedJobs, splits + 1, `one job per split plus the gate: ${JSON.stringify(counts)}`);
      const mergeCounts = await mergeQ.getJobCounts();
      assert.equal(Object.values(mergeCounts).reduce((a, b) => a + b, 0), 1);

      const w = worker('crash');
      await waitUntil(() => readdirSync(out).includes('_SUCCESS'), 90_000, '_SUCCESS');
      await stopAll([w]);
      assert.deepEqual(await readOutputRows(new LocalStore(out)), reference);
      const again = await runCli(['produce', '--redis', redis.url, '--prefix', 'crash', '--run-id', 'crashrun', ...embedFlags(out)]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stderr, /already complete/);
    } finally {
      await Promise.all([embedQ.close(), mergeQ.close()]);
    }
  });

  it('SIGTERM while a split is active: the worker drains and exits 0, and nothing is lost', async () => {
    const out = join(dir, 'drain');
    const runId = await produce('drain', out);
    const w = worker('drain');
    const embedQ = new Queue(queueNames.embed, { connection: client, prefix: 'drain' });
    try {
      await waitUntil(async () => (await embedQ.getActiveCount()) > 0, 30_000, 'an active split');
      w.child.kill('SIGTERM');
      assert.equal(await w.exited, 0, w.stderr());
      assert.ok(w.lines.some((l) => l['event'] === 'worker-stopped'));
      assert.equal(await embedQ.getActiveCount(), 0, 'no job left locked by the stopped worker');
      const w2 = worker('drain');
      await waitUntil(() => readdirSync(out).includes('_SUCCESS'), 90_000, '_SUCCESS');
      await stopAll([w2]);
      assert.deepEqual(await readOutputRows(new LocalStore(out)), reference);
      assert.equal((await status('drain', runId)).code, 0);
    } finally {
      await embedQ.close();
    }
  });

  it('a split whose input changed fails as unrecoverable; status exits 1 naming the split', async () => {
    await makeDataset({ path: join(dir, 'changing.tsv'), rows: 40, kind: 'pairs', seed: 5, imageSize: 32 });
    const out = join(dir, 'failing');
    const r = await runCli(['produce', '--redis', redis.url, '--prefix', 'fail', ...embedFlags(out, 'changing.tsv'), '--attempts', '3']);
    assert.equal(r.code, 0, r.stderr);
    const runId = r.stdout.trim();
    appendFileSync(join(dir, 'changing.tsv'), 'late line\tAAAA\n');
    const w = worker('fail');
    await waitUntil(async () => (await status('fail', runId)).code === 1, 60_000, 'the run to fail');
    await stopAll([w]);
    const s = JSON.parse((await status('fail', runId)).stdout) as { state: string; failures: { job: string; error: string }[] };
    assert.equal(s.state, 'failed');
    assert.ok(s.failures.length > 0);
    assert.match(s.failures[0]!.job, new RegExp(`^${runId}-split-\\d+$`));
    assert.match(s.failures[0]!.error, /changed after the run was planned.*E_INPUT/);
    assert.ok(!readdirSync(out).includes('_SUCCESS'), 'no partial output is published');
    const human = await runCli(['status', '--redis', redis.url, '--prefix', 'fail', '--run', runId]);
    assert.equal(human.code, 1);
    assert.match(human.stdout, /FAILED .*-split-\d+/);
  });

  it('malicious jobs added straight to the queue fail as unrecoverable and touch nothing', async () => {
    const out = join(dir, 'three');
    const plan = JSON.parse((await new LocalStore(out).read('plan.json')).toString('utf8')) as { runId: string; inputs: { uri: string; etag: string }[]; splits: { start: number; end: number }[]; model: { location: string; fingerprint: { id: string } } };
    const good = {
      v: 1,
      kind: 'embed',
      runId: plan.runId,
      output: out,
      split: 0,
      input: { uri: plan.inputs[0]!.uri, start: plan.splits[0]!.start, end: plan.splits[0]!.end, etag: plan.inputs[0]!.etag },
      model: { location: plan.model.location, fingerprint: plan.model.fingerprint.id },
    };
    const bad: Record<string, unknown> = {
      foreignBucket: { ...good, output: 's3://someone-elses-bucket/loot/' },
      dotdot: { ...good, output: `${out}/../../etc` },
      fileUrl: { ...good, input: { ...good.input, uri: 'file:///etc/passwd' } },
      metadata: { ...good, input: { ...good.input, uri: 'http://169.254.169.254/latest/meta-data/' } },
      otherFile: { ...good, input: { ...good.input, uri: '/etc/passwd' } },
      unknownField: { ...good, exec: 'rm -rf /' },
      mergeElsewhere: { v: 1, kind: 'merge', runId: plan.runId, output: '/tmp', splits: 1 },
    };
    const before = listTree(out);
    const embedQ = new Queue(queueNames.embed, { connection: client, prefix: 'three' });
    const mergeQ = new Queue(queueNames.merge, { connection: client, prefix: 'three' });
    try {
      for (const [name, data] of Object.entries(bad)) {
        await (name === 'mergeElsewhere' ? mergeQ : embedQ).add(name, data, { jobId: `evil-${name}`, attempts: 5, backoff: { type: 'fixed', delay: 10 } });
      }
      const w = worker('three');
      for (const name of Object.keys(bad)) {
        const q = name === 'mergeElsewhere' ? mergeQ : embedQ;
        await waitUntil(async () => (await (await Job.fromId(q, `evil-${name}`))?.getState()) === 'failed', 30_000, `job ${name} to fail`);
        const job = (await Job.fromId(q, `evil-${name}`))!;
        assert.equal(job.attemptsMade, 1, `${name} is not retried`);
        assert.match(job.failedReason, /E_PAYLOAD/, name);
      }
      await stopAll([w]);
      assert.deepEqual(listTree(out), before, 'the output is untouched');
    } finally {
      await Promise.all([embedQ.close(), mergeQ.close()]);
    }
  });

  it('works over rediss:// with a private CA and a password, which never appears in output', async () => {
    const secret = 'tls-pw-51d0';
    const tls = await startRedisServer({ tls: true, password: secret });
    try {
      const ca = ['--redis-ca', tls.caFile!];
      const out = join(dir, 'tls');
      const produced = await runCli(['produce', '--redis', tls.url, ...ca, ...embedFlags(out)]);
      assert.equal(produced.code, 0, produced.stderr);
      const runId = produced.stdout.trim();
      const w = spawnWorker(tls.url, [...ca, '--stalled-interval', '1000']);
      workers.push(w);
      await waitUntil(() => readdirSync(out).includes('_SUCCESS'), 90_000, '_SUCCESS over TLS');
      await stopAll([w]);
      const s = await runCli(['status', '--redis', tls.url, ...ca, '--run', runId]);
      assert.equal(s.code, 0, s.stderr);
      const untrusted = await runCli(['status', '--redis', tls.url, '--run', runId]);
      assert.equal(untrusted.code, 1);
      assert.match(untrusted.stderr, /cannot reach Redis at rediss:\/\/:\*\*\*@127\.0\.0\.1/);
      for (const text of [produced.stderr, produced.stdout, w.stderr(), s.stdout, untrusted.stderr]) assert.doesNotMatch(text, new RegExp(secret));
    } finally {
      await tls.stop();
    }
  });

  it('refuses an evicting Redis and reports an unreachable one with a clear error instead of hanging', async () => {
    const lru = await startRedisServer({ maxmemoryPolicy: 'allkeys-lru' });
    try {
      const r = await runCli(['produce', '--redis', lru.url, ...embedFlags(join(dir, 'lru'))]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /maxmemory-policy allkeys-lru.*noeviction/);
    } finally {
      await lru.stop();
    }
    const down = 'redis://:hunter2secret@127.0.0.1:1';
    for (const args of [['produce', '--redis', down, ...embedFlags(join(dir, 'down'))], ['worker', '--redis', down], ['status', '--redis', down, '--run', 'x']]) {
      const r = await runCli(args);
      assert.equal(r.code, 1, args[0]);
      assert.match(r.stderr, /cannot reach Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1/);
      assert.doesNotMatch(r.stderr, /hunter2secret/);
    }
  });
});

/** Every file below a folder with its size: "touched nothing" means this does not change. */
function listTree(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
}
