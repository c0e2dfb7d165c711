import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PayloadError } from '@vecmill/shared/errors';
import { checkEmbedAgainstPlan, embedPayload, mergePayload, parseJobPayload } from '@vecmill/shared/queue/job-payload';
import type { RunPlan } from '@vecmill/shared/run-plan';

const fingerprint = 'a'.repeat(64);
const plan = {
  version: 1,
  runId: 'run-1',
  createdAt: '2026-01-01T00:00:00.000Z',
  output: 's3://data-bucket/runs/run-1/',
  inputs: [
    { uri: 's3://data-bucket/in/a.tsv', size: 100, etag: 'e1', modified: '' },
    { uri: 's3://data-bucket/in/b.tsv', size: 50, etag: 'e2', modified: '' },
  ],
  splits: [
    { index: 0, input: 0, start: 0, end: 60 },
    { index: 1, input: 0, start: 60, end: 100 },
    { index: 2, input: 1, start: 0, end: 50 },
  ],
  splitSize: 60,
  model: { location: '/models/clip', dtype: 'fp32', fingerprint: { id: fingerprint, files: {} }, dims: 32, preprocessing: {}, contextLength: 77 },
  settings: {} as RunPlan['settings'],
} as unknown as RunPlan;

describe('job payloads', () => {
  it('round-trips the payloads the producer builds, and they match the plan', () => {
    for (const split of [0, 1, 2]) {
      const p = embedPayload(plan, split);
      assert.deepEqual(parseJobPayload(JSON.parse(JSON.stringify(p))), p);
      checkEmbedAgainstPlan(p, plan);
    }
    assert.deepEqual(parseJobPayload(mergePayload(plan)), { v: 1, kind: 'merge', runId: 'run-1', output: plan.output, splits: 3 });
    assert.deepEqual(parseJobPayload({ v: 1, kind: 'gate', runId: 'run-1' }), { v: 1, kind: 'gate', runId: 'run-1' });
    const local = { ...embedPayload(plan, 0), output: '/data/out', input: { uri: '/data/in/a.tsv', start: 0, end: 60, etag: 'e1' } };
    assert.equal(parseJobPayload(local).kind, 'embed');
  });

  it('refuses URLs, file:// paths, .. and non-canonical locations before any I/O', () => {
    const good = embedPayload(plan, 0);
    const cases: Record<string, unknown> = {
      fileUrl: { ...good, input: { ...good.input, uri: 'file:///etc/passwd' } },
      metadata: { ...good, input: { ...good.input, uri: 'http://169.254.169.254/latest/meta-data/' } },
      dotdot: { ...good, output: '/data/out/../../etc' },
      relative: { ...good, output: 'out/run' },
      s3dotdot: { ...good, output: 's3://data-bucket/runs/../secrets/' },
      doubleSlash: { ...good, output: '/data//out' },
      gs: { ...good, output: 'gs://bucket/x/' },
      modelUrl: { ...good, model: { ...good.model, location: 'https://evil.example/model' } },
    };
    for (const [name, data] of Object.entries(cases)) assert.throws(() => parseJobPayload(data), PayloadError, name);
  });

  it('refuses unknown or missing fields, wrong types, bad ids and unknown kinds', () => {
    const good = embedPayload(plan, 0);
    const cases: Record<string, unknown> = {
      extraField: { ...good, exec: 'rm -rf /' },
      extraInputField: { ...good, input: { ...good.input, bytes: 'AAAA' } },
      missing: { v: 1, kind: 'embed', runId: 'run-1' },
      stringSplit: { ...good, split: '0' },
      negativeStart: { ...good, input: { ...good.input, start: -1 } },
      emptyRange: { ...good, input: { ...good.input, start: 60, end: 60 } },
      colonRunId: { ...good, runId: 'run:1' },
      version2: { ...good, v: 2 },
      shortFingerprint: { ...good, model: { ...good.model, fingerprint: 'abc' } },
      kind: { ...good, kind: 'shell' },
      array: [good],
      nullData: null,
    };
    for (const [name, data] of Object.entries(cases)) assert.throws(() => parseJobPayload(data), PayloadError, name);
  });

  it('refuses a well-formed job that names another bucket, file, range, etag or model than plan.json', () => {
    const good = embedPayload(plan, 1);
    const cases = {
      foreignBucket: { ...good, input: { ...good.input, uri: 's3://other-bucket/in/a.tsv' } },
      otherInput: { ...good, input: { ...good.input, uri: 's3://data-bucket/in/b.tsv' } },
      widerRange: { ...good, input: { ...good.input, end: 101 } },
      otherEtag: { ...good, input: { ...good.input, etag: 'e9' } },
      otherModel: { ...good, model: { ...good.model, location: '/models/other' } },
      unplannedSplit: { ...good, split: 7 },
      otherRun: { ...good, runId: 'run-2' },
    };
    for (const [name, payload] of Object.entries(cases)) assert.throws(() => checkEmbedAgainstPlan(payload, plan), PayloadError, name);
  });
});
