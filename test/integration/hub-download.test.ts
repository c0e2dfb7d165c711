import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DownloadError, VecmillError } from '@vecmill/shared/errors';
import { pullModel, type PullModelOptions, type PullProgress } from '@vecmill/shared/model/hub-download';
import { resolveCachedModel } from '@vecmill/shared/model/model-cache';
import { startFakeHub, type FakeHub, type FakeHubOptions } from '../support/fake-hub-server.js';
import { makeTempDir } from '../support/tmp.js';

const repoId = 'acme/clip-tiny';
const sha = 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678';
const textFp32 = 'onnx/text_model.onnx';
const visionFp32 = 'onnx/vision_model.onnx';
const common = ['config.json', 'preprocessor_config.json', 'tokenizer.json', 'tokenizer_config.json'];

let root: string;
let cleanup: () => Promise<void>;
let repoDir: string;
let fp32OnlyDir: string;
let caseNo = 0;
const hubs: FakeHub[] = [];

/** A repo folder shaped like a Xenova CLIP export; the ONNX files are random bytes, which is all the download logic sees. */
async function writeRepo(dir: string, dtypes: { fp16: boolean; q8: boolean }): Promise<void> {
  await mkdir(join(dir, 'onnx'), { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify({ projection_dim: 512, text_config: { max_position_embeddings: 77 } }));
  await writeFile(join(dir, 'preprocessor_config.json'), JSON.stringify({ crop_size: 224, image_mean: [0.48, 0.46, 0.41] }));
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify({ model: { type: 'BPE', vocab: { a: 0 } } }));
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ model_max_length: 77 }));
  await writeFile(join(dir, 'README.md'), '# not fetched\n');
  await writeFile(join(dir, textFp32), randomBytes(300_000));
  await writeFile(join(dir, visionFp32), randomBytes(420_000));
  if (dtypes.fp16) {
    await writeFile(join(dir, 'onnx/text_model_fp16.onnx'), randomBytes(150_000));
    await writeFile(join(dir, 'onnx/vision_model_fp16.onnx'), randomBytes(210_000));
  }
  if (dtypes.q8) {
    await writeFile(join(dir, 'onnx/text_model_quantized.onnx'), randomBytes(80_000));
    await writeFile(join(dir, 'onnx/vision_model_quantized.onnx'), randomBytes(100_000));
  }
}

/** A fresh cache folder and fake hub per case, so request logs and faults never leak between cases. */
async function setup(options: Partial<FakeHubOptions> = {}, dir = repoDir): Promise<{ hub: FakeHub; cacheDir: string; pull: (extra?: Partial<PullModelOptions>) => Promise<Awaited<ReturnType<typeof pullModel>>> }> {
  caseNo += 1;
  const cacheDir = join(root, `cache-${caseNo}`);
  const hub = await startFakeHub({ repos: [{ id: repoId, dir, sha, refs: ['main', 'v1'] }], ...options });
  hubs.push(hub);
  const pull = (extra: Partial<PullModelOptions> = {}) => pullModel({ repoId, cacheDir, endpoint: hub.endpoint, retryDelayMs: 5, ...extra });
  return { hub, cacheDir, pull };
}

async function assertSameBytes(cachedDir: string, files: readonly string[]): Promise<void> {
  for (const f of files) assert.deepEqual(await readFile(join(cachedDir, f)), await readFile(join(repoDir, f)), `${f} differs from the served file`);
}

async function rejection(promise: Promise<unknown>): Promise<DownloadError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof DownloadError, `expected a DownloadError, got ${String(err)}`);
  assert.equal(err.code, 'E_DOWNLOAD');
  assert.ok(!err.message.includes('\n'), `message is not one line: ${err.message}`);
  return err;
}

describe('pullModel from a Hugging Face hub', () => {
  before(async () => {
    ({ dir: root, cleanup } = await makeTempDir('hub'));
    repoDir = join(root, 'repo');
    fp32OnlyDir = join(root, 'repo-fp32');
    await writeRepo(repoDir, { fp16: true, q8: true });
    await writeRepo(fp32OnlyDir, { fp16: false, q8: false });
  });
  after(async () => {
    for (const hub of hubs) await hub.close();
    await cleanup();
  });

  it('pulls the fp32 files byte for byte into {org}--{name}/{sha} and records refs/main', async () => {
    const { hub, cacheDir, pull } = await setup();
    const progress: PullProgress[] = [];
    const pulled = await pull({ onProgress: (p) => progress.push(p) });

    const wanted = [...common, textFp32, visionFp32];
    assert.equal(pulled.dir, join(cacheDir, 'acme--clip-tiny', sha));
    assert.equal(pulled.sha, sha);
    assert.deepEqual(pulled.files.map((f) => f.path).sort(), [...wanted].sort());
    for (const f of pulled.files) assert.equal(f.size, (await readFile(join(repoDir, f.path))).length);
    await assertSameBytes(pulled.dir, wanted);
    assert.equal(pulled.downloadedBytes, hub.bytesSent() - hub.requests.filter((r) => r.kind === 'api').reduce((n, r) => n + r.bodyBytes, 0));
    assert.equal(existsSync(join(pulled.dir, 'README.md')), false);
    assert.equal(existsSync(join(pulled.dir, 'onnx/text_model_fp16.onnx')), false);
    assert.equal((await readFile(join(cacheDir, 'acme--clip-tiny', 'refs', 'main'), 'utf8')).trim(), sha);

    const lastForVision = progress.filter((p) => p.file === visionFp32).at(-1);
    assert.deepEqual(lastForVision, { file: visionFp32, received: 420_000, total: 420_000 });
    const resolves = hub.requests.filter((r) => r.kind === 'resolve');
    assert.ok(resolves.every((r) => r.url.includes(`/resolve/${sha}/`)), 'files must be fetched at the resolved commit, not the branch');
    assert.ok(hub.requests.some((r) => r.kind === 'cdn' && r.file === textFp32), 'LFS files should come through the CDN redirect');
  });

  it('resolves a pulled repo offline from the cache by branch or sha, and nothing else', async () => {
    const { cacheDir, pull } = await setup();
    const pulled = await pull({ revision: 'v1' });
    assert.equal(resolveCachedModel(cacheDir, repoId, 'v1'), pulled.dir);
    assert.equal(resolveCachedModel(cacheDir, repoId, sha), pulled.dir);
    assert.equal(resolveCachedModel(cacheDir, repoId), undefined, 'main was never pulled');
    assert.equal(resolveCachedModel(cacheDir, 'acme/other'), undefined);
    assert.equal(resolveCachedModel(cacheDir, './some/local/folder'), undefined);
    assert.equal(resolveCachedModel(cacheDir, repoId, '../../etc'), undefined);
  });

  it('a second pull of the same revision downloads nothing', async () => {
    const { hub, pull } = await setup();
    await pull();
    const before = hub.requests.length;
    const again = await pull();
    const second = hub.requests.slice(before);
    assert.equal(again.downloadedBytes, 0);
    assert.deepEqual(second.map((r) => r.kind), ['api'], 'only the revision lookup should hit the hub');
  });

  it('without sizes in the listing, takes the size from X-Linked-Size and still skips present files', async () => {
    const { hub, pull } = await setup({ listSizes: false });
    const pulled = await pull();
    await assertSameBytes(pulled.dir, [...common, textFp32, visionFp32]);
    const before = hub.requests.length;
    assert.equal((await pull()).downloadedBytes, 0);
    assert.deepEqual(hub.requests.slice(before).map((r) => r.kind), ['api']);
  });

  it('resumes with a Range request after the connection drops mid-file', async () => {
    const { hub, pull } = await setup({ dropFiles: [visionFp32], dropAfterBytes: 100_000 });
    const pulled = await pull();
    await assertSameBytes(pulled.dir, [visionFp32]);
    const bodies = hub.requests.filter((r) => r.file === visionFp32 && r.kind === 'cdn');
    assert.equal(bodies.length, 2);
    assert.equal(bodies[0]?.range, undefined);
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(bodies[1]?.range ?? '')?.[1]);
    assert.ok(resumedAt > 0 && resumedAt <= 100_000, `second request should resume, sent range ${bodies[1]?.range}`);
    assert.equal(bodies[1]?.status, 206);
    assert.ok((bodies[1]?.bodyBytes ?? Infinity) < 420_000, 'the resumed request must transfer less than the whole file');
    assert.equal(existsSync(join(pulled.dir, `${visionFp32}.incomplete`)), false);
  });

  it('resumes a .incomplete file left by an earlier run, and restarts when the server ignores Range', async () => {
    const full = await readFile(join(repoDir, textFp32));
    for (const ignoreRange of [false, true]) {
      const { hub, cacheDir, pull } = await setup({ ignoreRange, separateCdn: true });
      const partial = join(cacheDir, 'acme--clip-tiny', sha, `${textFp32}.incomplete`);
      await mkdir(join(partial, '..'), { recursive: true });
      await writeFile(partial, full.subarray(0, 120_000));
      const pulled = await pull();
      await assertSameBytes(pulled.dir, [textFp32]);
      const body = hub.requests.find((r) => r.file === textFp32 && r.kind === 'cdn');
      assert.equal(body?.range, 'bytes=120000-');
      assert.equal(body?.bodyBytes, ignoreRange ? full.length : full.length - 120_000);
    }
  });

  it('sends HF_TOKEN as a bearer token to the hub only, and explains a 401 without leaking the token', async () => {
    const token = 'hf_secretTokenValue123';
    const { hub, pull } = await setup({ token, separateCdn: true });
    const pulled = await pull({ token });
    await assertSameBytes(pulled.dir, [textFp32, 'tokenizer.json']);
    const hubRequests = hub.requests.filter((r) => r.server === 'hub');
    assert.ok(hubRequests.length > 0 && hubRequests.every((r) => r.authorization === `Bearer ${token}`));
    const cdnRequests = hub.requests.filter((r) => r.server === 'cdn');
    assert.ok(cdnRequests.length > 0 && cdnRequests.every((r) => r.authorization === undefined), 'the token must not follow a redirect to another origin');

    const missing = await rejection(pull());
    assert.match(missing.message, /HF_TOKEN/);
    assert.match(missing.message, /401/);
    const wrong = await rejection(pull({ token: 'hf_wrongTokenValue456' }));
    assert.match(wrong.message, /HF_TOKEN/);
    assert.ok(!wrong.message.includes('hf_wrongTokenValue456') && !JSON.stringify(wrong.context).includes('hf_wrongTokenValue456'));
  });

  it('names a missing repo and a missing revision', async () => {
    const { pull } = await setup();
    const repo = await rejection(pull({ repoId: 'acme/no-such-model' }));
    assert.match(repo.message, /acme\/no-such-model.*not found.*404/);
    const revision = await rejection(pull({ revision: 'v9' }));
    assert.match(revision.message, /revision v9 .*not found/);
  });

  it('detects a size that differs from the announced one and keeps no partial file or ref', async () => {
    for (const listSizes of [true, false]) {
      const { cacheDir, pull } = await setup({ listSizes, announcedSizes: { [visionFp32]: 420_010 } });
      const err = await rejection(pull());
      assert.match(err.message, new RegExp(`${visionFp32} .*420000 bytes.*announced 420010`));
      const snapshot = join(cacheDir, 'acme--clip-tiny', sha);
      assert.equal(existsSync(join(snapshot, visionFp32)), false);
      assert.equal(existsSync(join(snapshot, `${visionFp32}.incomplete`)), false);
      assert.equal(resolveCachedModel(cacheDir, repoId), undefined);
    }
  });

  it('detects a file whose sha256 differs from the LFS hash, from the listing or from X-Linked-Etag', async () => {
    for (const listSizes of [true, false]) {
      const { cacheDir, pull } = await setup({ listSizes, corruptFiles: [textFp32] });
      const err = await rejection(pull());
      assert.match(err.message, new RegExp(`${textFp32} .*sha256`));
      assert.equal(existsSync(join(cacheDir, 'acme--clip-tiny', sha, textFp32)), false);
    }
  });

  it('fetches only the ONNX pair of the chosen dtype', async () => {
    const expected = { fp16: '_fp16', q8: '_quantized' } as const;
    for (const dtype of ['fp16', 'q8'] as const) {
      const { hub, pull } = await setup();
      const pulled = await pull({ dtype });
      const onnx = [`onnx/text_model${expected[dtype]}.onnx`, `onnx/vision_model${expected[dtype]}.onnx`];
      assert.deepEqual(pulled.files.map((f) => f.path).filter((p) => p.endsWith('.onnx')).sort(), onnx.sort());
      await assertSameBytes(pulled.dir, onnx);
      const fetched = new Set(hub.requests.map((r) => r.file).filter((f) => f?.endsWith('.onnx')));
      assert.deepEqual([...fetched].sort(), onnx.sort());
      assert.equal(existsSync(join(pulled.dir, textFp32)), false);
    }
  });

  it('names the missing ONNX file and suggests the dtypes the repo does have', async () => {
    const { pull } = await setup({}, fp32OnlyDir);
    const err = await rejection(pull({ dtype: 'fp16' }));
    assert.match(err.message, /onnx\/text_model_fp16\.onnx/);
    assert.match(err.message, /--dtype fp32/);
  });

  it('retries 5xx answers with backoff, and gives up after the configured retries', async () => {
    const flaky = await setup({ failFirst: 2 });
    const pulled = await flaky.pull({ retries: 2 });
    await assertSameBytes(pulled.dir, [textFp32]);
    assert.deepEqual(flaky.hub.requests.slice(0, 3).map((r) => r.status), [503, 503, 200]);

    const down = await setup({ failFirst: 1000 });
    const err = await rejection(down.pull({ retries: 2 }));
    assert.match(err.message, /HTTP 503/);
    assert.equal(down.hub.requests.length, 3);
  });

  it('fails in one line, without retrying, when the endpoint cannot be reached', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    let calls = 0;
    const countingFetch: typeof fetch = (input, init) => {
      calls += 1;
      return fetch(input, init);
    };
    const err = await rejection(
      pullModel({ repoId, cacheDir: join(root, 'unreachable'), endpoint: `http://127.0.0.1:${port}`, fetchImpl: countingFetch, retryDelayMs: 5 }),
    );
    assert.match(err.message, /cannot reach 127\.0\.0\.1:\d+/);
    assert.match(err.message, /HF_ENDPOINT/);
    assert.equal(calls, 1);
  });

  it('rejects a repo id that is not org/name before any request', async () => {
    const err = await pullModel({ repoId: '../etc', cacheDir: root, endpoint: 'http://127.0.0.1:1' }).catch((e: unknown) => e);
    assert.ok(err instanceof VecmillError);
    assert.equal(err.code, 'E_CONFIG');
  });
});
