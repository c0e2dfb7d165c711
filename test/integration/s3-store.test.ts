import { createHash } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { inspect } from 'node:util';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ConfigError, InputError, NotFoundError, StorageError } from '@vecmill/shared/errors';
import { isTransient } from '@vecmill/shared/failure-policy';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { openStore, resolveInputs } from '@vecmill/shared/storage/open-store';
import { createS3Client, S3Store, type S3ClientOptions } from '@vecmill/shared/storage/s3-store';
import { startS3Server, type S3TestServer } from '../support/s3-server.js';
import { makeTempDir } from '../support/tmp.js';

const SECRET = 'SENTINEL-SECRET-never-print-me';
const BUCKET = 'vecmill-it';
const MiB = 1024 * 1024;

let server: S3TestServer;
let client: S3Client;
const commands = new Map<string, number>();

before(async () => {
  server = await startS3Server({ buckets: [BUCKET], secretAccessKey: SECRET });
  client = createS3Client(server.clientOptions);
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = context.commandName ?? '?';
      commands.set(name, (commands.get(name) ?? 0) + 1);
      return next(args);
    },
    { step: 'initialize' },
  );
});
after(async () => {
  client.destroy();
  await server.close();
});

function count(command: string): number {
  return commands.get(command) ?? 0;
}

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

/** Deterministic bytes: byte i of the stream is (i * 31 + 7) & 0xff, produced 1 MiB at a time. */
function patternChunk(offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) b[i] = ((offset + i) * 31 + 7) & 0xff;
  return b;
}

function patternStream(total: number, failAfter?: number): Readable {
  return Readable.from(
    (async function* () {
      for (let offset = 0; offset < total; offset += MiB) {
        if (failAfter !== undefined && offset >= failAfter) throw new Error('producer died');
        yield patternChunk(offset, Math.min(MiB, total - offset));
      }
    })(),
  );
}

/** Fails unless `err` is a one-line VecmillError whose message and inspection hold no credentials. */
function assertNoSecrets(err: unknown): void {
  assert.ok(err instanceof Error);
  assert.ok(!err.message.includes('\n'), err.message);
  for (const text of [err.message, inspect(err, { depth: 6 })]) {
    assert.ok(!text.includes(SECRET), 'the secret key leaked into an error');
  }
  assert.ok(!err.message.includes(server.accessKeyId), 'the access key id leaked into the message');
}

describe('S3Store basics', () => {
  it('puts, reads, stats, lists and deletes below its prefix', async () => {
    const store = new S3Store(client, BUCKET, 'basics');
    assert.equal(store.description, `s3://${BUCKET}/basics/`);
    assert.equal(store.localPath(), undefined);
    await store.put('a/b.txt', Buffer.from('hello'));
    await store.put('u8', new Uint8Array([1, 2, 3]));
    await store.put('stream', Readable.from([Buffer.from('ab'), Buffer.from('cd')]));
    assert.equal((await store.read('a/b.txt')).toString(), 'hello');
    assert.deepEqual([...(await store.read('u8'))], [1, 2, 3]);
    assert.equal((await store.read('stream')).toString(), 'abcd');
    const info = await store.stat('a/b.txt');
    assert.equal(info.key, 'a/b.txt');
    assert.equal(info.size, 5);
    assert.equal(info.etag, createHash('md5').update('hello').digest('hex'));
    assert.equal(new Date(info.modified).toISOString(), info.modified);
    await store.put('a/b.txt', Buffer.from('changed'));
    assert.notEqual((await store.stat('a/b.txt')).etag, info.etag);
    assert.equal(await store.exists('a/b.txt'), true);
    assert.equal(await store.exists('a'), false);
    await store.delete('a/b.txt');
    await store.delete('a/b.txt');
    assert.equal(await store.exists('a/b.txt'), false);
    await assert.rejects(store.stat('a/b.txt'), NotFoundError);
    await assert.rejects(store.read('a/b.txt'), (err: unknown) => err instanceof NotFoundError && err.message === `not found: s3://${BUCKET}/basics/a/b.txt — check the key`);
    assert.deepEqual(await keysOf(store, ''), ['stream', 'u8']);
  });

  it('lists in UTF-8 byte order with prefix filtering, like LocalStore', async () => {
    const store = new S3Store(client, BUCKET, 'order/');
    const tmp = await makeTempDir('s3-order');
    const local = new LocalStore(tmp.dir);
    const keys = ['b', 'a/y', 'a-b', 'a/x', 'c/d/e', 'ab', 'z\uFF5E', 'z\u{1F600}'];
    for (const key of keys) {
      await store.put(key, Buffer.from(key));
      await local.put(key, Buffer.from(key));
    }
    try {
      const expected = ['a-b', 'a/x', 'a/y', 'ab', 'b', 'c/d/e', 'z\uFF5E', 'z\u{1F600}'];
      assert.deepEqual(await keysOf(store, ''), expected);
      assert.deepEqual(await keysOf(local, ''), expected);
      for (const prefix of ['a', 'a/', 'c/d', 'nothing']) assert.deepEqual(await keysOf(store, prefix), await keysOf(local, prefix), prefix);
    } finally {
      await tmp.cleanup();
    }
  });

  it('rejects keys that are not canonical before any request', async () => {
    const store = new S3Store(client, BUCKET, 'keys/');
    const before = count('PutObjectCommand');
    for (const key of ['../x', '/abs', 'a/../../b', 'a\0b', 'a//b', '']) {
      await assert.rejects(store.put(key, Buffer.from('x')), StorageError, JSON.stringify(key));
      assert.throws(() => store.readRange(key, 0, 1), StorageError);
    }
    assert.equal(count('PutObjectCommand'), before);
    assert.throws(() => new S3Store(client, BUCKET, '../up/'), ConfigError);
  });
});

describe('S3Store listing pagination', () => {
  it('follows continuation tokens across many pages without losing or repeating keys', async () => {
    const keys = Array.from({ length: 23 }, (_, i) => `p/${String(i).padStart(3, '0')}`);
    const writer = new S3Store(client, BUCKET, 'paged/');
    await Promise.all(keys.map((k) => writer.put(k, Buffer.from(k))));
    const store = new S3Store(client, BUCKET, 'paged/', { listPageSize: 4 });
    const pagesBefore = count('ListObjectsV2Command');
    assert.deepEqual(await keysOf(store, 'p/'), keys);
    assert.equal(count('ListObjectsV2Command') - pagesBefore, 6);
  });

  it('lists more than 1000 keys (the S3 page maximum) in two default-sized pages', async () => {
    const keys = Array.from({ length: 1003 }, (_, i) => `k${String(i).padStart(4, '0')}`);
    const store = new S3Store(client, BUCKET, 'thousand/');
    for (let i = 0; i < keys.length; i += 32) await Promise.all(keys.slice(i, i + 32).map((k) => store.put(k, Buffer.from('x'))));
    const pagesBefore = count('ListObjectsV2Command');
    const listed = await keysOf(store, '');
    assert.equal(listed.length, 1003);
    assert.deepEqual(listed, keys);
    assert.equal(count('ListObjectsV2Command') - pagesBefore, 2);
  });
});

describe('S3Store.readRange', () => {
  let store: S3Store;
  before(async () => {
    store = new S3Store(client, BUCKET, 'range/');
    await store.put('ten', Buffer.from('0123456789'));
  });

  it('reads [start, end) with one ranged GET', async () => {
    const gets = count('GetObjectCommand');
    assert.equal((await drain(store.readRange('ten', 2, 5))).toString(), '234');
    assert.equal(count('GetObjectCommand') - gets, 1);
  });

  it('clamps to the size; empty and past-the-end ranges give empty streams', async () => {
    assert.equal((await drain(store.readRange('ten', 7, 1000))).toString(), '789');
    assert.equal((await drain(store.readRange('ten', 0, 10))).toString(), '0123456789');
    assert.equal((await drain(store.readRange('ten', 3, 3))).length, 0);
    assert.equal((await drain(store.readRange('ten', 10, 20))).length, 0);
    assert.equal((await drain(store.readRange('ten', 99, 200))).length, 0);
  });

  it('fails the stream with NotFoundError for a missing key', async () => {
    await assert.rejects(drain(store.readRange('missing', 0, 5)), NotFoundError);
  });

  it('stops the request when the consumer destroys the stream early', async () => {
    await store.put('big-ish', Buffer.alloc(4 * MiB, 3));
    const stream = store.readRange('big-ish', 0, 4 * MiB);
    for await (const chunk of stream) {
      assert.ok((chunk as Buffer).length > 0);
      break;
    }
    assert.equal(stream.destroyed, true);
    assert.equal((await drain(store.readRange('big-ish', 4 * MiB - 2, 4 * MiB))).length, 2, 'the client still works');
  });
});

describe('S3Store multipart put', () => {
  it('streams 20 MiB as a multipart upload and reads it back exactly, across part boundaries', async () => {
    const store = new S3Store(client, BUCKET, 'multi/');
    const total = 20 * MiB;
    const creates = count('CreateMultipartUploadCommand');
    const parts = count('UploadPartCommand');
    await store.put('big.bin', patternStream(total));
    assert.equal(count('CreateMultipartUploadCommand') - creates, 1);
    assert.equal(count('UploadPartCommand') - parts, 3, '8 MiB parts: 8 + 8 + 4');
    assert.equal((await store.stat('big.bin')).size, total);
    const boundary = 8 * MiB;
    assert.deepEqual(await drain(store.readRange('big.bin', boundary - 5, boundary + 5)), patternChunk(boundary - 5, 10));
    const whole = createHash('sha256');
    for await (const chunk of store.readRange('big.bin', 0, total)) whole.update(chunk as Buffer);
    const expected = createHash('sha256');
    for (let offset = 0; offset < total; offset += MiB) expected.update(patternChunk(offset, MiB));
    assert.equal(whole.digest('hex'), expected.digest('hex'));
  });

  it('aborts the upload when the source fails midway: the source error surfaces and nothing appears', async () => {
    const store = new S3Store(client, BUCKET, 'multi/');
    await store.put('kept.bin', Buffer.from('old complete object'));
    const aborts = count('AbortMultipartUploadCommand');
    await assert.rejects(store.put('kept.bin', patternStream(20 * MiB, 10 * MiB)), /producer died/);
    await assert.rejects(store.put('new.bin', patternStream(20 * MiB, 10 * MiB)), /producer died/);
    assert.equal(count('AbortMultipartUploadCommand') - aborts, 2);
    assert.equal((await store.read('kept.bin')).toString(), 'old complete object');
    assert.equal(await store.exists('new.bin'), false);
    const uploads = await readdir(join(server.directory, BUCKET, '._S3rver_uploads')).catch(() => []);
    assert.deepEqual(uploads, [], 'no multipart parts linger');
  });
});

describe('S3Store.putIfAbsent', () => {
  it('creates once, then answers false without overwriting', async () => {
    const store = new S3Store(client, BUCKET, 'commit/');
    assert.equal(await store.putIfAbsent('shard-0.done', Buffer.from('attempt-1')), true);
    assert.equal(await store.putIfAbsent('shard-0.done', Buffer.from('attempt-2')), false);
    assert.equal((await store.read('shard-0.done')).toString(), 'attempt-1');
  });

  it('lets exactly one of several concurrent committers win', async () => {
    const store = new S3Store(client, BUCKET, 'commit/');
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => store.putIfAbsent('race', Buffer.from(`attempt-${i}`))));
    assert.equal(results.filter(Boolean).length, 1);
    assert.equal((await store.read('race')).toString(), `attempt-${results.indexOf(true)}`);
  });
});

describe('S3Store errors', () => {
  it('explains a missing bucket', async () => {
    const store = new S3Store(client, 'no-such-bucket-here', '');
    await assert.rejects(keysOf(store, ''), (err: unknown) => {
      assert.ok(err instanceof NotFoundError);
      assert.match(err.message, /s3:\/\/no-such-bucket-here\/: the bucket does not exist — check the bucket name/);
      assertNoSecrets(err);
      return true;
    });
  });

  it('explains unknown credentials without printing them', async () => {
    const bad = createS3Client({ ...server.clientOptions, credentials: { accessKeyId: 'UNKNOWNKEY', secretAccessKey: SECRET } });
    const store = new S3Store(bad, BUCKET, 'basics/');
    // Each call starts only when it is awaited: made all at once, one could reject before it had a handler.
    for (const attempt of [() => keysOf(store, ''), () => store.stat('u8'), () => store.read('u8'), () => store.put('x', Buffer.from('x')), () => drain(store.readRange('u8', 0, 2))]) {
      await assert.rejects(attempt, (err: unknown) => {
        assert.ok(err instanceof StorageError, String(err));
        assert.equal(isTransient(err), false);
        assert.match(err.message, /^S3 (list|stat|read|write) failed for s3:\/\/vecmill-it\/basics\/.* — check the S3 credentials/);
        assert.ok(!err.message.includes('UNKNOWNKEY'));
        assertNoSecrets(err);
        return true;
      });
    }
    bad.destroy();
  });

  it('explains an unreachable endpoint as a final error', async () => {
    const dead = createS3Client({ ...server.clientOptions, endpoint: 'http://127.0.0.1:9', maxAttempts: 1 });
    await assert.rejects(new S3Store(dead, BUCKET).stat('x'), (err: unknown) => {
      assert.ok(err instanceof StorageError);
      assert.equal(isTransient(err), false);
      assert.match(err.message, /ECONNREFUSED.* — check the S3 endpoint/);
      assertNoSecrets(err);
      return true;
    });
    dead.destroy();
  });

  describe('against a misbehaving server', () => {
    let flaky: Server;
    let flakyOptions: S3ClientOptions;
    before(async () => {
      // 503 SlowDown for every request except GETs of "dropped", whose body is cut off midway.
      flaky = createServer((req, res) => {
        req.resume();
        if (req.method === 'GET' && req.url?.includes('dropped') === true) {
          res.writeHead(206, { 'Content-Length': '100000', 'Content-Range': 'bytes 0-99999/100000' });
          res.write(Buffer.alloc(1000, 1), () => res.socket?.destroy());
          return;
        }
        res.writeHead(503, { 'Content-Type': 'application/xml' });
        res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>');
      });
      await new Promise<void>((resolve) => flaky.listen(0, '127.0.0.1', resolve));
      flakyOptions = { ...server.clientOptions, endpoint: `http://127.0.0.1:${(flaky.address() as AddressInfo).port}`, maxAttempts: 1 };
    });
    after(async () => {
      flaky.closeAllConnections();
      await new Promise((resolve) => flaky.close(resolve));
    });

    it('marks throttling as transient', async () => {
      const c = createS3Client(flakyOptions);
      await assert.rejects(new S3Store(c, BUCKET).put('x', Buffer.from('x')), (err: unknown) => {
        assert.ok(err instanceof StorageError);
        assert.equal(err.code, 'E_STORAGE_TRANSIENT');
        assert.match(err.message, /^S3 write failed for s3:\/\/vecmill-it\/x: SlowDown \(HTTP 503\) — .*retry/);
        assertNoSecrets(err);
        return true;
      });
      c.destroy();
    });

    it('marks a connection dropped mid-body as transient', async () => {
      const c = createS3Client(flakyOptions);
      await assert.rejects(drain(new S3Store(c, BUCKET).readRange('dropped', 0, 100000)), (err: unknown) => {
        assert.ok(err instanceof StorageError, String(err));
        assert.equal(isTransient(err), true);
        assert.match(err.message, /^S3 read failed for s3:\/\/vecmill-it\/dropped: /);
        assertNoSecrets(err);
        return true;
      });
      c.destroy();
    });
  });
});

describe('resolveInputs and openStore', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  before(async () => {
    tmp = await makeTempDir('resolve');
    const data = join(tmp.dir, 'data');
    await mkdir(join(data, 'sub', 'deeper'), { recursive: true });
    await mkdir(join(data, '.git'), { recursive: true });
    await mkdir(join(tmp.dir, 'empty'));
    for (const [name, text] of [
      ['b.tsv', 'b'],
      ['a.tsv', 'a'],
      ['notes.txt', 'n'],
      ['.hidden.tsv', 'h'],
      ['.git/config', 'g'],
      ['sub/c.tsv', 'c'],
      ['sub/deeper/d.tsv', 'd'],
      ['sub/e1.tsv', 'e'],
    ] as const) {
      await writeFile(join(data, name), text);
    }
    const s3 = new S3Store(client, BUCKET, 'inputs/');
    // Folder markers are what consoles create; the store refuses such keys, so write them raw.
    const marker = (key: string) => client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `inputs/${key}`, Body: Buffer.alloc(0) }));
    await marker('data/');
    await s3.put('data/part-1.tsv', Buffer.from('one'));
    await s3.put('data/part-0.tsv', Buffer.from('zero'));
    await marker('data/sub/');
    await s3.put('data/sub/part-2.tsv', Buffer.from('two'));
    await s3.put('data/readme.md', Buffer.from('md'));
    await marker('empty-dir/');
  });
  after(async () => {
    await tmp.cleanup();
  });

  const uris = (inputs: ReadonlyArray<{ uri: string }>): string[] => inputs.map((i) => i.uri);

  it('expands a local folder recursively in key order, skipping hidden files and folders', async () => {
    const found = await resolveInputs(['data'], undefined, tmp.dir);
    const d = join(tmp.dir, 'data');
    assert.deepEqual(uris(found), ['a.tsv', 'b.tsv', 'notes.txt', 'sub/c.tsv', 'sub/deeper/d.tsv', 'sub/e1.tsv'].map((n) => join(d, n)));
    const first = found[0]!;
    assert.equal(first.info.key, 'a.tsv');
    assert.equal(first.info.size, 1);
    assert.equal((await first.store.read(first.info.key)).toString(), 'a');
  });

  it('resolves a single local file, globs with *, ? and **, and drops duplicates', async () => {
    const d = join(tmp.dir, 'data');
    const single = await resolveInputs([`file://${d}/b.tsv`], undefined, '/');
    assert.deepEqual(uris(single), [join(d, 'b.tsv')]);
    assert.equal((await single[0]!.store.read(single[0]!.info.key)).toString(), 'b');
    assert.deepEqual(uris(await resolveInputs(['data/*.tsv'], undefined, tmp.dir)), [join(d, 'a.tsv'), join(d, 'b.tsv')]);
    assert.deepEqual(uris(await resolveInputs(['data/sub/e?.tsv'], undefined, tmp.dir)), [join(d, 'sub/e1.tsv')]);
    assert.deepEqual(
      uris(await resolveInputs([`${d}/**/*.tsv`], undefined, '/')),
      ['a.tsv', 'b.tsv', 'sub/c.tsv', 'sub/deeper/d.tsv', 'sub/e1.tsv'].map((n) => join(d, n)),
    );
    assert.deepEqual(uris(await resolveInputs(['data/b.tsv', 'data/*.tsv'], undefined, tmp.dir)), [join(d, 'b.tsv'), join(d, 'a.tsv')]);
  });

  it('expands an S3 prefix in key order, skipping zero-byte folder markers', async () => {
    const found = await resolveInputs([`s3://${BUCKET}/inputs/data/`], server.clientOptions, tmp.dir);
    const base = `s3://${BUCKET}/inputs/data/`;
    assert.deepEqual(uris(found), ['part-0.tsv', 'part-1.tsv', 'readme.md', 'sub/part-2.tsv'].map((n) => base + n));
    assert.equal((await found[0]!.store.read(found[0]!.info.key)).toString(), 'zero');
    const noSlash = await resolveInputs([`s3://${BUCKET}/inputs/data`], server.clientOptions, tmp.dir);
    assert.deepEqual(uris(noSlash), uris(found), 'a key naming no object falls back to the prefix');
  });

  it('resolves a single S3 object and an S3 glob', async () => {
    const one = await resolveInputs([`s3://${BUCKET}/inputs/data/part-1.tsv`], server.clientOptions, tmp.dir);
    assert.deepEqual(uris(one), [`s3://${BUCKET}/inputs/data/part-1.tsv`]);
    assert.equal(one[0]!.info.size, 3);
    assert.equal((await drain(one[0]!.store.readRange(one[0]!.info.key, 1, 3))).toString(), 'ne');
    const glob = await resolveInputs([`s3://${BUCKET}/inputs/data/**/part-*.tsv`], server.clientOptions, tmp.dir);
    assert.deepEqual(uris(glob), ['part-0.tsv', 'part-1.tsv', 'sub/part-2.tsv'].map((n) => `s3://${BUCKET}/inputs/data/${n}`));
  });

  it('fails in one line for missing inputs, empty folders and prefixes, and missing S3 settings', async () => {
    const oneLine = (pattern: RegExp) => (err: unknown) => err instanceof InputError && pattern.test(err.message) && !err.message.includes('\n');
    await assert.rejects(resolveInputs(['nope.tsv'], undefined, tmp.dir), oneLine(/^input not found: nope\.tsv — check the path or bucket$/));
    await assert.rejects(resolveInputs([`s3://${BUCKET}/inputs/nope.tsv`], server.clientOptions, tmp.dir), oneLine(/^input not found: s3:\/\/vecmill-it\/inputs\/nope\.tsv — /));
    await assert.rejects(resolveInputs(['s3://no-such-bucket-here/x.tsv'], server.clientOptions, tmp.dir), oneLine(/^input not found: /));
    await assert.rejects(resolveInputs(['empty'], undefined, tmp.dir), oneLine(/^input folder has no files: empty — /));
    await assert.rejects(resolveInputs([`s3://${BUCKET}/inputs/empty-dir/`], server.clientOptions, tmp.dir), oneLine(/^no objects under s3:\/\/vecmill-it\/inputs\/empty-dir\/ — /));
    await assert.rejects(resolveInputs(['data/*.parquet'], undefined, tmp.dir), oneLine(/^no files match data\/\*\.parquet — /));
    await assert.rejects(resolveInputs([`s3://${BUCKET}/x`], undefined, tmp.dir), ConfigError);
    await assert.rejects(resolveInputs(['gs://bucket/x'], undefined, tmp.dir), ConfigError);
  });

  it('opens stores: a local file roots at its folder, an S3 key is a prefix', async () => {
    const local = openStore({ kind: 'local', path: join(tmp.dir, 'data', 'a.tsv') }, undefined);
    assert.equal(local.description, `${join(tmp.dir, 'data')}/`);
    const out = openStore({ kind: 'local', path: join(tmp.dir, 'out') }, undefined);
    await out.put('x/y', Buffer.from('1'));
    assert.equal(out.localPath('x/y'), join(tmp.dir, 'out', 'x', 'y'));
    const s3 = openStore({ kind: 's3', bucket: BUCKET, key: 'inputs/data' }, server.clientOptions);
    assert.equal(s3.description, `s3://${BUCKET}/inputs/data/`);
    assert.equal((await s3.read('part-0.tsv')).toString(), 'zero');
    assert.throws(() => openStore({ kind: 's3', bucket: BUCKET, key: '' }, undefined), ConfigError);
  });
});
