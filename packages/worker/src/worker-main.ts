import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import { UnrecoverableError, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { WorkerConfig } from '@vecmill/shared/config';
import { describeError, PayloadError, VecmillError } from '@vecmill/shared/errors';
import { detectProviderAvailability, planExecutionProviders, type ProviderPlan } from '@vecmill/shared/model/execution-provider';
import { connectRedis, redactRedisUrl, redisOptions } from '@vecmill/shared/queue/bullmq-connection';
import { readRunRecord } from '@vecmill/shared/queue/bullmq-run-registry';
import { jobBackoffStrategy, jobFailure } from '@vecmill/shared/queue/job-retry';
import { checkEmbedAgainstPlan, parseJobPayload, type EmbedPayload, type MergePayload } from '@vecmill/shared/queue/job-payload';
import { queueNames, type QueueRole } from '@vecmill/shared/queue/queue-names';
import { checkRedisSettings } from '@vecmill/shared/queue/redis-checks';
import { readPlan, type RunPlan } from '@vecmill/shared/run-plan';
import { parseLocation } from '@vecmill/shared/storage/location';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { openStore } from '@vecmill/shared/storage/open-store';
import { withResilientReads } from '@vecmill/shared/storage/resilient-read';
import { EmbedEngine, type EmbedSplit } from './embed-engine.js';
import type { EmbedResult } from './embed-processor.js';
import { mergeRun } from './merge-processor.js';
import { serveMetrics, WorkerMetrics, type MetricsServer } from './metrics.js';

/** One structured log line; the worker's only output channel besides metrics. */
export type WorkerLog = (event: string, fields?: Record<string, unknown>) => void;

/** A started worker. */
export interface RunningWorker {
  /** Port of the metrics endpoint, when one was asked for. */
  readonly metricsPort: number | undefined;
  /** Stops taking jobs, lets active jobs finish (or hands them back), then releases everything. */
  close(): Promise<void>;
}

/** A run as this worker knows it: its plan, output, and embed function. */
interface RunContext {
  readonly plan: RunPlan;
  readonly output: ObjectStore;
  readonly processSplit: EmbedSplit;
}

/** Runs kept in memory; plans are small, so this only bounds a long-lived worker serving many runs. */
const MAX_CACHED_RUNS = 32;
/** Progress writes per job at most this often: Redis round trips are not free. */
const PROGRESS_INTERVAL_MS = 500;

/**
 * `vecmill worker`: BullMQ workers for the embed and merge queues, reusing the embedded mode's
 * pieces (plan.json, embed processor, shard commit, merger). Redis is checked first with a
 * fail-fast connection (unreachable or evicting Redis is an error within seconds); the BullMQ
 * connections then wait out outages. Inference runs on OnnxEmbedder's thread, so this event loop
 * stays free to renew job locks however long a batch takes.
 */
export async function startWorker(config: WorkerConfig, log: WorkerLog): Promise<RunningWorker> {
  const where = redactRedisUrl(config.redis.url);
  const probe = await connectRedis(config.redis);
  try {
    await checkRedisSettings(probe, where, (message) => log('warning', { message }));
  } finally {
    probe.disconnect();
  }
  const connection = redisOptions(config.redis, 'worker');
  const registry = new Redis(connection);
  registry.on('error', () => undefined);
  const metrics = new WorkerMetrics();
  const name = config.name ?? `${hostname()}:${process.pid}`;
  const providerPlan: ProviderPlan = planExecutionProviders(config.device, await detectProviderAvailability());
  if (providerPlan.warning !== undefined) log('warning', { message: providerPlan.warning });
  const runs = new Map<string, Promise<RunContext>>();

  const engine = new EmbedEngine({
    s3: config.env.s3,
    cacheDir: config.env.cacheDir,
    cwd: '/',
    providerPlan,
    threads: config.threads,
    decodeThreads: config.decodeThreads,
    faultInferenceExit: config.env.faultInferenceExit,
    onWarning: (message) => log('warning', { message }),
    onThreadEvent: (message, modelId) => log('inference-thread', { model: modelId.slice(0, 12), message }),
  });

  /** The run a job belongs to; its output must be the one the run registry names. */
  const runContext = async (payload: EmbedPayload | MergePayload): Promise<RunContext> => {
    const record = await readRunRecord(registry, config.prefix, payload.runId);
    if (record === undefined) throw new PayloadError(`run ${payload.runId} is not registered under prefix ${config.prefix}; re-run \`vecmill produce\``, { runId: payload.runId });
    if (record.output !== payload.output) throw new PayloadError(`job names output ${payload.output}, but run ${payload.runId} writes to ${record.output}`, { runId: payload.runId });
    const key = `${payload.runId}\n${record.output}`;
    let ctx = runs.get(key);
    if (ctx === undefined) {
      ctx = (async () => {
        const output = withResilientReads(openStore(parseLocation(record.output, '/'), config.env.s3));
        const plan = await readPlan(output);
        if (plan === undefined || plan.runId !== payload.runId) throw new PayloadError(`${record.output} holds no plan.json for run ${payload.runId}`, { runId: payload.runId });
        const processSplit = await engine.forRun(plan, output, await engine.loadPlannedModel(plan));
        return { plan, output, processSplit };
      })();
      runs.set(key, ctx);
      ctx.catch(() => runs.delete(key));
      if (runs.size > MAX_CACHED_RUNS) runs.delete(runs.keys().next().value as string);
    }
    return ctx;
  };

  const processEmbed = async (job: Job): Promise<unknown> => {
    const payload = parseJobPayload(job.data);
    if (payload.kind === 'gate') return { gate: true };
    if (payload.kind !== 'embed') throw new PayloadError(`a ${payload.kind} job in the embed queue`);
    const ctx = await runContext(payload);
    checkEmbedAgainstPlan(payload, ctx.plan);
    let last = 0;
    const result: EmbedResult = await ctx.processSplit(payload.split, {
      onProgress: (rows) => {
        const now = Date.now();
        if (now - last < PROGRESS_INTERVAL_MS) return;
        last = now;
        job.updateProgress({ rows }).catch(() => undefined);
      },
      onBatch: (stageMs) => metrics.batchDone(stageMs),
    });
    if (result.computed) metrics.splitComputed(result.marker);
    log('split-done', { runId: payload.runId, split: payload.split, job: job.id, computed: result.computed, rows: result.marker.rowsIn, failed: result.marker.rowsFailed, attempt: result.marker.attempt, files: result.marker.files.length });
    return { rows: result.marker.rowsIn, ok: result.marker.rowsOk, failed: result.marker.rowsFailed, failedByReason: result.marker.failedByReason, computed: result.computed };
  };

  const processMerge = async (job: Job): Promise<unknown> => {
    const payload = parseJobPayload(job.data);
    if (payload.kind !== 'merge') throw new PayloadError(`a ${payload.kind} job in the merge queue`);
    const ctx = await runContext(payload);
    if (payload.splits !== ctx.plan.splits.length) throw new PayloadError(`merge job of run ${payload.runId} counts ${payload.splits} splits, plan.json ${ctx.plan.splits.length}`);
    const manifest = await mergeRun({ plan: ctx.plan, output: ctx.output });
    log('merge-done', { runId: payload.runId, rows: manifest.rows });
    return { rows: manifest.rows.in, ok: manifest.rows.ok, failed: manifest.rows.failed };
  };

  const wrap = (queue: QueueRole, fn: (job: Job) => Promise<unknown>) => async (job: Job): Promise<unknown> => {
    metrics.jobStarted(queue);
    try {
      const value = await fn(job);
      metrics.jobFinished(queue, 'completed');
      return value;
    } catch (err) {
      const failure = jobFailure(err, describeJob(job));
      const final = failure instanceof UnrecoverableError;
      const lastAttempt = final || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      metrics.jobFinished(queue, lastAttempt ? 'failed' : 'retry');
      log('job-error', { queue, job: job.id, attempt: job.attemptsMade + 1, final: lastAttempt, code: err instanceof VecmillError ? err.code : undefined, error: failure.message });
      throw failure;
    }
  };

  const workerOptions = {
    connection: connection as ConnectionOptions,
    prefix: config.prefix,
    name,
    lockDuration: config.lockDurationMs,
    stalledInterval: config.stalledIntervalMs,
    maxStalledCount: config.maxStalled,
    settings: { backoffStrategy: jobBackoffStrategy },
  };
  const workers: Worker[] = [];
  if (config.queues.includes('embed')) workers.push(new Worker(queueNames.embed, wrap('embed', processEmbed), { ...workerOptions, concurrency: config.concurrency }));
  if (config.queues.includes('merge')) workers.push(new Worker(queueNames.merge, wrap('merge', processMerge), { ...workerOptions, concurrency: 1 }));
  let redisUp = true;
  for (const w of workers) {
    // Lost locks (a late attempt after a stall) and Redis outages surface here; BullMQ carries on.
    w.on('error', (err) => log('queue-error', { queue: w.name, error: describeError(err) }));
    w.on('stalled', (jobId) => log('job-stalled', { queue: w.name, job: jobId }));
  }
  registry.on('ready', () => (redisUp = true));
  registry.on('close', () => (redisUp = false));
  await Promise.all(workers.map((w) => w.waitUntilReady()));

  let server: MetricsServer | undefined;
  if (config.metricsPort !== undefined) server = await serveMetrics(metrics, config.metricsPort, () => redisUp && workers.every((w) => w.isRunning()) && engine.healthy);
  log('worker-ready', { name, queues: config.queues, prefix: config.prefix, redis: where, concurrency: config.concurrency, metricsPort: server?.port });

  let closing: Promise<void> | undefined;
  return {
    metricsPort: server?.port,
    close: () =>
      (closing ??= (async () => {
        await Promise.all(workers.map((w) => w.close()));
        await engine.close();
        await server?.close();
        registry.disconnect();
        log('worker-stopped', { name });
      })()),
  };
}

/** Names a job in error messages: which split of which run, or which run's merge. */
function describeJob(job: Job): string {
  const data = job.data as { runId?: unknown; split?: unknown; kind?: unknown };
  const run = typeof data.runId === 'string' ? ` of run ${data.runId}` : '';
  return typeof data.split === 'number' ? `split ${data.split}${run}` : data.kind === 'merge' ? `the merge${run}` : `job ${job.id ?? '?'}`;
}
