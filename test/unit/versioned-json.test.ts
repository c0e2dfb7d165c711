import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InputError } from '@vecmill/shared/errors';
import { readManifestIfPublished, type Manifest } from '@vecmill/shared/manifest';
import { outputKeys, readPlan, type RunPlan } from '@vecmill/shared/run-plan';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { commitShard, readShardMarker } from '@vecmill/worker/shard-commit';
import { MemoryStore } from '../support/memory-store.js';
import { testPlan } from '../support/test-plan.js';

const settings: RunPlan['settings'] = testPlan({ splits: 2, kind: 'pairs', formats: ['parquet', 'npy'] }).settings;
const fingerprint = { id: 'f'.repeat(64), files: { 'onnx/model.onnx': 'a'.repeat(64) } };
const input = { uri: '/data/in.tsv', size: 100, etag: 'e1', modified: '2026-01-01T00:00:00.000Z' };

const plan: RunPlan = {
  version: 1,
  runId: 'r1',
  createdAt: '2026-01-01T00:00:00.000Z',
  output: '/data/out',
  inputs: [input],
  splits: [
    { index: 0, input: 0, start: 0, end: 60 },
    { index: 1, input: 0, start: 60, end: 100 },
  ],
  splitSize: 60,
  model: { location: '/models/clip', dtype: 'fp32', fingerprint, dims: 32, preprocessing: {}, contextLength: 77 },
  settings,
  reuse: undefined,
};

const manifest: Manifest = {
  version: 2,
  runId: 'r1',
  createdAt: '2026-01-01T00:00:00.000Z',
  completedAt: '2026-01-01T00:01:00.000Z',
  inputs: [input],
  model: { location: '/models/clip', dtype: 'fp32', fingerprint, preprocessing: {}, contextLength: 77 },
  settings,
  dims: 32,
  dtype: 'float32',
  normalized: true,
  rows: { in: 3, ok: 2, failed: 1, reused: 0, computed: 2, failedByReason: { bad_base64: 1 } },
  splits: 2,
  reusedFrom: undefined,
  files: [
    { key: 'embeddings/part-000000-000000.parquet', rows: 2, bytes: 10, sha256: 'b'.repeat(64), role: 'part', firstRow: 0, firstId: 0 },
    { key: 'embeddings/part-000001-000000.parquet', rows: 1, bytes: 9, sha256: 'c'.repeat(64), role: 'part', firstRow: 2, firstId: 2 ** 32 },
  ],
  timings: { read: 1, decode: 2, tokenize: 3, infer: 4, write: 5, merge: 6 },
};

/** One file vecmill writes and reads back: how to write it into a store and how vecmill reads it. */
interface FileCase {
  readonly file: string;
  readonly remedy: RegExp;
  /** A valid document as vecmill writes it. */
  readonly valid: (store: ObjectStore) => Promise<Record<string, unknown>>;
  readonly read: (store: ObjectStore) => Promise<unknown>;
  /** A nested field to delete, and how the error names it. */
  readonly nested: { readonly drop: (doc: Record<string, unknown>) => Record<string, unknown>; readonly named: string };
}

const markerKey = outputKeys.shardMarker(1);
const files: FileCase[] = [
  {
    file: outputKeys.plan,
    remedy: /delete the output folder and start the run again/,
    valid: async () => plan as unknown as Record<string, unknown>,
    read: (store) => readPlan(store),
    nested: { drop: (d) => ({ ...d, splits: [plan.splits[0], { index: 1, input: 0, start: 60 }] }), named: 'field splits[1].end is missing' },
  },
  {
    file: markerKey,
    remedy: /delete it to recompute the split/,
    valid: async (store) => {
      const part = outputKeys.final('part', 1, 0, 6);
      const errors = outputKeys.final('errors', 1, 0, 6);
      await store.put(outputKeys.staged(1, 'a1', part), Buffer.from('parts'));
      await store.put(outputKeys.staged(1, 'a1', errors), Buffer.from('errs'));
      const { marker } = await commitShard(store, {
        runId: 'r1',
        splitIndex: 1,
        attempt: 'a1',
        files: [
          { role: 'part', key: part, staged: outputKeys.staged(1, 'a1', part), rows: 3, bytes: 5, sha256: 'f'.repeat(64) },
          { role: 'errors', key: errors, staged: outputKeys.staged(1, 'a1', errors), rows: 1, bytes: 4, sha256: 'e'.repeat(64) },
        ],
        rowsIn: 3,
        rowsOk: 2,
        rowsReused: 0,
        failedByReason: { bad_base64: 1 },
        timings: () => ({ read: 1, decode: 2, tokenize: 3, infer: 4, write: 5 }),
        worker: 'test',
      });
      return marker as unknown as Record<string, unknown>;
    },
    read: (store) => readShardMarker(store, 1),
    nested: { drop: (d) => ({ ...d, timings: { read: 1, decode: 2, tokenize: 3, write: 5 } }), named: 'field timings.infer is missing' },
  },
  {
    file: outputKeys.manifest,
    remedy: /delete manifest.json and _SUCCESS, then run the same command again/,
    valid: async (store) => {
      await store.put(outputKeys.success, Buffer.from('r1\n'));
      return manifest as unknown as Record<string, unknown>;
    },
    read: (store) => readManifestIfPublished(store),
    nested: { drop: (d) => ({ ...d, files: [manifest.files[0], { key: 'embeddings/part-000001-000000.parquet', rows: 1, bytes: 9 }] }), named: 'field files[1].sha256 is missing' },
  },
];

/** What is written in place of the valid document, and what the one-line refusal must say. */
const damages: { name: string; write: (doc: Record<string, unknown>, f: FileCase) => string; says: (f: FileCase) => RegExp }[] = [
  { name: 'a newer vecmill', write: (d) => JSON.stringify({ ...d, version: (d['version'] as number) + 1 }), says: () => /was written by a newer vecmill \(format version (\d+); this one reads up to \d+\): upgrade vecmill/ },
  { name: 'truncated JSON', write: (d) => JSON.stringify(d).slice(0, 40), says: (f) => new RegExp(`is damaged \\(it is not valid JSON\\); ${f.remedy.source}`) },
  { name: 'not an object', write: () => '[1, 2]', says: () => /is damaged \(it is not a JSON object\)/ },
  { name: 'no version', write: ({ version: _, ...rest }) => JSON.stringify(rest), says: () => /is damaged \(its version is missing or not a whole number\)/ },
  { name: 'a missing field', write: ({ runId: _, ...rest }) => JSON.stringify(rest), says: (f) => new RegExp(`is damaged \\(field runId is missing\\); ${f.remedy.source}`) },
  { name: 'a mistyped field', write: (d) => JSON.stringify({ ...d, runId: 7 }), says: () => /is damaged \(field runId is not a string\)/ },
  { name: 'a missing nested field', write: (d, f) => JSON.stringify(f.nested.drop(d)), says: () => /is damaged \(field (splits\[1\]\.end|timings\.infer|files\[1\]\.sha256) is missing\)/ },
];

describe('plan.json, shard markers and manifest.json are validated when read', () => {
  for (const f of files) {
    it(`${f.file}: a valid file reads back as written`, async () => {
      const store = new MemoryStore();
      const doc = await f.valid(store);
      await store.put(f.file, Buffer.from(JSON.stringify(doc)));
      assert.deepEqual(JSON.parse(JSON.stringify(await f.read(store))), JSON.parse(JSON.stringify(doc)));
    });

    for (const d of damages) {
      it(`${f.file}: ${d.name} is refused in one line naming the file`, async () => {
        const store = new MemoryStore();
        const doc = await f.valid(store);
        await store.put(f.file, Buffer.from(d.write(doc, f)));
        await assert.rejects(f.read(store), (err: Error) => {
          assert.ok(err instanceof InputError, `${err.name}: ${err.message}`);
          assert.ok(!err.message.includes('\n'), 'one line');
          assert.ok(err.message.startsWith(`${f.file} in ${store.description} `), err.message);
          assert.match(err.message, d.says(f));
          if (d.name === 'a missing nested field') assert.ok(err.message.includes(f.nested.named), err.message);
          return true;
        });
      });
    }
  }

  it('manifest.json missing beside _SUCCESS is refused in one line', async () => {
    const store = new MemoryStore();
    await store.put(outputKeys.success, Buffer.from('r1\n'));
    await assert.rejects(readManifestIfPublished(store), /^InputError: manifest.json in memory:\/\/ is missing although _SUCCESS is there; delete manifest.json and _SUCCESS/);
  });
});
