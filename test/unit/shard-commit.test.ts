import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { commitShard, readShardData, readShardMarker, type ShardCommitRequest } from '@vecmill/worker/shard-commit';
import { makeTempDir } from '../support/tmp.js';

const timings = () => ({ read: 1, decode: 2, tokenize: 3, infer: 4, write: 5 });
const request = (attempt: string, data: string): ShardCommitRequest => ({
  runId: 'r1',
  splitIndex: 7,
  attempt,
  data: Buffer.from(data),
  rowsIn: 3,
  rowsOk: 2,
  rowsReused: 0,
  failedByReason: { bad_base64: 1 },
  timings,
  worker: 'test',
});

describe('commitShard', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ dir, cleanup } = await makeTempDir('commit')));
  after(() => cleanup());

  it('first committer wins; a later attempt removes its data and returns the winner', async () => {
    const store = new LocalStore(dir);
    const first = await commitShard(store, request('a1', 'first'));
    assert.equal(first.committed, true);
    const second = await commitShard(store, request('a2', 'second'));
    assert.equal(second.committed, false);
    assert.equal(second.marker.dataKey, first.marker.dataKey);
    assert.equal(await store.exists(`shards/split-000007/a2.parquet`), false);
    assert.equal((await readShardData(store, second.marker)).toString(), 'first');
    const marker = await readShardMarker(store, 7);
    assert.equal(marker?.rowsFailed, 1);
    assert.deepEqual(marker?.timings, timings());
  });

  it('racing attempts commit exactly one', async () => {
    const store = new LocalStore(dir);
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => commitShard(store, { ...request(`r${i}`, `data ${i}`), splitIndex: 9 })));
    assert.equal(results.filter((r) => r.committed).length, 1);
    const keys: string[] = [];
    for await (const o of store.list('shards/split-000009/')) keys.push(o.key);
    assert.equal(keys.length, 1, 'losers left no data behind');
  });

  it('refuses to commit unbalanced counts', async () => {
    await assert.rejects(commitShard(new LocalStore(dir), { ...request('x', 'd'), splitIndex: 11, rowsOk: 3 }), { code: 'E_COMMIT' });
  });

  it('detects shard data that does not match its marker', async () => {
    const store = new LocalStore(dir);
    const { marker } = await commitShard(store, { ...request('y', 'original'), splitIndex: 12 });
    await store.put(marker.dataKey, Buffer.from('tampered'));
    await assert.rejects(readShardData(store, marker), { code: 'E_COMMIT', message: /sha256 differs/ });
  });

  it('reports no marker for an uncommitted split', async () => {
    assert.equal(await readShardMarker(new LocalStore(dir), 99), undefined);
  });
});
