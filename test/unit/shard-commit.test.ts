import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { outputKeys } from '@vecmill/shared/run-plan';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { commitShard, readShardFile, readShardMarker, type ShardCommitRequest, type ShardFile } from '@vecmill/worker/shard-commit';
import { makeTempDir } from '../support/tmp.js';

const timings = () => ({ read: 1, decode: 2, tokenize: 3, infer: 4, write: 5 });

/** Stores one chunk file as an attempt's ShardWriter would. */
async function stored(store: LocalStore, split: number, attempt: string, data: string, rows = 3): Promise<ShardFile> {
  const key = outputKeys.shardChunk(split, attempt, 0);
  await store.put(key, Buffer.from(data));
  return { key, rows, bytes: Buffer.byteLength(data), sha256: createHash('sha256').update(data).digest('hex') };
}

async function request(store: LocalStore, attempt: string, data: string, splitIndex = 7): Promise<ShardCommitRequest> {
  return {
    runId: 'r1',
    splitIndex,
    attempt,
    files: [await stored(store, splitIndex, attempt, data)],
    rowsIn: 3,
    rowsOk: 2,
    rowsReused: 0,
    failedByReason: { bad_base64: 1 },
    timings,
    worker: 'test',
  };
}

describe('commitShard', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ dir, cleanup } = await makeTempDir('commit')));
  after(() => cleanup());

  it('first committer wins; a later attempt removes its files and returns the winner', async () => {
    const store = new LocalStore(dir);
    const first = await commitShard(store, await request(store, 'a1', 'first'));
    assert.equal(first.committed, true);
    const second = await commitShard(store, await request(store, 'a2', 'second'));
    assert.equal(second.committed, false);
    assert.deepEqual(second.marker.files, first.marker.files);
    assert.equal(await store.exists(outputKeys.shardChunk(7, 'a2', 0)), false);
    assert.equal((await readShardFile(store, second.marker, second.marker.files[0]!)).toString(), 'first');
    const marker = await readShardMarker(store, 7);
    assert.equal(marker?.rowsFailed, 1);
    assert.equal(marker?.attempt, 'a1');
    assert.deepEqual(marker?.timings, timings());
  });

  it('racing attempts commit exactly one', async () => {
    const store = new LocalStore(dir);
    const requests = await Promise.all(Array.from({ length: 8 }, (_, i) => request(store, `r${i}`, `data ${i}`, 9)));
    const results = await Promise.all(requests.map((r) => commitShard(store, r)));
    assert.equal(results.filter((r) => r.committed).length, 1);
    const keys: string[] = [];
    for await (const o of store.list('shards/split-000009/')) keys.push(o.key);
    assert.equal(keys.length, 1, 'losers left no data behind');
  });

  it('refuses to commit unbalanced counts', async () => {
    const store = new LocalStore(dir);
    await assert.rejects(commitShard(store, { ...(await request(store, 'x', 'd', 11)), rowsOk: 3 }), { code: 'E_COMMIT' });
    await assert.rejects(commitShard(store, { ...(await request(store, 'x', 'd', 11)), rowsIn: 4, rowsOk: 3 }), { code: 'E_COMMIT', message: /chunk files hold 3 rows but 4 were read/ });
    assert.equal(await readShardMarker(store, 11), undefined);
  });

  it('detects shard data that does not match its marker', async () => {
    const store = new LocalStore(dir);
    const { marker } = await commitShard(store, await request(store, 'y', 'original', 12));
    await store.put(marker.files[0]!.key, Buffer.from('tampered'));
    await assert.rejects(readShardFile(store, marker, marker.files[0]!), { code: 'E_COMMIT', message: /sha256 differs/ });
  });

  it('reads a version 1 marker (one data file) as a one-file marker, so older runs resume', async () => {
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
