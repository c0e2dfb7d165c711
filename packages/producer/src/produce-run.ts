import type { ProduceConfig } from '@vecmill/shared/config';
import { ConfigError } from '@vecmill/shared/errors';
import { connectRedis, redactRedisUrl } from '@vecmill/shared/queue/bullmq-connection';
import { readRunRecord, registerRun } from '@vecmill/shared/queue/bullmq-run-registry';
import { checkRedisSettings } from '@vecmill/shared/queue/redis-checks';
import { outputKeys, readPlan, type RunPlan } from '@vecmill/shared/run-plan';
import { parseLocation } from '@vecmill/shared/storage/location';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { openStore } from '@vecmill/shared/storage/open-store';
import { withResilientReads } from '@vecmill/shared/storage/resilient-read';
import { enqueueFlow } from './enqueue-flow.js';
import { openOutput, planFromRunConfig } from './plan-from-config.js';

/** Hooks for progress lines; the command prints them, tests use them to stop halfway. */
export interface ProduceHooks {
  readonly onWarning?: (line: string) => void;
  readonly onChunk?: (added: number, total: number) => void;
}

/** What `produce` did. */
export interface ProduceResult {
  readonly runId: string;
  readonly output: string;
  readonly splits: number;
  /** Splits without a marker, handed to the queue. */
  readonly pending: number;
  /** True when the run was already published or its merge already completed: nothing was enqueued. */
  readonly alreadyDone: boolean;
}

/**
 * `vecmill produce`: plans the run exactly as `vecmill run` does (plan.json on the output is the
 * source of truth), registers it in Redis and enqueues its flow. With `--resume ID` and no
 * inputs, plan.json is read back instead, so a run survives Redis losing everything: only splits
 * without a shard marker are enqueued again.
 */
export async function produceRun(config: ProduceConfig, hooks: ProduceHooks = {}, cwd = process.cwd()): Promise<ProduceResult> {
  const where = redactRedisUrl(config.redis.url);
  const redis = await connectRedis(config.redis);
  try {
    await checkRedisSettings(redis, where, (line) => hooks.onWarning?.(line));
    let plan: RunPlan;
    let output: ObjectStore;
    if (config.run !== undefined) {
      ({ plan, output } = await planFromRunConfig(config.run, openOutput(config.run, cwd), cwd, (line) => hooks.onWarning?.(line)));
    } else {
      const runId = config.resume as string;
      const location = config.output ?? (await readRunRecord(redis, config.prefix, runId))?.output;
      if (location === undefined) throw new ConfigError(`Redis at ${where} does not know run ${runId} (prefix ${config.prefix}); pass --output with the run's output location`, { runId });
      output = withResilientReads(openStore(parseLocation(location, cwd), config.env.s3));
      const found = await readPlan(output);
      if (found === undefined) throw new ConfigError(`${output.description} holds no plan.json; check --output`, { runId });
      if (found.runId !== runId) throw new ConfigError(`${output.description} holds run ${found.runId}, not ${runId}`, { runId });
      plan = found;
    }
    const record = await registerRun(redis, config.prefix, { runId: plan.runId, output: plan.output, splits: plan.splits.length, createdAt: plan.createdAt });
    if (record.output !== plan.output) {
      throw new ConfigError(`run id ${plan.runId} is already registered under prefix ${config.prefix} with output ${record.output}; choose another --run-id or --prefix`, { runId: plan.runId });
    }
    const base = { runId: plan.runId, output: plan.output, splits: plan.splits.length };
    if (await output.exists(outputKeys.success)) return { ...base, pending: 0, alreadyDone: true };
    const committed = new Set<string>();
    for await (const info of output.list(outputKeys.shardPrefix)) committed.add(info.key);
    const pending = plan.splits.map((s) => s.index).filter((i) => !committed.has(outputKeys.shardMarker(i)));
    const result = await enqueueFlow({
      redis,
      prefix: config.prefix,
      plan,
      splits: pending,
      chunkSize: config.chunkSize,
      attempts: config.attempts,
      backoffMs: config.backoffMs,
      ...(hooks.onChunk !== undefined ? { onChunk: hooks.onChunk } : {}),
    });
    return { ...base, pending: pending.length, alreadyDone: result.alreadyComplete };
  } finally {
    redis.disconnect();
  }
}
