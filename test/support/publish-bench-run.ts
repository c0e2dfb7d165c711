import { createHash } from 'node:crypto';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { outputKeys, splitNameWidth } from '@vecmill/shared/run-plan';
import { createS3Client, S3Store } from '@vecmill/shared/storage/s3-store';
import { mergeRun } from '@vecmill/worker/merge-processor';
import { forEachLimited } from '@vecmill/worker/for-each-limited';
import { commitShard, type StagedFile } from '@vecmill/worker/shard-commit';
import { commitSyntheticRun } from './committed-run.js';
import { startFaultProxy } from './fault-proxy.js';
import { LatencyStore } from './latency-store.js';
import { MemoryStore } from './memory-store.js';
import { startS3Server } from './s3-server.js';
import type { PublishFigure } from '@vecmill/tools/bench/publish-bench';
import { storeTestPlan, testPlan } from './test-plan.js';

/**
 * Publishes a run of `splits` committed splits on the S3 test server behind a proxy that adds
 * `latencyMs` to every request. The splits are committed through the real path (ShardWriter
 * stages each chunk's final files, commitShard writes the marker and promotes) straight to the
 * server; only `mergeRun` goes through the slow proxy, and only it is timed.
 */
export async function measureS3Publish(splits: number, latencyMs: number): Promise<PublishFigure> {
  const s3 = await startS3Server({ buckets: ['bench'] });
  const proxy = await startFaultProxy({ target: s3.endpoint, rates: {}, latencyMs });
  const direct = createS3Client(s3.clientOptions);
  const slow = createS3Client({ ...s3.clientOptions, endpoint: proxy.endpoint });
  try {
    const plan = testPlan({ runId: 'publish-bench', splits, kind: 'text', formats: ['parquet', 'npy', 'tsv'] });
    const setup = new S3Store(direct, 'bench', 'out/');
    await storeTestPlan(setup, plan);
    await commitSyntheticRun(setup, plan, { parallel: 16 });
    const before = proxy.requests();
    const t0 = performance.now();
    const manifest = await mergeRun({ plan, output: new S3Store(slow, 'bench', 'out/') });
    const seconds = (performance.now() - t0) / 1000;
    return { splits, files: manifest.files.length, requests: proxy.requests() - before, seconds, latencyMs, where: 'S3 test server (s3rver) behind a latency proxy', loadAverage: loadavg() };
  } finally {
    direct.destroy();
    slow.destroy();
    await proxy.close();
    await s3.close();
  }
}

/**
 * The same publish simulated for split counts a test server cannot hold quickly: every split is
 * committed by the real `commitShard` (marker with putIfAbsent, promotion by copy) into the
 * in-memory store, with small stand-in bytes for its four final files (part, `.npy`, metadata,
 * feature TSV: publishing never reads them), then `mergeRun` runs on it with `latencyMs` added
 * to every call and to every page of 1,000 keys of a listing (`LatencyStore`).
 */
export async function simulatePublish(splits: number, latencyMs: number): Promise<PublishFigure> {
  const memory = new MemoryStore({ chunkSize: 1 << 20 });
  const plan = testPlan({ runId: 'publish-sim', splits, kind: 'text', formats: ['parquet', 'npy', 'tsv'] });
  await storeTestPlan(memory, plan);
  await forEachLimited(
    plan.splits.map((s) => s.index),
    64,
    async (split) => {
      const attempt = `attempt-${split}`;
      const files: StagedFile[] = [];
      for (const role of ['part', 'npy-text', 'metadata', 'tsv-text'] as const) {
        const key = outputKeys.final(role, split, 0, splitNameWidth(splits));
        const bytes = Buffer.from(`${role} of split ${split}`);
        await memory.put(outputKeys.staged(split, attempt, key), bytes);
        files.push({ role, key, staged: outputKeys.staged(split, attempt, key), rows: 2, bytes: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest('hex') });
      }
      await commitShard(memory, { runId: plan.runId, splitIndex: split, attempt, files, rowsIn: 2, rowsOk: 2, rowsReused: 0, failedByReason: {}, timings: () => ({ read: 1, decode: 0, tokenize: 1, infer: 2, write: 1 }), worker: 'sim' });
    },
  );
  const slow = new LatencyStore(memory, latencyMs);
  const t0 = performance.now();
  const manifest = await mergeRun({ plan, output: slow });
  const seconds = (performance.now() - t0) / 1000;
  return { splits, files: manifest.files.length, requests: slow.requests, seconds, latencyMs, where: 'in-memory store + simulated latency per call and per listing page', loadAverage: loadavg() };
}

/** The machine a figure was measured on, for the README. */
export function machine(): string {
  return `${cpus()[0]?.model ?? 'unknown CPU'}, ${availableParallelism()} threads`;
}
