import type { Job } from 'bullmq';
import { PayloadError } from '@vecmill/shared/errors';
import { checkEmbedAgainstPlan, parseJobPayload, type EmbedPayload, type MergePayload } from '@vecmill/shared/queue/job-payload';
import type { EmbedResult } from './embed-processor.js';
import { mergeRun } from './merge-processor.js';
import type { WorkerMetrics } from './metrics.js';
import type { RunContext } from './run-contexts.js';

/** One structured log line; the worker's only output channel besides metrics. */
export type WorkerLog = (event: string, fields?: Record<string, unknown>) => void;

/** The ports the job processors work through. */
export interface JobProcessorDeps {
  readonly runContext: (payload: EmbedPayload | MergePayload) => Promise<RunContext>;
  readonly metrics: WorkerMetrics;
  readonly log: WorkerLog;
  /** Progress writes per job at most this often (default 500 ms): Redis round trips are not free. */
  readonly progressIntervalMs?: number;
}

/** What a BullMQ worker of each queue runs per job. */
export interface JobProcessors {
  readonly embed: (job: Job) => Promise<unknown>;
  readonly merge: (job: Job) => Promise<unknown>;
}

/**
 * The embed and merge queues' job handlers: validate the payload against the run's plan, embed
 * one split (reporting progress and batch metrics) or publish the run. They return small summaries
 * for BullMQ's job record; failures propagate for the one retry policy to classify.
 */
export function createJobProcessors(deps: JobProcessorDeps): JobProcessors {
  const progressInterval = deps.progressIntervalMs ?? 500;
  return {
    async embed(job) {
      const payload = parseJobPayload(job.data);
      if (payload.kind === 'gate') return { gate: true };
      if (payload.kind !== 'embed') throw new PayloadError(`a ${payload.kind} job in the embed queue`);
      const ctx = await deps.runContext(payload);
      checkEmbedAgainstPlan(payload, ctx.plan);
      let last = 0;
      const result: EmbedResult = await ctx.processSplit(payload.split, {
        onProgress: (rows) => {
          const now = Date.now();
          if (now - last < progressInterval) return;
          last = now;
          job.updateProgress({ rows }).catch(() => undefined);
        },
        onBatch: (stageMs) => deps.metrics.batchDone(stageMs),
      });
      const m = result.marker;
      if (result.computed) deps.metrics.splitComputed(m);
      deps.log('split-done', { runId: payload.runId, split: payload.split, job: job.id, computed: result.computed, rows: m.rowsIn, failed: m.rowsFailed, attempt: m.attempt, files: m.files.length });
      return { rows: m.rowsIn, ok: m.rowsOk, failed: m.rowsFailed, failedByReason: m.failedByReason, computed: result.computed };
    },
    async merge(job) {
      const payload = parseJobPayload(job.data);
      if (payload.kind !== 'merge') throw new PayloadError(`a ${payload.kind} job in the merge queue`);
      const ctx = await deps.runContext(payload);
      if (payload.splits !== ctx.plan.splits.length) throw new PayloadError(`merge job of run ${payload.runId} counts ${payload.splits} splits, plan.json ${ctx.plan.splits.length}`);
      const manifest = await mergeRun({ plan: ctx.plan, output: ctx.output });
      deps.log('merge-done', { runId: payload.runId, rows: manifest.rows });
      return { rows: manifest.rows.in, ok: manifest.rows.ok, failed: manifest.rows.failed };
    },
  };
}
