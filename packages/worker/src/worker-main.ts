import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import { UnrecoverableError, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { WorkerConfig } from '@vecmill/shared/config';
import { describeError, VecmillError } from '@vecmill/shared/errors';
import { detectProviderAvailability, planExecutionProviders, type ProviderPlan } from '@vecmill/shared/model/execution-provider';
import { connectRedis, redactRedisUrl, redisOptions } from '@vecmill/shared/queue/bullmq-connection';
import { jobBackoffStrategy, jobFailure } from '@vecmill/shared/queue/job-retry';
import { queueNames, type QueueRole } from '@vecmill/shared/queue/queue-names';
import { checkRedisSettings } from '@vecmill/shared/queue/redis-checks';
import { EmbedEngine } from './embed-engine.js';
import { createJobProcessors, type WorkerLog } from './job-processors.js';
import { serveMetrics, WorkerMetrics, type MetricsServer } from './metrics.js';
import { createRunContexts } from './run-contexts.js';
import { jpegDecoderDescription } from './model/decode-jpeg-native.js';

export type { WorkerLog };

/** A started worker. */
export interface RunningWorker {
  /** Port of the metrics endpoint, when one was asked for. */
  readonly metricsPort: number | undefined;
  /** Stops taking jobs, lets active jobs finish (or hands them back), then releases everything. */
  close(): Promise<void>;
}

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

  const processors = createJobProcessors({
    runContext: createRunContexts({ registry, prefix: config.prefix, s3: config.env.s3, engine }),
    metrics,
    log,
  });

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
  if (config.queues.includes('embed')) workers.push(new Worker(queueNames.embed, wrap('embed', processors.embed), { ...workerOptions, concurrency: config.concurrency }));
  if (config.queues.includes('merge')) workers.push(new Worker(queueNames.merge, wrap('merge', processors.merge), { ...workerOptions, concurrency: 1 }));
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
  log('worker-ready', { name, queues: config.queues, prefix: config.prefix, redis: where, concurrency: config.concurrency, metricsPort: server?.port, jpegDecoder: jpegDecoderDescription() });

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
