import { FlowProducer, Job, Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { jobBackoff } from '@vecmill/shared/queue/job-retry';
import { embedPayload, mergePayload, type GatePayload } from '@vecmill/shared/queue/job-payload';
import { gateJobId, jobNames, mergeJobId, queueNames, splitJobId } from '@vecmill/shared/queue/queue-names';
import type { RunPlan } from '@vecmill/shared/run-plan';

/** How a run's flow is enqueued. */
export interface EnqueueFlowOptions {
  /** A connected client (fail-fast); shared by the queues here and left open for the caller. */
  readonly redis: Redis;
  readonly prefix: string;
  readonly plan: RunPlan;
  /** Splits to enqueue: every split of a new run, or those without a marker on resume. */
  readonly splits: readonly number[];
  /** Jobs added per round trip (default 1000). */
  readonly chunkSize?: number;
  /** Tries per split and for the merge (default 5). */
  readonly attempts?: number;
  /** Upper bound of the first retry delay in ms (`backoffDelay`: doubled per attempt, full jitter; default 2000). */
  readonly backoffMs?: number;
  /** Called after each chunk is in Redis, e.g. to print progress. */
  readonly onChunk?: (added: number, total: number) => void;
}

/** What enqueueing did. */
export interface EnqueueFlowResult {
  readonly mergeJobId: string;
  /** Embed jobs handed to Redis (duplicates of jobs already there are no-ops). */
  readonly submitted: number;
  /** True when the run's merge had already completed: nothing was added. */
  readonly alreadyComplete: boolean;
}

/** Keeps the merge parent waiting while chunks go in. Far enough to never fire before the producer promotes it. */
const GATE_DELAY_MS = 30 * 24 * 3600 * 1000;

/**
 * Enqueues one BullMQ flow per run: a merge parent whose children are one embed job per split
 * plus a gate. The parent and the first chunk go in atomically through a FlowProducer; later
 * chunks are added as children of the existing parent, so 50,000 splits take a few round trips
 * rather than one giant transaction. The gate is a long-delayed no-op child: while it waits, the
 * parent cannot run even if every split added so far is done, so a merge never starts on a
 * half-enqueued run. It is promoted after the last chunk. Job ids are deterministic, so running
 * this again (after a crash halfway, or twice by mistake) adds only what is missing.
 */
export async function enqueueFlow(options: EnqueueFlowOptions): Promise<EnqueueFlowResult> {
  const { plan, prefix, redis } = options;
  const chunkSize = Math.max(1, options.chunkSize ?? 1000);
  const attempts = options.attempts ?? 5;
  const retry: JobsOptions = { attempts, backoff: jobBackoff(options.backoffMs ?? 2000) };
  const mergeId = mergeJobId(plan.runId);
  const gateId = gateJobId(plan.runId);
  const embedQueue = new Queue(queueNames.embed, { connection: redis, prefix });
  const mergeQueue = new Queue(queueNames.merge, { connection: redis, prefix });
  const flows = new FlowProducer({ connection: redis, prefix });
  try {
    const existing = await Job.fromId(mergeQueue, mergeId);
    if (existing !== undefined && (await existing.getState()) === 'completed') return { mergeJobId: mergeId, submitted: 0, alreadyComplete: true };

    const child = (split: number) => ({
      name: jobNames.embed,
      queueName: queueNames.embed,
      data: embedPayload(plan, split),
      opts: { ...retry, jobId: splitJobId(plan.runId, split), failParentOnFailure: true },
    });
    const gate: GatePayload = { v: 1, kind: 'gate', runId: plan.runId };
    const first = options.splits.slice(0, chunkSize);
    await flows.add({
      name: jobNames.merge,
      queueName: queueNames.merge,
      data: mergePayload(plan),
      opts: { ...retry, jobId: mergeId },
      children: [
        { name: jobNames.gate, queueName: queueNames.embed, data: gate, opts: { jobId: gateId, delay: GATE_DELAY_MS, failParentOnFailure: true } },
        ...first.map(child),
      ],
    });
    let submitted = first.length;
    options.onChunk?.(submitted, options.splits.length);
    const parent = { id: mergeId, queue: `${prefix}:${queueNames.merge}` };
    for (let i = chunkSize; i < options.splits.length; i += chunkSize) {
      const chunk = options.splits.slice(i, i + chunkSize).map(child);
      await embedQueue.addBulk(chunk.map((c) => ({ name: c.name, data: c.data, opts: { ...c.opts, parent } })));
      submitted += chunk.length;
      options.onChunk?.(submitted, options.splits.length);
    }
    const gateJob = await Job.fromId(embedQueue, gateId);
    if (gateJob !== undefined && (await gateJob.isDelayed())) await gateJob.promote();
    return { mergeJobId: mergeId, submitted, alreadyComplete: false };
  } finally {
    await Promise.all([flows.close(), embedQueue.close(), mergeQueue.close()]);
  }
}
