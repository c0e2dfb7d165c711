import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import { NotFoundError } from '@vecmill/shared/errors';
import { isTransient } from '@vecmill/shared/failure-policy';
import type { Manifest } from '@vecmill/shared/manifest';
import { outputKeys } from '@vecmill/shared/run-plan';
import { openStore } from '@vecmill/shared/storage/open-store';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { withResilientReads, resilientReadRange } from '@vecmill/shared/storage/resilient-read';
import { createS3Client, S3Store } from '@vecmill/shared/storage/s3-store';
import { runEmbedded } from 'vecmill/embedded-run';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { readParts, runConfig } from '../support/run-helpers.js';
import { startS3Server, type S3TestServer } from '../support/s3-server.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

const BUCKET = 'vecmill-data';

/** ids, captions and both embeddings of every published row, in row order. */
async function publishedRows(store: ObjectStore, manifest: Manifest): Promise<{ ids: number[]; texts: (string | null)[]; vectors: string }> {
  const ids: number[] = [];
  const texts: (string | null)[] = [];
  const hash = createHash('sha256');
  for (const t of await readParts(store, manifest)) {
    for (let i = 0; i < t.numRows; i++) {
      const r = t.row(i);
      ids.push(r.rowIndex as number);
      texts.push(r.text);
      for (const v of [r.textEmbedding, r.imageEmbedding]) hash.update(v === null ? Buffer.from('null') : Buffer.from(v.buffer, v.byteOffset, v.byteLength));
    }
  }
  return { ids, texts, vectors: hash.digest('hex') };
}

/** Incomplete multipart uploads s3rver still holds for a bucket (it has no ListMultipartUploads). */
function incompleteUploads(s3: S3TestServer, bucket: string): string[] {
  try {
    return readdirSync(join(s3.directory, bucket, '._S3rver_uploads'));
  } catch {
    return [];
  }
}

/**
 * Lists `prefix` straight from the server (not through the proxy) every few milliseconds while a
 * run writes there, recording each version of each key seen. A partial object at a final key
 * would show up as a second version of it.
 */
function watchVersions(store: ObjectStore): { stop(): Promise<Map<string, Set<string>>> } {
  const seen = new Map<string, Set<string>>();
  let running = true;
  const loop: Promise<void> = (async () => {
    while (running) {
      for await (const info of store.list('')) {
        const versions = seen.get(info.key) ?? new Set<string>();
        versions.add(`${info.size}:${info.etag}`);
        seen.set(info.key, versions);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return seen;
    },
  };
}

describe('S3 faults (500, 503 SlowDown, dropped connections) through a fault-injecting proxy', () => {
  let s3: S3TestServer;
  let proxy: FaultProxy | undefined;
  let dir: string;
  let cleanup: () => Promise<void>;
  let model: string;
  let direct: ObjectStore;
  let clean: { manifest: Manifest; rows: Awaited<ReturnType<typeof publishedRows>> };
  const splitArgs = ['--split-size', '12KiB', '--batch-size', '16', '--kind', 'pairs'];

  const envFor = (endpoint: string): NodeJS.ProcessEnv => ({
    VECMILL_S3_ENDPOINT: endpoint,
    AWS_REGION: s3.region,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    VECMILL_CACHE: join(dir, 'cache'),
  });
  const outputStore = (prefix: string): ObjectStore => openStore({ kind: 's3', bucket: BUCKET, key: prefix }, s3.clientOptions);

  before(async () => {
    s3 = await startS3Server({ buckets: [BUCKET] });
    ({ dir, cleanup } = await makeTempDir('s3-faults'));
    model = await tinyModelDir();
    direct = openStore({ kind: 's3', bucket: BUCKET, key: '' }, s3.clientOptions);
    await makeDataset({ path: join(dir, 'a.tsv'), rows: 60, kind: 'pairs', seed: 31, imageSize: 40 });
    await makeDataset({ path: join(dir, 'b.tsv'), rows: 60, kind: 'pairs', seed: 32, imageSize: 40, urlSafe: true });
    await direct.put('in/a.tsv', createReadStream(join(dir, 'a.tsv')));
    await direct.put('in/b.tsv', createReadStream(join(dir, 'b.tsv')));
    const args = ['--input', `s3://${BUCKET}/in/`, '--model', model, '--output', `s3://${BUCKET}/out/clean/`, ...splitArgs];
    const manifest = (await runEmbedded(runConfig(args, envFor(s3.endpoint)), () => undefined)).manifest;
    clean = { manifest, rows: await publishedRows(outputStore('out/clean/'), manifest) };
    assert.equal(manifest.rows.ok, 120);
  });
  after(async () => {
    await proxy?.close();
    await s3.close();
    await cleanup();
  });

  it('a run through 500s, SlowDowns, resets and lost answers publishes exactly the clean output, never a partial object', async () => {
    proxy = await startFaultProxy({
      target: s3.endpoint,
      seed: 7,
      rates: { error500: 0.08, slowDown503: 0.08, reset: 0.06, lostResponse: 0.06 },
    });
    const out = outputStore('out/answers/');
    const watcher = watchVersions(out);
    const args = ['--input', `s3://${BUCKET}/in/`, '--model', model, '--output', `s3://${BUCKET}/out/answers/`, ...splitArgs];
    let result: Awaited<ReturnType<typeof runEmbedded>>;
    let seen: Map<string, Set<string>>;
    try {
      result = await runEmbedded(runConfig(args, envFor(proxy.endpoint)), () => undefined);
    } finally {
      proxy.setEnabled(false);
      seen = await watcher.stop();
    }
    const counts = proxy.counts();
    for (const kind of ['error500', 'slowDown503', 'reset', 'lostResponse'] as const) assert.ok(counts[kind] > 2, `${kind} injected ${counts[kind]} times`);

    assert.deepEqual(result.manifest.rows, clean.manifest.rows);
    assert.deepEqual(await publishedRows(out, result.manifest), clean.rows);
    await assertNoPartialObjects(out, seen);
    assert.deepEqual(incompleteUploads(s3, BUCKET), []);
  });

  it('resilientReadRange resumes a ranged read from the last byte delivered; a plain ranged read dies', async () => {
    await proxy?.close();
    proxy = await startFaultProxy({ target: s3.endpoint, seed: 3, rates: { dropMidBody: 0.5 }, maxFaultsPerRequest: 1000 });
    const bytes = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < bytes.length; i += 4) bytes.writeUInt32LE(i, i);
    await direct.put('blob.bin', bytes);
    const client = createS3Client({ ...s3.clientOptions, endpoint: proxy.endpoint });
    const store = new S3Store(client, BUCKET);
    try {
      const retries: number[] = [];
      const got: Buffer[] = [];
      for await (const chunk of resilientReadRange(store, 'blob.bin', 100, bytes.length - 7, { baseDelayMs: 5, attempts: 8, onRetry: (_e, n) => retries.push(n) })) got.push(chunk as Buffer);
      assert.ok(Buffer.concat(got).equals(bytes.subarray(100, bytes.length - 7)), 'every byte once, in order');
      assert.ok(retries.length >= 2, `resumed ${retries.length} times`);

      let plainError: unknown;
      for (let i = 0; i < 8 && plainError === undefined; i++) {
        try {
          for await (const _ of store.readRange('blob.bin', 0, bytes.length)) continue;
        } catch (err) {
          plainError = err;
        }
      }
      assert.ok(isTransient(plainError), `a plain ranged read fails with a transient error when its connection drops: ${String(plainError)}`);

      const resilient = withResilientReads(store, { baseDelayMs: 5, attempts: 8 });
      for (let i = 0; i < 4; i++) assert.ok((await resilient.read('blob.bin')).equals(bytes), 'read() re-requests a body that broke off');
      await assert.rejects(resilient.read('missing.bin'), NotFoundError, 'final errors are not retried');
    } finally {
      client.destroy();
    }
  });

  it(
    'a run whose downloads lose their connection mid-body publishes exactly the clean output, without redoing splits',
    async () => {
      await proxy?.close();
      proxy = await startFaultProxy({ target: s3.endpoint, seed: 11, rates: { dropMidBody: 0.25 } });
      const out = outputStore('out/dropped/');
      const watcher = watchVersions(out);
      const retries: string[] = [];
      const args = ['--input', `s3://${BUCKET}/in/`, '--model', model, '--output', `s3://${BUCKET}/out/dropped/`, ...splitArgs];
      let result: Awaited<ReturnType<typeof runEmbedded>>;
      let seen: Map<string, Set<string>>;
      try {
        result = await runEmbedded(runConfig(args, envFor(proxy.endpoint)), (e) => {
          if (e.type === 'split-retry' || e.type === 'split-failed') retries.push(`${e.type} ${e.split}: ${e.error}`);
        });
      } finally {
        proxy.setEnabled(false);
        seen = await watcher.stop();
      }
      assert.ok(proxy.counts().dropMidBody > 2, `dropMidBody injected ${proxy.counts().dropMidBody} times`);
      assert.deepEqual(result.manifest.rows, clean.manifest.rows);
      assert.deepEqual(await publishedRows(out, result.manifest), clean.rows);
      await assertNoPartialObjects(out, seen);
      assert.deepEqual(retries, [], 'a dropped download is resumed inside the read, not by failing and redoing the split');
    },
  );

  it('a multipart upload through 500s, SlowDowns and resets stores exactly the bytes sent and leaves no upload behind', async () => {
    await proxy?.close();
    // A lost answer to CompleteMultipartUpload is left out: s3rver answers its retry NoSuchUpload where S3 answers 200.
    proxy = await startFaultProxy({
      target: s3.endpoint,
      seed: 5,
      rates: { error500: 0.15, slowDown503: 0.1, reset: 0.1 },
    });
    const client = createS3Client({ ...s3.clientOptions, endpoint: proxy.endpoint, maxAttempts: 5 });
    const store = new S3Store(client, BUCKET, 'big/', { partBytes: 5 * 1024 * 1024, queueSize: 2 });
    const size = 13 * 1024 * 1024;
    const chunk = 256 * 1024;
    const hash = createHash('sha256');
    const body = Readable.from(
      (function* () {
        for (let at = 0; at < size; at += chunk) {
          const piece = Buffer.alloc(chunk, at / chunk);
          hash.update(piece);
          yield piece;
        }
      })(),
    );
    await store.put('object.bin', body);
    proxy.setEnabled(false);
    assert.ok(proxy.faults.some((f) => f.url.includes('partNumber=')), `an UploadPart was faulted: ${proxy.faults.map((f) => `${f.kind} ${f.method} ${f.url}`).join(', ')}`);
    const stored = await direct.read('big/object.bin');
    assert.equal(stored.length, size);
    assert.equal(createHash('sha256').update(stored).digest('hex'), hash.digest('hex'));
    assert.deepEqual(incompleteUploads(s3, BUCKET), []);
    client.destroy();
  });
});

/**
 * Every key that still exists was only ever seen with its final size and etag (no partial or
 * earlier version was visible), no temp names were ever visible, and the published files are
 * exactly the manifest's plus the run's bookkeeping.
 */
async function assertNoPartialObjects(out: ObjectStore, seen: Map<string, Set<string>>): Promise<void> {
  const final = new Map<string, string>();
  for await (const info of out.list('')) final.set(info.key, `${info.size}:${info.etag}`);
  for (const [key, versions] of seen) {
    assert.doesNotMatch(key, /\.tmp|\.partial/, `a temp object was visible: ${key}`);
    const now = final.get(key);
    if (now === undefined) continue;
    assert.deepEqual([...versions], [now], `${key} was visible in another version than its final one`);
  }
  const manifest = JSON.parse((await out.read(outputKeys.manifest)).toString()) as Manifest;
  const published = [...final.keys()].filter((k) => !k.startsWith(outputKeys.shardPrefix)).sort();
  assert.deepEqual(published, [...manifest.files.map((f) => f.key), outputKeys.manifest, outputKeys.plan, outputKeys.success].sort());
}
