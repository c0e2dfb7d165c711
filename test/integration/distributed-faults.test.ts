import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import { loadProduceConfig } from '@vecmill/shared/config';
import { outputKeys } from '@vecmill/shared/run-plan';
import { parseLocation } from '@vecmill/shared/storage/location';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { openStore } from '@vecmill/shared/storage/open-store';
import type { S3ClientOptions } from '@vecmill/shared/storage/s3-store';
import { produceRun } from '@vecmill/producer/produce-run';
import { runEmbedded } from 'vecmill/embedded-run';
import { readOutputRows, spawnWorker, waitUntil, type OutputRows, type WorkerProcess } from '../support/distributed-helpers.js';
import { redisSkipReason, startRedisServer, type RedisTestServer } from '../support/redis-server.js';
import { runConfig } from '../support/run-helpers.js';
import { startS3Server, type S3TestServer } from '../support/s3-server.js';
import { startS3Tap, type S3Tap, type TapAction, type TapRequest } from '../support/s3-tap.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

const skip = redisSkipReason();
const BUCKET = 'vecmill-test';
/** The split each scenario interferes with. */
const VICTIM = 1;

describe('distributed mode: crashes, stops and S3 faults at exact commit steps', { skip }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let model: string;
  let redis: RedisTestServer;
  let s3: S3TestServer;
  let reference: OutputRows;
  const workers: WorkerProcess[] = [];
  const taps: S3Tap[] = [];

  const s3Env = (endpoint: string): NodeJS.ProcessEnv => ({
    VECMILL_S3_ENDPOINT: endpoint,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    AWS_REGION: s3.region,
  });
  const outputStore = (name: string): ObjectStore => openStore(parseLocation(`s3://${BUCKET}/runs/${name}/`), s3.clientOptions as S3ClientOptions);

  before(async () => {
    ({ dir, cleanup } = await makeTempDir('dist-faults'));
    model = await tinyModelDir();
    await makeDataset({ path: join(dir, 'pairs.tsv'), rows: 48, kind: 'pairs', seed: 21, imageSize: 32 });
    redis = await startRedisServer();
    s3 = await startS3Server();
    await openStore(parseLocation(`s3://${BUCKET}/data/`), s3.clientOptions).put('pairs.tsv', readFileSync(join(dir, 'pairs.tsv')));
    await runEmbedded(runConfig(['--input', join(dir, 'pairs.tsv'), '--model', model, '--output', join(dir, 'reference'), '--split-size', '8KiB', '--batch-size', '8']), () => undefined);
    reference = await readOutputRows(openStore(parseLocation(join(dir, 'reference')), undefined));
  });
  after(async () => {
    for (const w of workers) {
      w.child.kill('SIGCONT');
      w.child.kill('SIGKILL');
    }
    for (const t of taps) await t.close();
    await redis?.stop();
    await s3?.close();
    await cleanup?.();
  });

  /** Plans and enqueues a run on S3 under its own prefix. */
  const produce = async (name: string): Promise<void> => {
    const config = loadProduceConfig(
      ['--redis', redis.url, '--prefix', name, '--input', `s3://${BUCKET}/data/pairs.tsv`, '--model', model, '--output', `s3://${BUCKET}/runs/${name}/`, '--split-size', '8KiB', '--batch-size', '8', '--backoff', '200'],
      s3Env(s3.endpoint),
    );
    const r = await produceRun(config);
    assert.ok(r.splits > VICTIM + 1, `several splits, got ${r.splits}`);
  };
  const tapped = async (name: string): Promise<{ tap: S3Tap; worker: () => WorkerProcess }> => {
    const tap = await startS3Tap(s3.endpoint);
    taps.push(tap);
    return {
      tap,
      worker: () => {
        const w = spawnWorker(redis.url, ['--prefix', name, '--lock-duration', '2000', '--stalled-interval', '500'], s3Env(tap.endpoint));
        workers.push(w);
        return w;
      },
    };
  };
  /** A PUT of a staged Parquet file of the split (its part, metadata or errors), before the commit. */
  const isData = (r: TapRequest, split: number): boolean => r.method === 'PUT' && r.path.includes(`/shards/split-${String(split).padStart(6, '0')}/`) && r.path.endsWith('.parquet');
  const isMarker = (r: TapRequest, split: number): boolean => r.method === 'PUT' && r.conditional && r.path.endsWith(`/${outputKeys.shardMarker(split)}`);
  const finished = async (name: string): Promise<void> => {
    const store = outputStore(name);
    await waitUntil(() => store.exists(outputKeys.success), 90_000, `${name}: _SUCCESS`);
  };
  const marker = async (name: string, split: number): Promise<{ attempt: string; files: { key: string; staged: string }[]; committedAt: string }> =>
    JSON.parse((await outputStore(name).read(outputKeys.shardMarker(split))).toString('utf8')) as { attempt: string; files: { key: string; staged: string }[]; committedAt: string };
  const stop = async (...ws: WorkerProcess[]): Promise<void> => {
    for (const w of ws) w.child.kill('SIGTERM');
    for (const w of ws) assert.equal(await w.exited, 0, w.stderr());
  };

  it('kill -9 in the middle of a shard: another worker redoes the split, every row once', async () => {
    await produce('midshard');
    const a = await tapped('midshard');
    const b = await tapped('midshard');
    let victim: WorkerProcess | undefined;
    a.tap.hooks.before = (r) => {
      if (!isData(r, VICTIM)) return 'forward';
      victim!.child.kill('SIGKILL');
      return 'drop';
    };
    victim = a.worker();
    assert.equal(await victim.exited, 'SIGKILL');
    const rescuer = b.worker();
    await finished('midshard');
    await stop(rescuer);
    assert.deepEqual(await readOutputRows(outputStore('midshard')), reference);
  });

  it('kill -9 after the shard data is written but before its marker: the split is redone from scratch', async () => {
    await produce('nomarker');
    const a = await tapped('nomarker');
    const b = await tapped('nomarker');
    let victim: WorkerProcess | undefined;
    a.tap.hooks.before = (r) => {
      if (!isMarker(r, VICTIM)) return 'forward';
      victim!.child.kill('SIGKILL');
      return 'drop';
    };
    victim = a.worker();
    assert.equal(await victim.exited, 'SIGKILL');
    const orphan = a.tap.requests.find((r) => isData(r, VICTIM) && r.status === 200);
    assert.ok(orphan !== undefined, 'the data of the killed attempt reached S3');
    const rescuer = b.worker();
    await finished('nomarker');
    await stop(rescuer);
    assert.ok(b.tap.requests.some((r) => isData(r, VICTIM)), 'the rescuer rewrote the split');
    assert.ok(!(await marker('nomarker', VICTIM)).files.some((f) => orphan.path.endsWith(f.staged)), 'the marker names the rescuer’s data, not the orphan');
    assert.deepEqual(await readOutputRows(outputStore('nomarker')), reference);
  });

  it('kill -9 after the marker but before the job completes: the split is not rewritten', async () => {
    await produce('marked');
    const a = await tapped('marked');
    const b = await tapped('marked');
    let victim: WorkerProcess | undefined;
    a.tap.hooks.after = (r, status) => {
      if (isMarker(r, VICTIM) && status === 200) victim!.child.kill('SIGKILL');
    };
    victim = a.worker();
    assert.equal(await victim.exited, 'SIGKILL');
    const committed = await marker('marked', VICTIM);
    const rescuer = b.worker();
    await finished('marked');
    const line = await rescuer.waitFor((l) => l['event'] === 'split-done' && l['split'] === VICTIM);
    await stop(rescuer);
    assert.equal(line['computed'], false, 'the rescuer found the marker and completed the job without recomputing');
    assert.ok(!b.tap.requests.some((r) => isData(r, VICTIM) || isMarker(r, VICTIM)), 'no second write of the split');
    assert.deepEqual(await marker('marked', VICTIM), committed);
    assert.deepEqual(await readOutputRows(outputStore('marked')), reference);
  });

  it('SIGSTOP past the lock while another worker finishes the split, then SIGCONT: the late commit is refused', async () => {
    await produce('stopped');
    const a = await tapped('stopped');
    const b = await tapped('stopped');
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    let victim: WorkerProcess | undefined;
    let stopped = false;
    a.tap.hooks.before = async (r): Promise<TapAction> => {
      // Once: a chunk stages several files at once, and a second PUT reaching the tap after
      // SIGCONT must not stop the worker again.
      if (!isData(r, VICTIM) || stopped) return 'forward';
      stopped = true;
      victim!.child.kill('SIGSTOP');
      await held;
      return 'forward';
    };
    victim = a.worker();
    await waitUntil(() => isStopped(victim!), 60_000, 'worker A stopped mid-commit');
    const rescuer = b.worker();
    await finished('stopped');
    const published = (await outputStore('stopped').read(outputKeys.manifest)).toString('utf8');
    const committed = await marker('stopped', VICTIM);
    victim.child.kill('SIGCONT');
    release();
    const late = await victim.waitFor((l) => l['event'] === 'split-done' && l['split'] === VICTIM);
    assert.equal(late['computed'], false, 'the late attempt lost the commit');
    assert.equal(String(late['attempt']), committed.attempt, 'it reports the winner’s shard');
    await stop(victim, rescuer);
    assert.deepEqual(await marker('stopped', VICTIM), committed);
    assert.equal((await outputStore('stopped').read(outputKeys.manifest)).toString('utf8'), published);
    const leftovers: string[] = [];
    for await (const o of outputStore('stopped').list(`shards/split-${String(VICTIM).padStart(6, '0')}/`)) leftovers.push(o.key);
    assert.deepEqual(leftovers, [], 'the loser deleted its own staged files, the winner its promoted ones');
    assert.deepEqual(await readOutputRows(outputStore('stopped')), reference);
  });

  it('transient S3 errors (HTTP 500) outlasting the SDK’s own retries are retried by the queue with backoff', async () => {
    await produce('flaky');
    const a = await tapped('flaky');
    let injected = 0;
    a.tap.hooks.before = (r) => {
      // One object (the split's first part), so six faults outlast the SDK's retries of that PUT.
      if (!isData(r, 0) || !r.path.includes('/embeddings/part-') || injected >= 6) return 'forward';
      injected++;
      return { status: 500, code: 'InternalError' };
    };
    const w = a.worker();
    await finished('flaky');
    await stop(w);
    assert.equal(injected, 6);
    assert.ok(w.lines.some((l) => l['event'] === 'job-error' && l['final'] === false && /HTTP 500/.test(String(l['error']))), 'a retried attempt was logged');
    assert.deepEqual(await readOutputRows(outputStore('flaky')), reference);
  });
});

/** Whether a process is stopped (state T in /proc): the tap stops the worker from inside a request. */
function isStopped(w: WorkerProcess): boolean {
  try {
    return /\) T /.test(readFileSync(`/proc/${w.child.pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
