import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { loadWorkerConfig } from '@vecmill/shared/config';
import { checkRedisSettings } from '@vecmill/shared/queue/redis-checks';
import { startWorker, type RunningWorker } from '@vecmill/worker/worker-main';
import { projectRoot } from '../support/fixtures.js';
import { renderKustomization } from '../support/k8s-kustomize.js';
import { makeTempDir } from '../support/tmp.js';

type Json = Record<string, any>;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * The deployment's runtime contract, end to end: Redis started from infra/redis.conf, and a
 * worker started with the k8s Deployment's own arguments, answering the probe and scrape paths
 * the manifests name.
 */
describe('deployed worker endpoints', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let redis: ChildProcess | undefined;
  let redisUrl = '';
  let worker: RunningWorker | undefined;
  const objects = renderKustomization(join(projectRoot, 'k8s', 'overlays', 'cpu'));
  const deployment = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'vecmill-worker') as Json;
  const container = deployment['spec'].template.spec.containers[0];
  const monitor = objects.find((o) => o.kind === 'ServiceMonitor') as Json;

  const startRedis = async (port: number): Promise<void> => {
    redis = spawn('redis-server', [join(projectRoot, 'infra', 'redis.conf'), '--port', String(port), '--bind', '127.0.0.1', '--dir', tmp.dir], { stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => undefined);
      const up = await probe.connect().then(() => probe.ping().then(() => true), () => false);
      probe.disconnect();
      if (up) return;
      await sleep(50);
    }
    throw new Error('redis-server did not start');
  };

  before(async () => {
    tmp = await makeTempDir('deploy-endpoints');
    const port = await freePort();
    redisUrl = `redis://127.0.0.1:${port}`;
    await startRedis(port);
  });

  after(async () => {
    await worker?.close();
    if (redis?.exitCode === null) {
      redis.kill('SIGTERM');
      await once(redis, 'exit');
    }
    await tmp.cleanup();
  });

  test('infra/redis.conf gives the noeviction + AOF Redis that workers accept', async () => {
    const client = new Redis(redisUrl);
    try {
      assert.deepEqual(await client.config('GET', 'maxmemory-policy'), ['maxmemory-policy', 'noeviction']);
      assert.deepEqual(await client.config('GET', 'appendonly'), ['appendonly', 'yes']);
      assert.deepEqual(await client.config('GET', 'appendfsync'), ['appendfsync', 'everysec']);
      const warnings: string[] = [];
      await checkRedisSettings(client, 'test', (w) => warnings.push(w));
      assert.deepEqual(warnings, []);
    } finally {
      client.disconnect();
    }
  });

  test('a worker started with the Deployment\'s arguments answers /healthz and /metrics, turns unhealthy without Redis and recovers with it', async () => {
    assert.equal(container.args[0], 'worker');
    const args = [...container.args.slice(1)];
    const portIndex = args.indexOf('--metrics-port');
    assert.ok(portIndex > 0);
    args[portIndex + 1] = '0';
    const config = loadWorkerConfig(args, { VECMILL_REDIS_URL: redisUrl, VECMILL_CACHE: join(tmp.dir, 'cache') });
    worker = await startWorker({ ...config, threads: 1, decodeThreads: 1 }, () => undefined);
    const base = `http://127.0.0.1:${worker.metricsPort ?? 0}`;

    for (const probe of [container.readinessProbe, container.livenessProbe]) {
      const res = await fetch(`${base}${probe.httpGet.path}`);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'ok\n');
    }
    const scrape = await fetch(`${base}${monitor['spec'].endpoints[0].path}`);
    assert.equal(scrape.status, 200);
    assert.match(scrape.headers.get('content-type') ?? '', /^text\/plain/);
    const body = await scrape.text();
    for (const metric of ['vecmill_rows_total', 'vecmill_row_errors_total', 'vecmill_split_stage_seconds', 'vecmill_batch_stage_seconds', 'vecmill_jobs_active', 'vecmill_jobs_finished_total', 'vecmill_process_cpu_seconds_total', 'vecmill_process_resident_memory_bytes', 'vecmill_nodejs_eventloop_lag_seconds']) {
      assert.match(body, new RegExp(`^# TYPE ${metric} `, 'm'), `${metric} is exported (README's dashboard uses it)`);
    }

    redis?.kill('SIGTERM');
    if (redis !== undefined) await once(redis, 'exit');
    let status = 0;
    for (let i = 0; i < 100 && status !== 503; i++) {
      status = (await fetch(`${base}${container.livenessProbe.httpGet.path}`)).status;
      if (status !== 503) await sleep(100);
    }
    assert.equal(status, 503, 'liveness fails once Redis is gone, so the kubelet restarts a worker that lost it for good');

    await startRedis(Number(new URL(redisUrl).port));
    for (let i = 0; i < 100 && status !== 200; i++) {
      status = (await fetch(`${base}${container.readinessProbe.httpGet.path}`)).status;
      if (status !== 200) await sleep(100);
    }
    assert.equal(status, 200, 'ready again once Redis is back (the worker reconnects by itself)');
    await worker.close();
    worker = undefined;
  });
});
