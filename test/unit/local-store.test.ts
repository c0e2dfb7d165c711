import { spawn, spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { NotFoundError, StorageError } from '@vecmill/shared/errors';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { ReadBufferPool } from '@vecmill/shared/storage/read-buffer-pool';
import { makeTempDir } from '../support/tmp.js';

async function keysOf(store: ObjectStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of store.list(prefix)) keys.push(info.key);
  return keys;
}

async function drain(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Every file below `dir` (none when it does not exist), relative, including hidden temp files. */
async function filesBelow(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length + 1)).sort();
}

/** A stream that yields `first`, then fails: a producer dying midway through a put. */
function failingStream(first: Buffer): Readable {
  return Readable.from(
    (async function* () {
      yield first;
      throw new Error('producer died');
    })(),
  );
}

let tmp: { dir: string; cleanup: () => Promise<void> };
before(async () => {
  tmp = await makeTempDir('local-store');
});
after(async () => {
  await tmp.cleanup();
});

describe('LocalStore basics', () => {
  it('puts and reads Buffers, Uint8Arrays and streams, creating parent folders and overwriting', async () => {
    const store = new LocalStore(join(tmp.dir, 'basics'));
    await store.put('a/b/c.txt', Buffer.from('hello'));
    assert.equal((await store.read('a/b/c.txt')).toString(), 'hello');
    await store.put('u8', new Uint8Array([1, 2, 3]));
    assert.deepEqual([...(await store.read('u8'))], [1, 2, 3]);
    await store.put('s', Readable.from([Buffer.from('ab'), 'cd', Buffer.from('ef')]));
    assert.equal((await store.read('s')).toString(), 'abcdef');
    await store.put('a/b/c.txt', Buffer.from('second'));
    assert.equal((await store.read('a/b/c.txt')).toString(), 'second');
    assert.equal(store.localPath('a/b/c.txt'), join(tmp.dir, 'basics', 'a', 'b', 'c.txt'));
    assert.equal(await readFile(join(tmp.dir, 'basics', 'a', 'b', 'c.txt'), 'utf8'), 'second');
    assert.equal(store.description, `${join(tmp.dir, 'basics')}/`);
  });

  it('stats files: size, an etag that changes with the content, an ISO modification time', async () => {
    const store = new LocalStore(join(tmp.dir, 'stat'));
    await store.put('f', Buffer.from('12345'));
    const first = await store.stat('f');
    assert.equal(first.key, 'f');
    assert.equal(first.size, 5);
    assert.match(first.etag, /^\d+(\.\d+)?-5$/);
    assert.equal(new Date(first.modified).toISOString(), first.modified);
    await store.put('f', Buffer.from('123456'));
    assert.notEqual((await store.stat('f')).etag, first.etag);
  });

  it('exists and delete; deleting a missing key is not an error', async () => {
    const store = new LocalStore(join(tmp.dir, 'delete'));
    await store.put('x/y', Buffer.from('1'));
    assert.equal(await store.exists('x/y'), true);
    assert.equal(await store.exists('x/z'), false);
    assert.equal(await store.exists('x'), false, 'a folder is not an object');
    await store.delete('x/y');
    assert.equal(await store.exists('x/y'), false);
    await store.delete('x/y');
    await store.delete('never/was');
  });

  it('maps a missing file to NotFoundError on read, stat and readRange', async () => {
    const store = new LocalStore(join(tmp.dir, 'missing'));
    await assert.rejects(store.read('nope'), NotFoundError);
    await assert.rejects(store.stat('nope'), (err: unknown) => err instanceof NotFoundError && /not found: .*nope — /.test(err.message));
    await assert.rejects(drain(store.readRange('nope', 0, 10)), NotFoundError);
  });
});

describe('LocalStore.list', () => {
  const keys = ['b', 'a/y', 'a-b', 'a/x', 'c/d/e', 'z\u{1F600}', 'z\uFF5E', 'ab'];
  let store: LocalStore;
  before(async () => {
    store = new LocalStore(join(tmp.dir, 'list'));
    for (const key of keys) await store.put(key, Buffer.from(key));
    await writeFile(join(tmp.dir, 'list', 'a', '.y.tmp-123-0123456789ab'), 'partial');
  });

  it('returns every key in UTF-8 byte order, folders interleaved where their keys fall', async () => {
    // '-' (0x2d) < '/' (0x2f) < 'b'; U+FF5E (EF BD 9E) < U+1F600 (F0 9F 98 80) in UTF-8, the reverse in UTF-16.
    assert.deepEqual(await keysOf(store, ''), ['a-b', 'a/x', 'a/y', 'ab', 'b', 'c/d/e', 'z\uFF5E', 'z\u{1F600}']);
  });

  it('filters by prefix, whether or not the prefix ends at a folder boundary', async () => {
    assert.deepEqual(await keysOf(store, 'a/'), ['a/x', 'a/y']);
    assert.deepEqual(await keysOf(store, 'a'), ['a-b', 'a/x', 'a/y', 'ab']);
    assert.deepEqual(await keysOf(store, 'c/d'), ['c/d/e']);
    assert.deepEqual(await keysOf(store, 'a/x'), ['a/x']);
    assert.deepEqual(await keysOf(store, 'q/'), []);
  });

  it('lists nothing when the root does not exist', async () => {
    assert.deepEqual(await keysOf(new LocalStore(join(tmp.dir, 'no-such-root')), ''), []);
  });

  it('reports sizes with the keys', async () => {
    const infos = [];
    for await (const info of store.list('c/')) infos.push(info);
    assert.deepEqual(
      infos.map((i) => [i.key, i.size]),
      [['c/d/e', 5]],
    );
  });
});

describe('LocalStore.readRange', () => {
  let store: LocalStore;
  before(async () => {
    store = new LocalStore(join(tmp.dir, 'range'));
    await store.put('ten', Buffer.from('0123456789'));
  });

  it('reads [start, end)', async () => {
    assert.equal((await drain(store.readRange('ten', 2, 5))).toString(), '234');
    assert.equal((await drain(store.readRange('ten', 0, 10))).toString(), '0123456789');
  });

  it('clamps end to the size and returns empty streams for empty or past-the-end ranges', async () => {
    assert.equal((await drain(store.readRange('ten', 7, 1000))).toString(), '789');
    assert.equal((await drain(store.readRange('ten', 4, 4))).length, 0);
    assert.equal((await drain(store.readRange('ten', 10, 20))).length, 0);
    assert.equal((await drain(store.readRange('ten', 50, 60))).length, 0);
  });

  it('streams large ranges in chunks rather than one buffer', async () => {
    await store.put('big', Buffer.alloc(3 * 1024 * 1024 + 5, 1));
    let chunks = 0;
    let bytes = 0;
    for await (const chunk of store.readRange('big', 1, 3 * 1024 * 1024 + 5)) {
      chunks++;
      bytes += (chunk as Buffer).length;
    }
    assert.equal(bytes, 3 * 1024 * 1024 + 4);
    assert.ok(chunks >= 3, `expected several chunks, got ${chunks}`);
  });

  it('reads into leased buffers, clamped to the size, and refills a buffer only once it is released', async () => {
    const pool = new ReadBufferPool({ bufferBytes: 4 });
    const lease = pool.lease();
    const seen: Buffer[] = [];
    for await (const chunk of store.readRange('ten', 1, 1000, { buffers: lease })) seen.push(chunk as Buffer);
    assert.deepEqual(seen.map((c) => c.toString()), ['1234', '5678', '9']);
    assert.equal(new Set(seen.map((c) => c.buffer)).size, 3, 'nothing released: each read had its own buffer');
    lease.release(9);
    const again = pool.lease();
    const refilled: Buffer[] = [];
    for await (const chunk of store.readRange('ten', 0, 4, { buffers: again })) refilled.push(chunk as Buffer);
    assert.equal(refilled[0]?.toString(), '0123');
    assert.ok(refilled[0]?.buffer === seen[0]?.buffer || refilled[0]?.buffer === seen[1]?.buffer, 'a released buffer is refilled');
    assert.equal(seen[2]?.toString(), '9', 'the buffer holding bytes at and past the release offset is kept');
    await assert.rejects(drain(store.readRange('missing', 0, 4, { buffers: again })), NotFoundError);
  });

  it('rejects negative or fractional offsets', () => {
    assert.throws(() => store.readRange('ten', -1, 3), RangeError);
    assert.throws(() => store.readRange('ten', 0.5, 3), RangeError);
  });
});

describe('LocalStore atomic writes', () => {
  it('leaves no file and no temp file behind when the source stream fails midway', async () => {
    const root = join(tmp.dir, 'atomic-fail');
    const store = new LocalStore(root);
    await assert.rejects(store.put('dir/out.bin', failingStream(Buffer.alloc(100_000, 7))), /producer died/);
    assert.equal(await store.exists('dir/out.bin'), false);
    assert.deepEqual(await filesBelow(root), []);
  });

  it('keeps the previous complete object when an overwrite fails', async () => {
    const root = join(tmp.dir, 'atomic-keep');
    const store = new LocalStore(root);
    await store.put('out.bin', Buffer.from('complete'));
    await assert.rejects(store.put('out.bin', failingStream(Buffer.alloc(50_000, 1))), /producer died/);
    assert.equal((await store.read('out.bin')).toString(), 'complete');
    assert.deepEqual(await filesBelow(root), ['out.bin']);
  });

  it('shows nothing at the key while a streamed put is in progress, and lists skip its temp file', async () => {
    const root = join(tmp.dir, 'atomic-progress');
    const store = new LocalStore(root);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let firstWritten!: () => void;
    const started = new Promise<void>((resolve) => {
      firstWritten = resolve;
    });
    const body = Readable.from(
      (async function* () {
        yield Buffer.from('first half,');
        firstWritten();
        await gate;
        yield Buffer.from('second half');
      })(),
    );
    const putting = store.put('slow', body);
    await started;
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(await store.exists('slow'), false);
    assert.deepEqual(await keysOf(store, ''), []);
    assert.equal((await filesBelow(root)).length, 1, 'the temp file exists on disk');
    release();
    await putting;
    assert.equal((await store.read('slow')).toString(), 'first half,second half');
    assert.deepEqual(await filesBelow(root), ['slow']);
  });
});

describe('LocalStore.putIfAbsent', () => {
  it('creates once; later calls return false without writing', async () => {
    const store = new LocalStore(join(tmp.dir, 'pia'));
    assert.equal(await store.putIfAbsent('m/commit', Buffer.from('first')), true);
    assert.equal(await store.putIfAbsent('m/commit', Buffer.from('second')), false);
    assert.equal((await store.read('m/commit')).toString(), 'first');
    assert.deepEqual(await filesBelow(join(tmp.dir, 'pia')), ['m/commit']);
  });

  it('lets exactly one of several concurrent callers win, and the object holds the winner’s bytes', async () => {
    const store = new LocalStore(join(tmp.dir, 'pia-race'));
    const bodies = Array.from({ length: 8 }, (_, i) => Buffer.from(`writer-${i}`));
    const results = await Promise.all(bodies.map((b) => store.putIfAbsent('race', b)));
    assert.equal(results.filter(Boolean).length, 1);
    const winner = results.indexOf(true);
    assert.equal((await store.read('race')).toString(), `writer-${winner}`);
    assert.deepEqual(await filesBelow(join(tmp.dir, 'pia-race')), ['race']);
  });

  it('lets exactly one of several processes win', async () => {
    const root = join(tmp.dir, 'pia-processes');
    const moduleUrl = import.meta.resolve('@vecmill/shared/storage/local-store');
    const script = `const { LocalStore } = await import(${JSON.stringify(moduleUrl)});
      const won = await new LocalStore(process.argv[1]).putIfAbsent('commit', Buffer.from('pid-' + process.pid));
      process.stdout.write(won ? 'won' : 'lost');`;
    const outputs = await Promise.all(
      Array.from(
        { length: 4 },
        () =>
          new Promise<string>((resolve, reject) => {
            const child = spawn(process.execPath, ['--input-type=module', '-e', script, root], { stdio: ['ignore', 'pipe', 'inherit'] });
            let out = '';
            child.stdout.on('data', (d: Buffer) => (out += d.toString()));
            child.on('error', reject);
            child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`child exited with ${code}`))));
          }),
      ),
    );
    assert.equal(outputs.filter((o) => o === 'won').length, 1, outputs.join(','));
    assert.equal(outputs.filter((o) => o === 'lost').length, 3);
    assert.match((await new LocalStore(root).read('commit')).toString(), /^pid-\d+$/);
  });
});

describe('LocalStore key validation', () => {
  const bad = ['../x', '/abs', 'a/../../b', 'a/..', '..', 'a\0b', 'a\\b', '', 'a//b', './a', 'a/./b', 'a/'];

  it('rejects keys that could escape the root or are not canonical, with a StorageError naming the key', async () => {
    const root = join(tmp.dir, 'keys', 'root');
    const s = new LocalStore(root);
    for (const key of bad) {
      const check = (err: unknown): boolean =>
        err instanceof StorageError && err.message.includes(JSON.stringify(key)) && !err.message.includes('\n') && !err.message.includes('\0');
      await assert.rejects(s.put(key, Buffer.from('x')), check, `put ${JSON.stringify(key)}`);
      await assert.rejects(s.putIfAbsent(key, Buffer.from('x')), check, `putIfAbsent ${JSON.stringify(key)}`);
      await assert.rejects(s.read(key), check, `read ${JSON.stringify(key)}`);
      await assert.rejects(s.stat(key), check);
      await assert.rejects(s.delete(key), check);
      assert.throws(() => s.readRange(key, 0, 1), check);
      assert.throws(() => s.localPath(key), check);
    }
    await assert.rejects(keysOf(s, '../'), StorageError);
    await assert.rejects(keysOf(s, '/'), StorageError);
    assert.deepEqual(await filesBelow(join(tmp.dir, 'keys')), [], 'nothing was written anywhere');
  });

  it('accepts ordinary keys with dots, spaces and unicode', async () => {
    const s = new LocalStore(join(tmp.dir, 'keys-ok'));
    for (const key of ['.hidden', 'a..b', 'dir.v1/file name.tsv', 'ünï/😀']) {
      await s.put(key, Buffer.from(key));
      assert.equal((await s.read(key)).toString(), key);
    }
  });
});

describe('LocalStore disk errors', () => {
  it('explains a root below a regular file in one line (ENOTDIR)', async () => {
    const file = join(tmp.dir, 'plain-file');
    await writeFile(file, 'x');
    const s = new LocalStore(join(file, 'sub'));
    await assert.rejects(s.put('k', Buffer.from('x')), (err: unknown) => {
      assert.ok(err instanceof StorageError, String(err));
      assert.equal(err.code, 'E_STORAGE');
      assert.match(err.message, /^cannot write .*plain-file\/sub: part of the path is a file, not a folder — /);
      assert.ok(!err.message.includes('\n'));
      return true;
    });
    await assert.rejects(s.read('k'), NotFoundError);
    assert.deepEqual(await keysOf(s, ''), []);
  });

  it('explains writing over a folder (EISDIR) and leaves no temp file', async () => {
    const root = join(tmp.dir, 'isdir');
    const s = new LocalStore(root);
    await mkdir(join(root, 'taken', 'inner'), { recursive: true });
    await assert.rejects(s.put('taken', Buffer.from('x')), /it is a folder, not a file/);
    assert.deepEqual(await filesBelow(root), []);
  });

  const mounts: string[] = [];
  after(() => {
    for (const dir of mounts) spawnSync('umount', [dir]);
  });

  /** Mounts a tiny tmpfs (root only); returns why not when that is impossible here. */
  async function mountTmpfs(name: string, options: string): Promise<string | { skip: string }> {
    const dir = join(tmp.dir, name);
    await mkdir(dir, { recursive: true });
    const result = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { encoding: 'utf8' });
    if (result.status !== 0) return { skip: `cannot mount a tmpfs here (${(result.stderr || String(result.error)).trim()})` };
    mounts.push(dir);
    return dir;
  }

  it('explains a full disk (ENOSPC) and leaves no partial or temp file', async (t) => {
    const dir = await mountTmpfs('full', 'size=64k');
    if (typeof dir !== 'string') return t.skip(dir.skip);
    const s = new LocalStore(dir);
    const full = (err: unknown): boolean => err instanceof StorageError && /no space left on the device — free disk space/.test(err.message);
    await assert.rejects(s.put('big', Buffer.alloc(1024 * 1024, 1)), full);
    await assert.rejects(s.put('big-stream', Readable.from([Buffer.alloc(512 * 1024, 1), Buffer.alloc(512 * 1024, 2)])), full);
    await assert.rejects(s.putIfAbsent('marker', Buffer.alloc(1024 * 1024, 1)), full);
    assert.deepEqual(await filesBelow(dir), []);
    await s.put('small', Buffer.from('still works'));
    assert.equal((await s.read('small')).toString(), 'still works');
  });

  it('explains a read-only file system (EROFS)', async (t) => {
    const dir = await mountTmpfs('readonly', 'size=64k,ro');
    if (typeof dir !== 'string') return t.skip(dir.skip);
    const s = new LocalStore(dir);
    await assert.rejects(s.put('k', Buffer.from('x')), (err: unknown) => err instanceof StorageError && /read-only — choose a writable folder/.test(err.message));
  });
});
