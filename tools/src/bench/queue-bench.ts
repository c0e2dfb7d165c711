/**
 * Distributed-mode benchmark: rows/s of one run with 1, 2 and 4 `vecmill worker` processes on
 * the tiny model (so the queue, not the model, dominates), and BullMQ's own cost per job (a job
 * that does nothing). Starts its own redis-server on a free port. Figures go to the README;
 * nothing here is asserted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { makeDataset } from '../datagen/make-dataset.js';
import { loadProduceConfig } from '@vecmill/shared/config';
import { makeModel } from '../modelgen/make-model.js';
import { enqueueFlow } from '@vecmill/producer/enqueue-flow';
import { produceRun } from '@vecmill/producer/produce-run';
import type { RunPlan } from '@vecmill/shared/run-plan';

/** What the queue benchmark measures. */
export interface QueueBenchOptions {
  /** Rows of the generated pairs dataset (default 2000). */
  readonly rows?: number;
  /** Bytes per split (default 16 KiB: many small jobs, so queue overhead shows). */
  readonly splitBytes?: number;
  /** Worker process counts to measure (default 1, 2, 4). */
  readonly processes?: readonly number[];
  /** No-op jobs for the per-job overhead (default 2000). */
  readonly noopJobs?: number;
  /** The CLI entry spawned as workers (default packages/cli/bin/vecmill.js). */
  readonly cli?: string;
  /** Splits of the synthetic run whose enqueueing is timed (default 50,000). */
  readonly enqueueSplits?: number;
}

/** One measured configuration. */
export interface QueueBenchRow {
  readonly processes: number;
  readonly splits: number;
  readonly seconds: number;
  readonly rowsPerSecond: number;
}

/** Everything the queue benchmark measured, with the machine it ran on. */
export interface QueueBenchResult {
  readonly machine: { readonly cpu: string; readonly cores: number };
  readonly rows: number;
  readonly runs: readonly QueueBenchRow[];
  /** Milliseconds per no-op job, one worker, concurrency 1: add, fetch, lock, complete. */
  readonly noopMsPerJob: number;
  /** Seconds `produce` takes to enqueue the flow of a 50,000-split run (planning excluded). */
  readonly enqueueSeconds: number;
  readonly enqueueSplits: number;
}

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Runs the benchmark; each worker process gets one intra-op and one decode thread. */
export async function runQueueBench(options: QueueBenchOptions = {}): Promise<QueueBenchResult> {
  const rows = options.rows ?? 2000;
  const cli = options.cli ?? join(root, 'packages', 'cli', 'bin', 'vecmill.js');
  const work = await mkdtemp(join(tmpdir(), 'vecmill-queue-bench-'));
  const redis = await startRedis(work);
  try {
    const model = join(work, 'model');
    await makeModel({ preset: 'tiny', outDir: model, seed: 42, variants: ['fp32'] });
    const input = join(work, 'pairs.tsv');
    await makeDataset({ path: input, rows, kind: 'pairs', seed: 5, imageSize: 64 });
    const runs: QueueBenchRow[] = [];
    for (const processes of options.processes ?? [1, 2, 4]) {
      const prefix = `bench${processes}`;
      const output = join(work, `out-${processes}`);
      const workers = Array.from({ length: processes }, () => spawnWorker(cli, redis.url, prefix));
      try {
        await Promise.all(workers.map((w) => w.ready));
        const t0 = performance.now();
        const produced = await produceRun(
          loadProduceConfig(['--redis', redis.url, '--prefix', prefix, '--input', input, '--model', model, '--output', output, '--split-size', String(options.splitBytes ?? 16 * 1024), '--batch-size', '32']),
        );
        while (!existsSync(join(output, '_SUCCESS'))) await sleep(20);
        const seconds = (performance.now() - t0) / 1000;
        runs.push({ processes, splits: produced.splits, seconds, rowsPerSecond: rows / seconds });
        process.stderr.write(`  queue: ${processes} worker process(es): ${(rows / seconds).toFixed(0)} rows/s (${produced.splits} splits in ${seconds.toFixed(2)} s)\n`);
      } finally {
        for (const w of workers) w.child.kill('SIGTERM');
        await Promise.all(workers.map((w) => w.exited));
      }
    }
    const noopMsPerJob = await measureNoop(redis.port, options.noopJobs ?? 2000);
    process.stderr.write(`  queue: no-op job overhead ${noopMsPerJob.toFixed(3)} ms/job\n`);
    const enqueueSplits = options.enqueueSplits ?? 50_000;
    const enqueueSeconds = await measureEnqueue(redis.port, enqueueSplits);
    process.stderr.write(`  queue: enqueueing ${enqueueSplits} splits took ${enqueueSeconds.toFixed(2)} s\n`);
    return { machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length }, rows, runs, noopMsPerJob, enqueueSeconds, enqueueSplits };
  } finally {
    redis.child.kill('SIGKILL');
    await rm(work, { recursive: true, force: true });
  }
}

/** Times `enqueueFlow` for a synthetic plan of `splits` splits (nothing processes them). */
async function measureEnqueue(port: number, splits: number): Promise<number> {
  const redis = new Redis({ host: '127.0.0.1', port });
  const size = splits * 1024;
  const plan: RunPlan = {
    version: 1,
    runId: 'enqueue-bench',
    createdAt: new Date().toISOString(),
    output: '/bench/out',
    inputs: [{ uri: '/bench/in.tsv', size, etag: 'bench', modified: '' }],
    splits: Array.from({ length: splits }, (_, index) => ({ index, input: 0, start: index * 1024, end: (index + 1) * 1024 })),
    splitSize: 1024,
    model: { location: '/bench/model', dtype: 'fp32', fingerprint: { id: '0'.repeat(64), files: {} }, dims: 32, preprocessing: undefined, contextLength: 77 },
    settings: { kind: 'pairs', dtype: 'fp32', normalize: true, outDtype: 'float32', batchSize: 32, maxPixels: 1, fastDecode: false, maxLineBytes: 1024, trimText: true, formats: ['parquet'] },
    reuse: undefined,
  };
  const t0 = performance.now();
  await enqueueFlow({ redis, prefix: 'enqueue', plan, splits: plan.splits.map((s) => s.index) });
  const seconds = (performance.now() - t0) / 1000;
  redis.disconnect();
  return seconds;
}

/** Adds `jobs` empty jobs, then times one in-process worker draining them. */
async function measureNoop(port: number, jobs: number): Promise<number> {
  const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null };
  const queue = new Queue('noop', { connection, prefix: 'noop' });
  await queue.addBulk(Array.from({ length: jobs }, (_, i) => ({ name: 'noop', data: {}, opts: { jobId: `noop-${i}` } })));
  let done = 0;
  let finished: () => void = () => undefined;
  const all = new Promise<void>((r) => (finished = r));
  const t0 = performance.now();
  const worker = new Worker('noop', async () => {
    if (++done === jobs) finished();
  }, { connection, prefix: 'noop', concurrency: 1 });
  await all;
  const ms = (performance.now() - t0) / jobs;
  await worker.close();
  await queue.close();
  return ms;
}

function spawnWorker(cli: string, url: string, prefix: string): { child: ChildProcess; ready: Promise<void>; exited: Promise<void> } {
  const child = spawn(process.execPath, [cli, 'worker', '--redis', url, '--prefix', prefix, '--threads', '1', '--decode-threads', '1', '--concurrency', '2'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr!.setEncoding('utf8').on('data', (c: string) => {
      log += c;
      if (log.includes('"worker-ready"')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`worker exited (${code}) before it was ready:\n${log}`)));
  });
  ready.catch(() => undefined);
  return { child, ready, exited: new Promise((r) => child.once('exit', () => r())) };
}

async function startRedis(dir: string): Promise<{ child: ChildProcess; url: string; port: number }> {
  const port = await new Promise<number>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null });
  probe.on('error', () => undefined);
  for (let i = 0; ; i++) {
    try {
      await probe.connect();
      break;
    } catch {
      if (i > 200) throw new Error('redis-server did not start; install it (apt-get install redis-server)');
      await sleep(50);
    }
  }
  probe.disconnect();
  return { child, url: `redis://127.0.0.1:${port}`, port };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await runQueueBench(process.argv[2] !== undefined ? { cli: process.argv[2] } : {});
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
