import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allocatorRelaunchEnv, loadEnvSettings, loadRunConfig, MALLOC_MMAP_THRESHOLD_BYTES, parseSize, runDefaults } from '@vecmill/shared/config';

const base = ['--input', 'data.tsv', '--model', 'model', '--output', 'out'];

describe('loadRunConfig', () => {
  it('applies documented defaults', () => {
    const c = loadRunConfig(base, {});
    assert.deepEqual(c.inputs, ['data.tsv']);
    assert.equal(c.splitSize, runDefaults.splitSize);
    assert.equal(c.dtype, 'fp32');
    assert.equal(c.normalize, true);
    assert.equal(c.trimText, true);
    assert.deepEqual(c.formats, ['parquet', 'npy']);
    assert.equal(c.maxPixels, 50_000_000);
    assert.equal(c.kind, undefined);
  });

  it('parses every flag', () => {
    const c = loadRunConfig(
      [...base, '--input', 'more.tsv', '--kind', 'text', '--split-size', '1MiB', '--concurrency', '3', '--batch-size', '16', '--dtype', 'q8', '--no-normalize', '--out-dtype', 'float16', '--formats', 'tsv', '--fast-decode', '--device', 'auto', '--threads', '1', '--progress', 'json', '--run-id', 'nightly-1'],
      {},
    );
    assert.deepEqual(c.inputs, ['data.tsv', 'more.tsv']);
    assert.equal(c.kind, 'text');
    assert.equal(c.splitSize, 1024 * 1024);
    assert.equal(c.concurrency, 3);
    assert.equal(c.batchSize, 16);
    assert.equal(c.dtype, 'q8');
    assert.equal(c.normalize, false);
    assert.equal(c.outDtype, 'float16');
    assert.deepEqual(c.formats, ['parquet', 'tsv']);
    assert.equal(c.fastDecode, true);
    assert.equal(c.device, 'auto');
    assert.equal(c.progress, 'json');
    assert.equal(c.runId, 'nightly-1');
  });

  const bad: [string, string[], RegExp][] = [
    ['missing input', ['--model', 'm', '--output', 'o'], /--input is required/],
    ['missing model', ['--input', 'i', '--output', 'o'], /--model is required/],
    ['missing output', ['--input', 'i', '--model', 'm'], /--output is required/],
    ['bad kind', [...base, '--kind', 'video'], /--kind video: expected one of pairs, text, image/],
    ['bad dtype', [...base, '--dtype', 'int4'], /--dtype int4/],
    ['bad size', [...base, '--split-size', 'lots'], /--split-size lots: expected a size/],
    ['zero concurrency', [...base, '--concurrency', '0'], /--concurrency 0/],
    ['bad format', [...base, '--formats', 'csv'], /--formats csv/],
    ['unknown flag', [...base, '--colour'], /^unknown flag --colour$/],
    ['a flag without its value', [...base, '--kind'], /^--kind needs a value$/],
    ['a flag whose value is the next flag', ['--model', '--input', 'i', '--output', 'o'], /^--model needs a value/],
    ['a value given to a switch', [...base, '--fast-decode=yes'], /^--fast-decode takes no value/],
    ['a stray argument', [...base, 'extra.tsv'], /^unexpected argument "extra.tsv"$/],
  ];
  for (const [name, argv, message] of bad) {
    it(`fails in one line on ${name}`, () => {
      assert.throws(() => loadRunConfig(argv, {}), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'E_CONFIG');
        assert.match(err.message, message);
        assert.ok(!err.message.includes('\n'), 'one line');
        return true;
      });
    });
  }
});

describe('parseSize', () => {
  for (const [text, bytes] of [['1000', 1000], ['64MiB', 64 << 20], ['64mb', 64 << 20], ['512k', 512 << 10], ['1G', 1 << 30], ['1.5KiB', 1536]] as const) {
    it(`${text} = ${bytes}`, () => assert.equal(parseSize(text, '--x'), bytes));
  }
});

describe('loadEnvSettings', () => {
  it('reads S3, hub and cache settings from the environment only here', () => {
    const env = loadEnvSettings({
      AWS_REGION: 'eu-west-1',
      VECMILL_S3_ENDPOINT: 'http://127.0.0.1:9000',
      AWS_ACCESS_KEY_ID: 'AKIDSENTINEL',
      AWS_SECRET_ACCESS_KEY: 'secret-sentinel',
      HF_ENDPOINT: 'http://mirror.local/',
      HF_TOKEN: 'hf_sentinel',
      VECMILL_CACHE: '/tmp/vc',
    });
    assert.equal(env.s3.region, 'eu-west-1');
    assert.equal(env.s3.endpoint, 'http://127.0.0.1:9000');
    assert.equal(env.s3.forcePathStyle, true);
    assert.equal(env.s3.credentials?.accessKeyId, 'AKIDSENTINEL');
    assert.equal(env.hfEndpoint, 'http://mirror.local');
    assert.equal(env.hfToken, 'hf_sentinel');
    assert.equal(env.cacheDir, '/tmp/vc');
  });

  it('defaults to AWS with the SDK credential chain', () => {
    const env = loadEnvSettings({ HOME: '/home/u' });
    assert.equal(env.s3.region, 'us-east-1');
    assert.equal(env.s3.endpoint, undefined);
    assert.equal(env.s3.credentials, undefined);
    assert.equal(env.hfEndpoint, 'https://huggingface.co');
  });
});

describe('allocatorRelaunchEnv', () => {
  it('adds the mmap threshold on glibc when nothing sets it', () => {
    assert.deepEqual(allocatorRelaunchEnv(true, { PATH: '/bin' }), { PATH: '/bin', MALLOC_MMAP_THRESHOLD_: String(MALLOC_MMAP_THRESHOLD_BYTES) });
  });

  it('leaves an explicit setting alone, and other C libraries too', () => {
    assert.equal(allocatorRelaunchEnv(true, { MALLOC_MMAP_THRESHOLD_: '131072' }), undefined);
    assert.equal(allocatorRelaunchEnv(true, { GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=65536' }), undefined);
    assert.equal(allocatorRelaunchEnv(false, {}), undefined);
    assert.notEqual(allocatorRelaunchEnv(true, { GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }), undefined);
  });
});
