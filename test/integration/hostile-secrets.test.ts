import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createReadStream, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import { openStore } from '@vecmill/shared/storage/open-store';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { startFakeHub, type FakeHub } from '../support/fake-hub-server.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { projectRoot } from '../support/fixtures.js';
import { startS3Server, type S3TestServer } from '../support/s3-server.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

/**
 * Credentials never reach logs, events, outputs or error messages. The CLI runs as a child
 * process with sentinel secrets in its environment, once succeeding and in several failing ways
 * (rejected key, storage failing every write mid-run, unreachable endpoint, hub refusing the
 * token); stdout, stderr (JSON progress events included) and every file written anywhere are
 * searched for the sentinels.
 */
const SENTINELS = {
  awsSecret: 'SENTINELawsSecretKeyQ7w9e8r7t6y5u4i3o2p1',
  sessionToken: 'SENTINELsessionTokenZ1x2c3v4b5n6m7',
  hfToken: 'hf_SENTINELhubTokenA9s8d7f6g5h4',
  redisPassword: 'SENTINELredisPasswordK3j4h5',
};
const BUCKET = 'vecmill-secrets';

interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function cli(args: readonly string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(projectRoot, 'packages', 'cli', 'bin', 'vecmill.js'), ...args], { cwd: projectRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function assertNoSentinel(text: string, where: string): void {
  for (const [name, value] of Object.entries(SENTINELS)) {
    assert.ok(!text.includes(value), `${name} leaked into ${where}`);
  }
}

/** Every file below a local folder, as [path, bytes]. */
function localFiles(dir: string): [string, Buffer][] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  return entries.flatMap((name): [string, Buffer][] => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? localFiles(path) : [[path, readFileSync(path)]];
  });
}

describe('credentials never reach logs, events, outputs or messages', () => {
  let s3: S3TestServer;
  let hub: FakeHub;
  let proxy: FaultProxy;
  let dir: string;
  let cleanup: () => Promise<void>;
  let bucket: ObjectStore;
  let baseEnv: NodeJS.ProcessEnv;
  const scanned: string[] = [];

  before(async () => {
    s3 = await startS3Server({ buckets: [BUCKET], secretAccessKey: SENTINELS.awsSecret });
    ({ dir, cleanup } = await makeTempDir('secrets'));
    bucket = openStore({ kind: 's3', bucket: BUCKET, key: '' }, s3.clientOptions);
    await makeDataset({ path: join(dir, 'in.tsv'), rows: 40, kind: 'pairs', seed: 8, imageSize: 32 });
    await bucket.put('in/in.tsv', createReadStream(join(dir, 'in.tsv')));
    const model = await tinyModelDir();
    for (const f of ['config.json', 'preprocessor_config.json', 'tokenizer.json', 'tokenizer_config.json', 'onnx/text_model.onnx', 'onnx/vision_model.onnx']) {
      await bucket.put(`models/tiny/${f}`, createReadStream(join(model, f)));
    }
    hub = await startFakeHub({ repos: [{ id: 'acme/clip-tiny', dir: model, sha: 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678' }], token: SENTINELS.hfToken, separateCdn: true });
    // Every write under out/failing/shards/ answers 500, so splits fail and retry with error events.
    proxy = await startFaultProxy({ target: s3.endpoint, rates: { error500: 1 }, maxFaultsPerRequest: Number.MAX_SAFE_INTEGER, eligible: (r) => r.method === 'PUT' && r.url.includes('/out/failing/shards/') });
    baseEnv = {
      PATH: process.env['PATH'],
      HOME: dir,
      VECMILL_CACHE: join(dir, 'cache'),
      VECMILL_S3_ENDPOINT: s3.endpoint,
      AWS_REGION: s3.region,
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: SENTINELS.awsSecret,
      AWS_SESSION_TOKEN: SENTINELS.sessionToken,
      HF_TOKEN: SENTINELS.hfToken,
      HF_ENDPOINT: hub.endpoint,
      VECMILL_REDIS_URL: `redis://:${SENTINELS.redisPassword}@127.0.0.1:1/0`,
      REDIS_PASSWORD: SENTINELS.redisPassword,
      UV_THREADPOOL_SIZE: '2',
    };
  });
  after(async () => {
    await proxy.close();
    await hub.close();
    await s3.close();
    await cleanup();
  });

  const runArgs = (output: string, extra: readonly string[] = []): string[] => [
    'run',
    '--input',
    `s3://${BUCKET}/in/`,
    '--model',
    `s3://${BUCKET}/models/tiny/`,
    '--output',
    output,
    '--progress',
    'json',
    '--threads',
    '1',
    ...extra,
  ];

  it('a successful S3 run: stdout, JSON events and every output object are clean', async () => {
    const r = await cli(runArgs(`s3://${BUCKET}/out/ok/`, ['--split-size', '16KiB', '--formats', 'npy,tsv']), baseEnv);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stderr.split('\n').some((l) => l.includes('"type":"merge-done"')), 'JSON events were captured');
    assertNoSentinel(r.stdout, 'stdout');
    assertNoSentinel(r.stderr, 'stderr');
    scanned.push('ok run');
  });

  it('a rejected access key fails with one line and no secret', async () => {
    const r = await cli(runArgs(`s3://${BUCKET}/out/denied/`), { ...baseEnv, AWS_ACCESS_KEY_ID: 'AKIAWRONGWRONGWRONG' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /vecmill run: .*\[E_/);
    assertNoSentinel(r.stdout + r.stderr, 'the output of a run with a rejected key');
  });

  it('storage failing every shard write mid-run: retry and failure events carry no secret', async () => {
    const r = await cli(runArgs(`s3://${BUCKET}/out/failing/`, ['--concurrency', '1']), { ...baseEnv, VECMILL_S3_ENDPOINT: proxy.endpoint });
    assert.equal(r.code, 1);
    const events = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { type: string; error?: string });
    assert.ok(events.some((e) => e.type === 'split-retry'), 'retry events were emitted');
    assert.ok(events.some((e) => e.type === 'split-failed' && (e.error ?? '').includes('HTTP 500')), 'the failure event names the S3 error');
    assertNoSentinel(r.stdout + r.stderr, 'the output of a run whose writes fail');
  });

  it('an unreachable S3 endpoint fails with one line and no secret', async () => {
    const r = await cli(runArgs(`s3://${BUCKET}/out/unreachable/`), { ...baseEnv, VECMILL_S3_ENDPOINT: 'http://127.0.0.1:9' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /vecmill run: .*\[E_/);
    assertNoSentinel(r.stdout + r.stderr, 'the output of a run with an unreachable endpoint');
  });

  it('the hub token goes to the hub only and appears in no message, whether accepted or refused', async () => {
    const refused = await cli(['models', 'pull', 'acme/clip-tiny'], { ...baseEnv, HF_TOKEN: `${SENTINELS.hfToken}x` });
    assert.equal(refused.code, 1);
    assert.ok(!(refused.stdout + refused.stderr).includes(`${SENTINELS.hfToken}x`), 'the refused token is not printed');
    assertNoSentinel(refused.stdout + refused.stderr, 'the output of a refused pull');

    const pulled = await cli(['models', 'pull', 'acme/clip-tiny'], baseEnv);
    assert.equal(pulled.code, 0, pulled.stderr);
    assertNoSentinel(pulled.stdout + pulled.stderr, 'the output of a pull');
    const cdn = hub.requests.filter((q) => q.server === 'cdn');
    assert.ok(cdn.length > 0 && cdn.every((q) => q.authorization === undefined), 'the token is not sent to the CDN');
    assert.ok(hub.requests.some((q) => q.server === 'hub' && q.authorization === `Bearer ${SENTINELS.hfToken}`), 'the hub got it');
  });

  it('no object in the bucket and no file in the cache or home folder holds a secret', async () => {
    assert.ok(scanned.includes('ok run'), 'runs after the successful run');
    let objects = 0;
    for await (const info of bucket.list('out/')) {
      assertNoSentinel((await bucket.read(info.key)).toString('latin1'), `s3://${BUCKET}/${info.key}`);
      objects++;
    }
    assert.ok(objects > 10, `scanned ${objects} output objects`);
    const files = localFiles(dir);
    assert.ok(files.some(([p]) => p.includes('cache')), 'the model cache was scanned');
    for (const [path, bytes] of files) assertNoSentinel(bytes.toString('latin1'), path);
  });
});
