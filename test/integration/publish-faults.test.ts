// Publishing is a commit: the faults of issue #14 with real processes on the S3 test server. A
// worker killed after staging but before its marker, two attempts racing for one split, a
// publish SIGKILLed half-way, and S3 errors during a publish: each ends in exactly the output of
// a clean publish, and nothing a consumer trusts before that.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { outputKeys, type RunPlan } from '@vecmill/shared/run-plan';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { createS3Client, S3Store, type S3ClientOptions } from '@vecmill/shared/storage/s3-store';
import { mergeRun } from '@vecmill/worker/merge-processor';
import { readShardMarker } from '@vecmill/worker/shard-commit';
import { commitSyntheticRun, publishedContent } from '../support/committed-run.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import type { ChildTask } from '../support/publish-child.js';
import { startS3Server, type S3TestServer } from '../support/s3-server.js';
import { storeTestPlan, testPlan } from '../support/test-plan.js';

const BUCKET = 'publish';
const CHILD = join(dirname(fileURLToPath(import.meta.url)), '..', 'support', 'publish-child.js');

/** Runs the child to its end; resolves with its exit code or signal and its output. */
function runChild(task: ChildTask, onSpawn?: (kill: () => void) => void): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CHILD, JSON.stringify(task)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  onSpawn?.(() => child.kill('SIGKILL'));
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr })));
}

async function keys(store: ObjectStore, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const info of store.list(prefix)) out.push(info.key);
  return out;
}

async function finalKeys(store: ObjectStore): Promise<string[]> {
  const out: string[] = [];
  for (const prefix of outputKeys.finalPrefixes) out.push(...(await keys(store, prefix)));
  return out;
}

describe('publishing with real processes killed and S3 failing', () => {
  let s3: S3TestServer;
  let client: ReturnType<typeof createS3Client>;
  let plan: RunPlan;
  let reference: Awaited<ReturnType<typeof publishedContent>>;
  const closers: (() => Promise<void>)[] = [];

  const storeAt = (prefix: string): S3Store => new S3Store(client, BUCKET, `${prefix}/`);
  const task = (prefix: string, t: Omit<ChildTask, 's3' | 'bucket' | 'prefix'>, s3Options: S3ClientOptions = s3.clientOptions): ChildTask => ({ ...t, s3: s3Options, bucket: BUCKET, prefix: `${prefix}/` });
  /** An output with plan.json and every split committed but `skip`. */
  const committedOutput = async (prefix: string, skip: readonly number[] = []): Promise<S3Store> => {
    const store = storeAt(prefix);
    await storeTestPlan(store, plan);
    await commitSyntheticRun(store, plan, { skip });
    return store;
  };

  before(async () => {
    s3 = await startS3Server({ buckets: [BUCKET] });
    closers.push(() => s3.close());
    client = createS3Client(s3.clientOptions);
    closers.push(async () => client.destroy());
    plan = testPlan({ runId: 'publish-faults', splits: 8, kind: 'text', formats: ['parquet', 'npy', 'tsv'] });
    const clean = await committedOutput('clean');
    await mergeRun({ plan, output: clean });
    reference = await publishedContent(clean);
    assert.ok(Object.keys(reference.files).length >= 8 * 5, 'the clean publish has every kind of final file');
  });
  after(async () => {
    for (const close of closers.reverse()) await close();
  });

  it('a worker killed after staging its files but before its marker leaves nothing trusted; the rerun publishes the clean output', async () => {
    const store = await committedOutput('staged-killed', [5]);
    const killed = await runChild(task('staged-killed', { op: 'stage-then-die', split: 5, attempt: 'killed' }));
    assert.equal(killed.signal, 'SIGKILL', killed.stderr);
    assert.ok((await keys(store, 'shards/split-000005/killed/')).length > 0, 'the killed attempt staged its files');
    assert.deepEqual((await finalKeys(store)).filter((k) => k.includes('000005-')), [], 'none of them reached a final name');
    assert.equal(await readShardMarker(store, 5), undefined);
    await assert.rejects(mergeRun({ plan, output: store }), { code: 'E_MERGE', message: /1 of 8 splits have no committed shard \(first: 5\)/ });
    assert.equal(await store.exists(outputKeys.success), false, 'no _SUCCESS');
    assert.equal(await store.exists(outputKeys.manifest), false);

    const rerun = await runChild(task('staged-killed', { op: 'commit', split: 5, attempt: 'rerun' }));
    assert.equal(rerun.code, 0, rerun.stderr);
    await mergeRun({ plan, output: store });
    assert.deepEqual(await publishedContent(store), reference);
  });

  it('two attempts of one split racing: exactly one set of final files, matching the marker', async () => {
    const store = await committedOutput('race', [3]);
    const [x, y] = await Promise.all([
      runChild(task('race', { op: 'commit', split: 3, attempt: 'x', variant: ' (x)' })),
      runChild(task('race', { op: 'commit', split: 3, attempt: 'y', variant: ' (y)' })),
    ]);
    assert.equal(x.code, 0, x.stderr);
    assert.equal(y.code, 0, y.stderr);
    const won = [x, y].map((r) => (JSON.parse(r.stdout) as { committed: boolean }).committed);
    assert.equal(won.filter(Boolean).length, 1, `exactly one attempt commits: ${JSON.stringify(won)}`);
    const marker = await readShardMarker(store, 3);
    assert.ok(marker?.version === 3);
    assert.equal(marker.attempt, won[0] === true ? 'x' : 'y');
    const visible = (await finalKeys(store)).filter((k) => k.includes('000003-')).sort();
    assert.deepEqual(visible, marker.files.map((f) => f.key).sort(), 'one set of final files: the marker\'s');
    for (const f of marker.files) {
      assert.equal(createHash('sha256').update(await store.read(f.key)).digest('hex'), f.sha256, `${f.key} holds the winner's bytes`);
    }
    assert.deepEqual(await keys(store, 'shards/split-000003/'), [], 'no staged file of either attempt is left');
    const manifest = await mergeRun({ plan, output: store });
    assert.equal(manifest.rows.in, 8 * 6);
    const tsv = (await store.read(outputKeys.final('tsv-text', 3, 0, 6))).toString('utf8');
    assert.ok(tsv.length > 0);
  });

  it('a publish SIGKILLed half-way (in the middle of repairing promotions) is completed by a rerun, equal to a clean publish', async () => {
    const store = await committedOutput('merge-killed', [1, 6]);
    // Two workers die between marker and promotion: their files stay staged, the publish must copy them.
    for (const split of [1, 6]) {
      const died = await runChild(task('merge-killed', { op: 'commit-die-before-promotion', split, attempt: `died-${split}` }));
      assert.equal(died.signal, 'SIGKILL', died.stderr);
      assert.equal((await readShardMarker(store, split))?.attempt, `died-${split}`, 'the marker was written');
    }
    assert.deepEqual((await finalKeys(store)).filter((k) => k.includes('000001-') || k.includes('000006-')), []);
    let kill: () => void = () => undefined;
    let killedAt: string | undefined;
    const proxy = await startFaultProxy({
      target: s3.endpoint,
      rates: {},
      // Sees every request: the merger is killed as its first repair copy is on its way.
      eligible: (req) => {
        if (killedAt === undefined && req.headers['x-amz-copy-source'] !== undefined) {
          killedAt = req.url;
          kill();
        }
        return false;
      },
    });
    closers.push(() => proxy.close());
    const merge = await runChild(task('merge-killed', { op: 'merge' }, { ...s3.clientOptions, endpoint: proxy.endpoint }), (k) => (kill = k));
    assert.equal(merge.signal, 'SIGKILL', `the merger was killed mid-publish: ${merge.stdout} ${merge.stderr}`);
    assert.ok(killedAt !== undefined, 'it was repairing a promotion');
    assert.equal(await store.exists(outputKeys.success), false, 'no _SUCCESS after a killed publish');
    assert.equal(await store.exists(outputKeys.manifest), false);

    const rerun = await runChild(task('merge-killed', { op: 'merge' }));
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.deepEqual(await publishedContent(store), reference);
  });

  it('S3 errors (500 InternalError, 503 SlowDown) during a publish are retried and the result equals a clean publish', async () => {
    const store = await committedOutput('flaky', [2]);
    const died = await runChild(task('flaky', { op: 'commit-die-before-promotion', split: 2, attempt: 'died' }));
    assert.equal(died.signal, 'SIGKILL', died.stderr);
    const proxy = await startFaultProxy({ target: s3.endpoint, seed: 14, rates: { error500: 0.2, slowDown503: 0.2 }, maxFaultsPerRequest: 1 });
    closers.push(() => proxy.close());
    const flakyClient = createS3Client({ ...s3.clientOptions, endpoint: proxy.endpoint });
    closers.push(async () => flakyClient.destroy());
    await mergeRun({ plan, output: new S3Store(flakyClient, BUCKET, 'flaky/') });
    const counts = proxy.counts();
    assert.ok(counts.error500 > 0 && counts.slowDown503 > 0, `both kinds of error were injected: ${JSON.stringify(counts)}`);
    assert.ok(proxy.faults.some((f) => f.url.includes('shards%2Fsplit-') || f.url.includes('shards/split-')), 'marker reads failed and were retried');
    assert.deepEqual(await publishedContent(store), reference);
  });
});
