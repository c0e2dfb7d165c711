import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { openStore } from '@vecmill/shared/storage/open-store';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { projectRoot } from '../support/fixtures.js';
import { startS3Server, type S3TestServer } from '../support/s3-server.js';
import { makeTempDir } from '../support/tmp.js';

/**
 * A worker process killed in the middle of a streamed write must leave nothing at the final key.
 * The child streams `sendBytes` of data into a store and then stalls (as a worker busy elsewhere
 * would), so the kill always lands mid-upload: after parts were stored, before completion.
 */
const CHILD = `
import { Readable } from 'node:stream';
import { createS3Client, S3Store } from '@vecmill/shared/storage/s3-store';
import { LocalStore } from '@vecmill/shared/storage/local-store';
const job = JSON.parse(process.env.HOSTILE_KILL_JOB);
const store = job.kind === 's3'
  ? new S3Store(createS3Client(job.s3), job.bucket, '', { partBytes: 5 * 1024 * 1024, queueSize: 2 })
  : new LocalStore(job.root);
const body = Readable.from((async function* () {
  for (let sent = 0; sent < job.sendBytes; sent += 1024 * 1024) yield Buffer.alloc(1024 * 1024, 7);
  process.stdout.write('stalled\\n');
  await new Promise(() => setInterval(() => undefined, 1000));
})());
await store.put(job.key, body);
process.stdout.write('completed\\n');
`;

function startWriter(job: Record<string, unknown>): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
    cwd: projectRoot,
    env: { ...process.env, HOSTILE_KILL_JOB: JSON.stringify(job) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout?.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (text += d.toString()));
  return { child, output: () => text };
}

/** Polls `ready` until it holds, failing with the child's output after ~20 s. */
async function waitFor(ready: () => boolean, what: string, output: () => string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (ready()) return;
    await sleep(20);
  }
  assert.fail(`timed out waiting for ${what}; child said: ${output()}`);
}

async function kill(child: ChildProcess): Promise<NodeJS.Signals | null> {
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  child.kill('SIGKILL');
  return exited;
}

async function keys(store: ObjectStore): Promise<string[]> {
  const out: string[] = [];
  for await (const info of store.list('')) out.push(info.key);
  return out;
}

describe('a writer killed during an upload leaves nothing at the final key', () => {
  let s3: S3TestServer;
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => {
    s3 = await startS3Server({ buckets: ['vecmill-kill'] });
    ({ dir, cleanup } = await makeTempDir('upload-kill'));
  });
  after(async () => {
    await s3.close();
    await cleanup();
  });

  it('S3: SIGKILL after two multipart parts were stored → no object at the key, nothing listed', async () => {
    const uploads = join(s3.directory, 'vecmill-kill', '._S3rver_uploads');
    const partsStored = (): number => (existsSync(uploads) ? readdirSync(uploads).reduce((n, id) => n + readdirSync(join(uploads, id)).filter((f) => /^\d+$/.test(f)).length, 0) : 0);
    const { child, output } = startWriter({ kind: 's3', s3: s3.clientOptions, bucket: 'vecmill-kill', key: 'out/text_feat.tsv', sendBytes: 11 * 1024 * 1024 });
    await waitFor(() => output().includes('stalled') && partsStored() >= 2, 'two stored parts', output);
    assert.equal(await kill(child), 'SIGKILL');
    assert.doesNotMatch(output(), /completed/);

    const bucket = openStore({ kind: 's3', bucket: 'vecmill-kill', key: '' }, s3.clientOptions);
    assert.equal(await bucket.exists('out/text_feat.tsv'), false);
    assert.deepEqual(await keys(bucket), []);
    assert.equal(readdirSync(uploads).length, 1, 'the incomplete upload is left for the bucket lifecycle rule to abort');
  });

  it('the bucket lifecycle rule that aborts such leftovers is documented in infra/', () => {
    const rules = (JSON.parse(readFileSync(join(projectRoot, 'infra', 's3-lifecycle.json'), 'utf8')) as { Rules: { Status: string; AbortIncompleteMultipartUpload?: { DaysAfterInitiation: number } }[] }).Rules;
    assert.ok(rules.some((r) => r.Status === 'Enabled' && (r.AbortIncompleteMultipartUpload?.DaysAfterInitiation ?? 0) > 0));
  });

  it('local: SIGKILL in the middle of a streamed write → no file at the key, the hidden temp file is never listed', async () => {
    const root = join(dir, 'local-out');
    const { child, output } = startWriter({ kind: 'local', root, key: 'embeddings/part-00000.parquet', sendBytes: 3 * 1024 * 1024 });
    const folder = join(root, 'embeddings');
    const tempBytes = (): number => (existsSync(folder) ? readdirSync(folder).reduce((n, f) => n + statSync(join(folder, f)).size, 0) : 0);
    await waitFor(() => output().includes('stalled') && tempBytes() >= 3 * 1024 * 1024, 'the temp file to hold the streamed bytes', output);
    assert.equal(await kill(child), 'SIGKILL');

    assert.equal(existsSync(join(folder, 'part-00000.parquet')), false);
    assert.equal(readdirSync(folder).length, 1, 'only the temp file of the killed write');
    const store = new LocalStore(root);
    assert.equal(await store.exists('embeddings/part-00000.parquet'), false);
    assert.deepEqual(await keys(store), []);
  });
});
