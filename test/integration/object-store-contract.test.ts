// One behavioural contract for every ObjectStore adapter: the local store on disk, the S3 store on
// the S3-compatible test server (through the real @aws-sdk/client-s3), and the in-memory store the
// unit tests use. Planning, committing and merging rely on exactly these behaviours, so an adapter
// that passes here can carry a run.
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { NotFoundError } from '@vecmill/shared/errors';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { createS3Client, S3Store } from '@vecmill/shared/storage/s3-store';
import { MemoryStore } from '../support/memory-store.js';
import { startS3Server, type S3TestServer } from '../support/s3-server.js';
import { makeTempDir } from '../support/tmp.js';

/** An adapter under test: how to make a fresh, empty store, and how to tear everything down. */
interface Adapter {
  readonly name: string;
  fresh(): Promise<ObjectStore>;
}

async function drain(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

async function keysOf(store: ObjectStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of store.list(prefix)) keys.push(info.key);
  return keys;
}

/** 0..255 repeated: every byte's value tells its position, so an off-by-one range shows. */
function pattern(length: number): Buffer {
  return Buffer.from(Array.from({ length }, (_, i) => (i * 7 + 3) & 0xff));
}

let s3: S3TestServer;
const cleanups: (() => Promise<void>)[] = [];
let serial = 0;

before(async () => {
  s3 = await startS3Server({ buckets: ['contract'] });
  cleanups.push(() => s3.close());
});
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const adapters: Adapter[] = [
  {
    name: 'LocalStore (disk)',
    async fresh() {
      const tmp = await makeTempDir('contract');
      cleanups.push(tmp.cleanup);
      return new LocalStore(tmp.dir);
    },
  },
  {
    name: 'S3Store (S3-compatible test server, real SDK)',
    async fresh() {
      const client = createS3Client(s3.clientOptions);
      cleanups.push(async () => client.destroy());
      return new S3Store(client, 'contract', `store-${++serial}/`);
    },
  },
  {
    name: 'MemoryStore (unit tests)',
    async fresh() {
      return new MemoryStore({ chunkSize: 5 });
    },
  },
];

for (const adapter of adapters) {
  describe(`ObjectStore contract: ${adapter.name}`, () => {
    it('put then read returns the same bytes; stat reports the size; exists flips', async () => {
      const store = await adapter.fresh();
      const body = pattern(1000);
      assert.equal(await store.exists('a/b.bin'), false);
      await store.put('a/b.bin', body);
      assert.equal(await store.exists('a/b.bin'), true);
      assert.deepEqual(await store.read('a/b.bin'), body);
      const info = await store.stat('a/b.bin');
      assert.equal(info.key, 'a/b.bin');
      assert.equal(info.size, 1000);
      assert.ok(info.etag.length > 0);
      assert.ok(!Number.isNaN(Date.parse(info.modified)));
    });

    it('put accepts a stream and overwrites; the etag changes with the content', async () => {
      const store = await adapter.fresh();
      await store.put('k', Buffer.from('first'));
      const before = await store.stat('k');
      await store.put('k', Readable.from([Buffer.from('sec'), Buffer.from('ond!')]));
      assert.equal((await store.read('k')).toString(), 'second!');
      const now = await store.stat('k');
      assert.equal(now.size, 7);
      assert.notEqual(now.etag, before.etag);
    });

    it('ranged reads return exactly [start, end), clamped to the size, empty when start = end', async () => {
      const store = await adapter.fresh();
      const body = pattern(777);
      await store.put('r', body);
      for (const [start, end] of [[0, 777], [0, 1], [1, 2], [100, 613], [776, 777], [500, 10_000], [300, 300]] as const) {
        assert.deepEqual(await drain(store.readRange('r', start, end)), body.subarray(start, Math.min(end, 777)), `range [${start}, ${end})`);
      }
    });

    it('putIfAbsent creates once: the first writer wins and a second call writes nothing', async () => {
      const store = await adapter.fresh();
      assert.equal(await store.putIfAbsent('m/marker.json', Buffer.from('winner')), true);
      assert.equal(await store.putIfAbsent('m/marker.json', Buffer.from('loser')), false);
      assert.equal((await store.read('m/marker.json')).toString(), 'winner');
    });

    it('putIfAbsent under a race: exactly one of many concurrent creators wins', async () => {
      const store = await adapter.fresh();
      const results = await Promise.all(Array.from({ length: 8 }, (_, i) => store.putIfAbsent('race', Buffer.from(`attempt-${i}`))));
      assert.equal(results.filter((r) => r).length, 1);
      const winner = results.indexOf(true);
      assert.equal((await store.read('race')).toString(), `attempt-${winner}`);
    });

    it('list yields keys below a prefix in ascending key order, with sizes', async () => {
      const store = await adapter.fresh();
      const keys = ['p/b', 'p/a/2', 'p/a/10', 'p/c.txt', 'q/x', 'p-other'];
      for (const [i, k] of keys.entries()) await store.put(k, pattern(i + 1));
      assert.deepEqual(await keysOf(store, 'p/'), ['p/a/10', 'p/a/2', 'p/b', 'p/c.txt']);
      assert.deepEqual(await keysOf(store, 'p'), ['p-other', 'p/a/10', 'p/a/2', 'p/b', 'p/c.txt']);
      assert.deepEqual(await keysOf(store, 'nothing/'), []);
      const sizes: Record<string, number> = {};
      for await (const info of store.list('p/')) sizes[info.key] = info.size;
      assert.deepEqual(sizes, { 'p/a/10': 3, 'p/a/2': 2, 'p/b': 1, 'p/c.txt': 4 });
    });

    it('missing keys: read, stat and readRange throw NotFoundError; delete is a no-op', async () => {
      const store = await adapter.fresh();
      await assert.rejects(store.read('none'), NotFoundError);
      await assert.rejects(store.stat('none'), NotFoundError);
      await assert.rejects(drain(store.readRange('none', 0, 10)), NotFoundError);
      await store.delete('none');
      await store.put('gone', Buffer.from('x'));
      await store.delete('gone');
      assert.equal(await store.exists('gone'), false);
      assert.deepEqual(await keysOf(store, 'gone'), []);
    });

    it('a put whose stream fails leaves nothing visible under the key (atomic put)', async () => {
      const store = await adapter.fresh();
      const failing = Readable.from(
        (async function* () {
          yield pattern(100);
          throw new Error('producer died');
        })(),
      );
      await assert.rejects(store.put('atomic', failing));
      assert.equal(await store.exists('atomic'), false);
      assert.deepEqual(await keysOf(store, ''), []);
    });

    it('a failed stream does not clobber an earlier complete object', async () => {
      const store = await adapter.fresh();
      await store.put('keep', Buffer.from('complete'));
      const failing = Readable.from(
        (async function* () {
          yield Buffer.from('half');
          throw new Error('producer died');
        })(),
      );
      await assert.rejects(store.put('keep', failing));
      assert.equal((await store.read('keep')).toString(), 'complete');
    });

    it('copy makes an identical object under the target key, overwrites it, and leaves the source', async () => {
      const store = await adapter.fresh();
      const body = pattern(3000);
      await store.put('staged/a/chunk.bin', body);
      await store.put('final/part.bin', Buffer.from('older bytes'));
      await store.copy('staged/a/chunk.bin', 'final/part.bin');
      assert.deepEqual(await store.read('final/part.bin'), body);
      assert.equal((await store.stat('final/part.bin')).size, body.length);
      await store.copy('staged/a/chunk.bin', 'final/part.bin');
      assert.deepEqual(await store.read('final/part.bin'), body, 'copying again gives the same bytes');
      assert.deepEqual(await store.read('staged/a/chunk.bin'), body);
      await store.delete('staged/a/chunk.bin');
      assert.deepEqual(await store.read('final/part.bin'), body, 'the copy outlives its source');
      assert.deepEqual(await keysOf(store, ''), ['final/part.bin']);
    });

    it('copy of a missing source throws NotFoundError and creates nothing', async () => {
      const store = await adapter.fresh();
      await assert.rejects(store.copy('staged/none.bin', 'final/none.bin'), NotFoundError);
      assert.equal(await store.exists('final/none.bin'), false);
      assert.deepEqual(await keysOf(store, ''), []);
    });

    it('description names the location and localPath is a path only for disk stores', async () => {
      const store = await adapter.fresh();
      assert.ok(store.description.length > 0);
      await store.put('f', Buffer.from('x'));
      const path = store.localPath('f');
      if (store instanceof LocalStore) assert.ok(path !== undefined && path.endsWith('f'));
      else assert.equal(path, undefined);
    });
  });
}
