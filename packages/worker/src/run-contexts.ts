import type { Redis } from 'ioredis';
import { PayloadError } from '@vecmill/shared/errors';
import { readRunRecord } from '@vecmill/shared/queue/bullmq-run-registry';
import type { EmbedPayload, MergePayload } from '@vecmill/shared/queue/job-payload';
import { readPlan, type RunPlan } from '@vecmill/shared/run-plan';
import { parseLocation } from '@vecmill/shared/storage/location';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { openStore } from '@vecmill/shared/storage/open-store';
import { withResilientReads } from '@vecmill/shared/storage/resilient-read';
import type { S3ClientOptions } from '@vecmill/shared/storage/s3-store';
import type { EmbedEngine, EmbedSplit } from './embed-engine.js';

/** A run as this worker knows it: its plan, output, and embed function. */
export interface RunContext {
  readonly plan: RunPlan;
  readonly output: ObjectStore;
  readonly processSplit: EmbedSplit;
}

/** What resolving a job's run needs. */
export interface RunContextDeps {
  /** Holds the run registry `vecmill produce` writes. */
  readonly registry: Redis;
  /** BullMQ key prefix the run was registered under. */
  readonly prefix: string;
  readonly s3: S3ClientOptions;
  readonly engine: EmbedEngine;
  /** Runs kept in memory. Default 32: plans are small, so this only bounds a long-lived worker serving many runs. */
  readonly maxRuns?: number;
}

/**
 * Resolves the run a job belongs to, once per run: checks the job's output against the run
 * registry (a forged or stale job cannot redirect writes), reads plan.json, and asks the engine for
 * the run's embed function. Concurrent jobs of one run share one lookup; a failed lookup is
 * forgotten so the next attempt tries again.
 */
export function createRunContexts(deps: RunContextDeps): (payload: EmbedPayload | MergePayload) => Promise<RunContext> {
  const maxRuns = deps.maxRuns ?? 32;
  const runs = new Map<string, Promise<RunContext>>();

  const open = async (runId: string, location: string): Promise<RunContext> => {
    const output = withResilientReads(openStore(parseLocation(location, '/'), deps.s3));
    const plan = await readPlan(output);
    if (plan === undefined || plan.runId !== runId) throw new PayloadError(`${location} holds no plan.json for run ${runId}`, { runId });
    const processSplit = await deps.engine.forRun(plan, output, await deps.engine.loadPlannedModel(plan));
    return { plan, output, processSplit };
  };

  return async (payload) => {
    const record = await readRunRecord(deps.registry, deps.prefix, payload.runId);
    if (record === undefined) throw new PayloadError(`run ${payload.runId} is not registered under prefix ${deps.prefix}; re-run \`vecmill produce\``, { runId: payload.runId });
    if (record.output !== payload.output) throw new PayloadError(`job names output ${payload.output}, but run ${payload.runId} writes to ${record.output}`, { runId: payload.runId });
    const key = `${payload.runId}\n${record.output}`;
    let ctx = runs.get(key);
    if (ctx === undefined) {
      ctx = open(payload.runId, record.output);
      runs.set(key, ctx);
      ctx.catch(() => runs.delete(key));
      if (runs.size > maxRuns) runs.delete(runs.keys().next().value as string);
    }
    return ctx;
  };
}
