import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { distributedDefaults, loadProduceConfig, loadStatusConfig, loadWorkerConfig } from '@vecmill/shared/config';
import { ConfigError, UsageError } from '@vecmill/shared/errors';
import { redactRedisUrl, redisOptions } from '@vecmill/shared/queue/bullmq-connection';

describe('distributed config', () => {
  it('produce takes the embedding flags of `run` plus its own', () => {
    const c = loadProduceConfig(['--redis', 'redis://h:6379', '--input', 'a.tsv', '--model', 'm', '--output', 'o', '--split-size', '1MiB', '--prefix', 'tenant-a', '--chunk-size=50', '--run-id', 'r1'], {});
    assert.equal(c.prefix, 'tenant-a');
    assert.equal(c.chunkSize, 50);
    assert.equal(c.attempts, distributedDefaults.attempts);
    assert.equal(c.run?.splitSize, 1024 * 1024);
    assert.equal(c.run?.runId, 'r1');
    assert.equal(c.resume, undefined);
  });

  it('produce --resume needs no inputs; the run id must be safe', () => {
    const c = loadProduceConfig(['--redis', 'redis://h', '--resume', 'r1', '--output', '/out'], {});
    assert.equal(c.run, undefined);
    assert.equal(c.output, '/out');
    assert.throws(() => loadProduceConfig(['--redis', 'redis://h', '--resume', 'a:b'], {}), ConfigError);
  });

  for (const form of [['-o', '/out'], ['--output', '/out'], ['--output=/out'], ['-o/out']]) {
    it(`produce --resume keeps the output given as ${form.join(' ')}`, () => {
      const c = loadProduceConfig(['--redis', 'redis://h', '--resume', 'r1', ...form], {});
      assert.equal(c.run, undefined);
      assert.equal(c.output, '/out');
    });
  }

  it('produce --resume with embedding flags plans run ID, and refuses a --run-id naming another run', () => {
    const c = loadProduceConfig(['--redis', 'redis://h', '--resume', 'r1', '-i', 'a.tsv', '-m', 'm', '-o', '/out'], {});
    assert.equal(c.run?.runId, 'r1');
    assert.equal(c.output, '/out');
    assert.throws(() => loadProduceConfig(['--redis', 'redis://h', '--resume', 'r1', '-i', 'a.tsv', '-m', 'm', '-o', '/out', '--run-id', 'r2'], {}), UsageError);
  });

  it('a missing --redis, a bad prefix or a bad flag is one ConfigError', () => {
    assert.throws(() => loadStatusConfig(['--run', 'r'], {}), /--redis is required/);
    assert.equal(loadStatusConfig(['--run', 'r'], { VECMILL_REDIS_URL: 'redis://env:1' }).redis.url, 'redis://env:1');
    assert.throws(() => loadWorkerConfig(['--redis', 'redis://h', '--prefix', 'a:b'], {}), /--prefix/);
    assert.throws(() => loadWorkerConfig(['--redis', 'redis://h', '--queues', 'embed,shell'], {}), /--queues shell/);
    assert.throws(() => loadWorkerConfig(['--redis', 'redis://h', '--bogus'], {}), /^UsageError: unknown flag --bogus$/);
    assert.throws(() => loadProduceConfig(['--redis', 'redis://h', '--input', 'a', '--model', 'm', '--output', 'o', '--bogus'], {}), /^UsageError: unknown flag --bogus$/);
  });

  it('worker flags have documented defaults', () => {
    const c = loadWorkerConfig(['--redis', 'redis://h', '--queues', 'merge', '--metrics-port', '9100'], {});
    assert.deepEqual(c.queues, ['merge']);
    assert.equal(c.metricsPort, 9100);
    assert.equal(c.lockDurationMs, distributedDefaults.lockDurationMs);
    assert.equal(c.concurrency, distributedDefaults.concurrency);
  });
});

describe('Redis connections', () => {
  it('redacts passwords, keeping the user name', () => {
    assert.equal(redactRedisUrl('redis://:s3cret@host:6379/0'), 'redis://:***@host:6379/0');
    assert.equal(redactRedisUrl('rediss://app:s3cret@host:6380'), 'rediss://app:***@host:6380');
    assert.equal(redactRedisUrl('redis://host:6379'), 'redis://host:6379');
  });

  it('workers wait out outages, clients fail fast; rediss:// turns TLS on', () => {
    const worker = redisOptions({ url: 'redis://u:p%40ss@h:7000/2' }, 'worker');
    assert.equal(worker.maxRetriesPerRequest, null);
    assert.deepEqual([worker.host, worker.port, worker.db, worker.username, worker.password], ['h', 7000, 2, 'u', 'p@ss']);
    const client = redisOptions({ url: 'rediss://h' }, 'client');
    assert.equal(client.maxRetriesPerRequest, 1);
    assert.equal(client.enableOfflineQueue, false);
    assert.deepEqual(client.tls, {});
    assert.throws(() => redisOptions({ url: 'http://h' }, 'client'), ConfigError);
    assert.throws(() => redisOptions({ url: 'redis://h', caFile: '/ca.pem' }, 'client'), /rediss/);
    assert.throws(() => redisOptions({ url: 'redis://:pw@h/x' }, 'client'), (err: Error) => !err.message.includes('pw@'));
  });
});
