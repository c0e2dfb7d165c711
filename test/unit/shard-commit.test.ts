import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { outputKeys } from '@vecmill/shared/run-plan';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { commitShard, promoteFiles, readShardMarker, type ShardCommitRequest, type StagedFile } from '@vecmill/worker/shard-commit';
import { MemoryStore } from '../support/memory-store.js';
import { makeTempDir } from '../support/tmp.js';

const timings = () => ({ read: 1, decode: 2, tokenize: 3, infer: 4, write: 5 });

/** Stages a part and an errors file as an attempt's ShardWriter would. */
async function staged(store: ObjectStore, split: number, attempt: string, data: string): Promise<StagedFile[]> {
  const out: StagedFile[] = [];
  for (const [role, rows, body] of [['part', 3, data], ['errors', 1, `errors of ${data}`]] as const) {
    const key = outputKeys.final(role, split, 0, 6);
    const stagedKey = outputKeys.staged(split, attempt, key);
    await store.put(stagedKey, Buffer.from(body));
    out.push({ role, key, staged: stagedKey, rows, bytes: Buffer.byteLength(body), sha256: createHash('sha256').update(body).digest('hex') });
  }
  return out;
}

async function request(store: ObjectStore, attempt: string, data: string, splitIndex = 7): Promise<ShardCommitRequest> {
  return {
    runId: 'r1',
    splitIndex,
    attempt,
    files: await staged(store, splitIndex, attempt, data),
    rowsIn: 3,
    rowsOk: 2,
    rowsReused: 0,
    failedByReason: { bad_base64: 1 },
    timings,
    worker: 'test',
  };
}

async function keysOf(store: ObjectStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of store.list(prefix)) keys.push(o.key);
  return keys;
}

describe('commitShard', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ dir, cleanup } = await makeTempDir('commit')));
  after(() => cleanup());

  it('first committer wins and promotes its files; a later attempt removes its own and returns the winner', async () => {
    const store = new LocalStore(dir);
    const first = await commitShard(store, await request(store, 'a1', 'first'));
    assert.equal(first.committed, true);
    assert.equal((await store.read(outputKeys.final('part', 7, 0, 6))).toString(), 'first');
    assert.deepEqual(await keysOf(store, 'shards/split-000007/'), [], 'the winner deletes its staged copies once promoted');
    const second = await commitShard(store, await request(store, 'a2', 'second'));
    assert.equal(second.committed, false);
    assert.deepEqual(second.marker.files, first.marker.files);
    assert.deepEqual(await keysOf(store, 'shards/split-000007/'), [], 'the loser deletes its staged files');
    assert.equal((await store.read(outputKeys.final('part', 7, 0, 6))).toString(), 'first', 'the final files are the winner\'s bytes');
    assert.equal((await store.read(outputKeys.final('errors', 7, 0, 6))).toString(), 'errors of first');
    const marker = await readShardMarker(store, 7);
    assert.equal(marker?.version, 3);
    assert.equal(marker?.rowsFailed, 1);
    assert.equal(marker?.attempt, 'a1');
    assert.deepEqual(marker?.timings, timings());
    assert.deepEqual(
      marker?.files.map((f) => ('role' in f ? [f.role, f.key, f.rows] : [])),
      [['part', 'embeddings/part-000007-000000.parquet', 3], ['errors', 'errors/errors_000007-000000.parquet', 1]],
    );
  });

  it('racing attempts commit exactly one, and exactly its files are visible under final names', async () => {
    const store = new MemoryStore();
    const requests = await Promise.all(Array.from({ length: 8 }, (_, i) => request(store, `r${i}`, `data ${i}`, 9)));
    const results = await Promise.all(requests.map((r) => commitShard(store, r)));
    const winners = results.filter((r) => r.committed);
    assert.equal(winners.length, 1);
    const winner = requests.find((r) => r.attempt === winners[0]!.marker.attempt)!;
    assert.deepEqual(await keysOf(store, 'shards/split-000009/'), [], 'losers left no data behind');
    assert.deepEqual(await keysOf(store, 'embeddings/'), ['embeddings/part-000009-000000.parquet']);
    const part = await store.read('embeddings/part-000009-000000.parquet');
    assert.equal(createHash('sha256').update(part).digest('hex'), winner.files[0]!.sha256);
  });

  it('a loser promotes the files of a winner that died between its marker and its promotion', async () => {
    const store = new MemoryStore();
    const dead = await request(store, 'dead', 'winner bytes', 10);
    const marker = { version: 3, runId: 'r1', splitIndex: 10, attempt: 'dead', files: dead.files, rowsIn: 3, rowsOk: 2, rowsReused: 0, rowsFailed: 1, failedByReason: { bad_base64: 1 }, timings: timings(), worker: 'w', committedAt: 'now' };
    await store.putIfAbsent(outputKeys.shardMarker(10), Buffer.from(JSON.stringify(marker)));
    assert.deepEqual(await keysOf(store, 'embeddings/'), []);
    const late = await commitShard(store, await request(store, 'late', 'loser bytes', 10));
    assert.equal(late.committed, false);
    assert.equal((await store.read('embeddings/part-000010-000000.parquet')).toString(), 'winner bytes');
    assert.equal((await store.read('errors/errors_000010-000000.parquet')).toString(), 'errors of winner bytes');
    assert.deepEqual(await keysOf(store, 'shards/split-000010/late/'), []);
  });

  it('promotion refuses a final file that is missing once its staged copy is gone', async () => {
    const store = new MemoryStore();
    const r = await request(store, 'w', 'bytes', 14);
    const { marker } = await commitShard(store, r);
    assert.equal(marker.version, 3);
    if (marker.version !== 3) return;
    await promoteFiles(store, marker);
    await store.put(marker.files[0]!.key, Buffer.from('ten bytes!'));
    await assert.rejects(promoteFiles(store, marker), { code: 'E_COMMIT', message: /embeddings\/part-000014-000000\.parquet cannot be promoted \(its staged copy .* is gone and the final file is 10 bytes, not 5\)/ });
    await store.delete(marker.files[0]!.key);
    await assert.rejects(promoteFiles(store, marker), { code: 'E_COMMIT', message: /the final file is missing\); delete shards\/split-000014\.done\.json/ });
  });

  it('refuses to commit unbalanced counts', async () => {
    const store = new LocalStore(dir);
    await assert.rejects(commitShard(store, { ...(await request(store, 'x', 'd', 11)), rowsOk: 3 }), { code: 'E_COMMIT' });
    await assert.rejects(commitShard(store, { ...(await request(store, 'x', 'd', 11)), rowsIn: 4, rowsOk: 3 }), { code: 'E_COMMIT', message: /parts hold 3 rows but 4 were read/ });
    const r = await request(store, 'x', 'd', 11);
    await assert.rejects(commitShard(store, { ...r, files: r.files.filter((f) => f.role === 'part') }), { code: 'E_COMMIT', message: /errors files hold 0 rows but 1 failed/ });
    assert.equal(await readShardMarker(store, 11), undefined);
  });

  it('reads a version 1 marker (one data file) as a one-file version 2 marker, so older runs are recognised', async () => {
    const store = new LocalStore(dir);
    const v1 = { version: 1, runId: 'r1', splitIndex: 13, dataKey: 'shards/split-000013/old.parquet', sha256: 'ab', bytes: 10, rowsIn: 3, rowsOk: 3, rowsReused: 0, rowsFailed: 0, failedByReason: {}, timings: timings(), worker: 'w', committedAt: 'now' };
    await store.put(outputKeys.shardMarker(13), Buffer.from(JSON.stringify(v1)));
    const marker = await readShardMarker(store, 13);
    assert.equal(marker?.version, 2);
    assert.deepEqual(marker?.files, [{ key: v1.dataKey, rows: 3, bytes: 10, sha256: 'ab' }]);
  });

  it('reports no marker for an uncommitted split', async () => {
    assert.equal(await readShardMarker(new LocalStore(dir), 99), undefined);
  });
});
