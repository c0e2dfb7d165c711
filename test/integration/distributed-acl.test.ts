import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { runEmbedded } from 'vecmill/embedded-run';
import { readOutputRows, runCli, spawnWorker, type WorkerProcess } from '../support/distributed-helpers.js';
import { redisSkipReason, startRedisServer, type RedisTestServer } from '../support/redis-server.js';
import { runConfig } from '../support/run-helpers.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

const ACL_PASSWORD = 'acl-sentinel-pw-51d7';

/**
 * The README's least-privilege Redis user: keys under one prefix only, no admin or dangerous
 * commands (so no CONFIG GET, no FLUSHALL, no KEYS).
 */
const aclRule = (prefix: string): string[] => ['ACL', 'SETUSER', 'vecmill', 'reset', 'on', `>${ACL_PASSWORD}`, `~${prefix}:*`, '&*', '+@all', '-@admin', '-@dangerous', '+info', '+client|setname'];

describe('a Redis ACL user limited to the run key prefix is enough to run', { skip: redisSkipReason() }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let redis: RedisTestServer;
  let worker: WorkerProcess | undefined;

  before(async () => {
    ({ dir, cleanup } = await makeTempDir('dist-acl'));
    redis = await startRedisServer();
    const admin = await redis.client();
    await admin.call(...(aclRule('tenant1') as [string, ...string[]]));
  });
  after(async () => {
    worker?.child.kill('SIGKILL');
    await redis?.stop();
    await cleanup?.();
  });

  it('produce, worker and status work as that user; other prefixes are refused; the password never leaks', async () => {
    const model = await tinyModelDir();
    await makeDataset({ path: join(dir, 'pairs.tsv'), rows: 40, kind: 'pairs', seed: 8, imageSize: 32 });
    const flags = (out: string): string[] => ['--input', join(dir, 'pairs.tsv'), '--model', model, '--output', out, '--split-size', '4KiB'];
    const url = `redis://vecmill:${ACL_PASSWORD}@127.0.0.1:${redis.port}`;

    const denied = await runCli(['produce', '--redis', url, '--prefix', 'tenant2', '--run-id', 'other', ...flags(join(dir, 'denied'))]);
    assert.notEqual(denied.code, 0, 'a prefix outside the ACL key pattern is refused');
    assert.doesNotMatch(denied.stderr, new RegExp(ACL_PASSWORD));

    const produce = await runCli(['produce', '--redis', url, '--prefix', 'tenant1', '--run-id', 'acl-run', ...flags(join(dir, 'out'))]);
    assert.equal(produce.code, 0, produce.stderr);
    assert.match(produce.stderr, /maxmemory-policy/, 'CONFIG GET is not allowed: a warning, not a failure');
    worker = spawnWorker(url, ['--prefix', 'tenant1']);
    const status = await runCli(['status', '--redis', url, '--prefix', 'tenant1', '--run', 'acl-run', '--json', '--watch', '--interval', '200']);
    assert.equal(status.code, 0, status.stderr);
    const states = status.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { state: string }).state);
    assert.equal(states.at(-1), 'succeeded', '--watch follows the run until it ends, then exits 0');
    assert.ok(states.slice(0, -1).every((st) => st === 'running'));
    assert.ok(readdirSync(join(dir, 'out')).includes('_SUCCESS'));
    worker.child.kill('SIGTERM');
    assert.equal(await worker.exited, 0, worker.stderr());

    await runEmbedded(runConfig(flags(join(dir, 'reference'))), () => undefined);
    assert.deepEqual(await readOutputRows(new LocalStore(join(dir, 'out'))), await readOutputRows(new LocalStore(join(dir, 'reference'))));

    for (const text of [produce.stdout, produce.stderr, status.stdout, status.stderr, worker.stderr(), readFileSync(join(dir, 'out', 'manifest.json'), 'utf8'), readFileSync(join(dir, 'out', 'plan.json'), 'utf8')]) {
      assert.doesNotMatch(text, new RegExp(ACL_PASSWORD));
    }
    const admin = await redis.client();
    const keys = (await admin.keys('*')) as string[];
    assert.ok(keys.length > 0 && keys.every((k) => k.startsWith('tenant1:')), `every key is under the prefix: ${keys.filter((k) => !k.startsWith('tenant1:')).join(', ')}`);
    for (const key of keys) {
      const type = await admin.type(key);
      const dump = type === 'hash' ? JSON.stringify(await admin.hgetall(key)) : type === 'string' ? String(await admin.get(key)) : '';
      assert.doesNotMatch(dump, new RegExp(ACL_PASSWORD), `job data and records never hold the password (${key})`);
    }
  });
});
