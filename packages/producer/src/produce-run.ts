import { randomBytes } from 'node:crypto';
import type { ProduceConfig } from '@vecmill/shared/distributed-config';
import { ConfigError, describeError, StorageError } from '@vecmill/shared/errors';
import { detectProviderAvailability, planExecutionProviders } from '@vecmill/shared/model/execution-provider';
import { loadModelFolder } from '@vecmill/shared/model/model-folder';
import { resolveModelDir } from '@vecmill/shared/model/resolve-model';
import { connectRedis, redactRedisUrl } from '@vecmill/shared/queue/bullmq-connection';
import { readRunRecord, registerRun } from '@vecmill/shared/queue/bullmq-run-registry';
import { checkRedisSettings } from '@vecmill/shared/queue/redis-checks';
import { modalities, outputKeys, type RunPlan } from '@vecmill/shared/run-plan';
import { formatLocation, parseLocation } from '@vecmill/shared/storage/location';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { openStore, resolveInputs } from '@vecmill/shared/storage/open-store';
import { enqueueFlow } from './enqueue-flow.js';
import { readPlan } from '@vecmill/shared/run-plan';
import { planRun, sniffInputKind } from './plan-run.js';

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
      ({ plan, output } = await planFromFlags(config, cwd, hooks));
    } else {
      const runId = config.resume as string;
      const location = config.output ?? (await readRunRecord(redis, config.prefix, runId))?.output;
      if (location === undefined) throw new ConfigError(`Redis at ${where} does not know run ${runId} (prefix ${config.prefix}); pass --output with the run's output location`, { runId });
      output = openStore(parseLocation(location, cwd), config.env.s3);
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

/** Resolves inputs and model and plans (or finds) the run, as the embedded mode does. */
async function planFromFlags(config: ProduceConfig, cwd: string, hooks: ProduceHooks): Promise<{ plan: RunPlan; output: ObjectStore }> {
  const run = config.run!;
  const outputLocation = parseLocation(run.output, cwd);
  const outputUri = formatLocation(outputLocation);
  const output = openStore(outputLocation, run.env.s3);
  const inputs = (await resolveInputs(run.inputs, run.env.s3, cwd)).map((i) => ({
    uri: i.uri,
    store: i.store,
    key: i.info.key,
    size: i.info.size,
    etag: i.info.etag,
    modified: i.info.modified,
  }));
  await checkWritable(output, outputUri);
  const kind = run.kind ?? (await sniffInputKind(inputs));
  const needs = modalities(kind);
  const modelDir = await resolveModelDir({ spec: run.model, dtype: run.dtype, needs, cacheDir: run.env.cacheDir, s3: run.env.s3, cwd });
  const model = await loadModelFolder(modelDir, run.dtype, needs);
  const providerPlan = planExecutionProviders(run.device, await detectProviderAvailability());
  if (providerPlan.warning !== undefined) hooks.onWarning?.(providerPlan.warning);
  const modelLocation = parseLocation(run.model, cwd);
  const { plan } = await planRun({
    inputs,
    output,
    outputUri,
    splitSize: run.splitSize,
    model: {
      // Workers start elsewhere: record a location that means the same folder from any cwd.
      location: modelLocation.kind === 's3' || modelLocation.path === modelDir ? formatLocation(modelLocation) : run.model,
      dtype: run.dtype,
      fingerprint: model.fingerprint,
      dims: model.config.projectionDim,
      preprocessing: model.preprocessorConfig,
      contextLength: model.config.contextLength,
    },
    settings: {
      kind,
      dtype: run.dtype,
      normalize: run.normalize,
      outDtype: run.outDtype,
      batchSize: run.batchSize ?? providerPlan.defaultBatchSize,
      maxPixels: run.maxPixels,
      fastDecode: run.fastDecode,
      maxLineBytes: run.maxLineBytes,
      trimText: run.trimText,
      formats: run.formats,
    },
    runId: run.runId,
    ...(run.reuse !== undefined ? { reuse: formatLocation(parseLocation(run.reuse, cwd)) } : {}),
  });
  return { plan, output };
}

/** Fails before anything is enqueued when workers could not write the output. */
async function checkWritable(output: ObjectStore, outputUri: string): Promise<void> {
  const probe = `.vecmill-write-check-${randomBytes(4).toString('hex')}`;
  try {
    await output.put(probe, Buffer.from('ok'));
    await output.delete(probe);
  } catch (err) {
    throw new StorageError(`output ${outputUri} is not writable: ${describeError(err)}`, { output: outputUri }, { cause: err });
  }
}
