import { Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { VecmillError } from '@vecmill/shared/errors';
import { readRunRecord } from '@vecmill/shared/queue/bullmq-run-registry';
import { gateJobId, mergeJobId, queueNames } from '@vecmill/shared/queue/queue-names';

/** Where a run stands, as `vecmill status` prints it. */
export interface RunStatus {
  readonly runId: string;
  readonly output: string;
  readonly state: 'succeeded' | 'failed' | 'running';
  readonly splits: { readonly total: number; readonly waiting: number; readonly active: number; readonly done: number; readonly failed: number };
  /** False while the producer has not finished enqueueing (re-run produce if it crashed). */
  readonly enqueued: boolean;
  readonly rows: { readonly done: number; readonly ok: number; readonly failed: number; readonly perSecond: number };
  readonly etaSeconds: number | undefined;
  /** Row failures by reason, summed over finished splits. */
  readonly rowFailures: Readonly<Record<string, number>>;
  /** Splits (or the merge) that failed every attempt, with the last error. */
  readonly failures: readonly { readonly job: string; readonly error: string }[];
}

/** Exit codes of `vecmill status`: scripts wait on them. */
export const statusExitCodes = { succeeded: 0, failed: 1, running: 3 } as const;

/** Reads a run's status from its flow: the merge parent's state and its children's results. */
export async function readRunStatus(redis: Redis, prefix: string, runId: string, now = Date.now()): Promise<RunStatus> {
  const record = await readRunRecord(redis, prefix, runId);
  if (record === undefined) throw new VecmillError('E_NOT_FOUND', `Redis does not know run ${runId} under prefix ${prefix}; check --run and --prefix, or run \`vecmill produce --resume ${runId} --output ...\``, { runId });
  const embed = new Queue(queueNames.embed, { connection: redis, prefix });
  const merge = new Queue(queueNames.merge, { connection: redis, prefix });
  try {
    const parent = await Job.fromId(merge, mergeJobId(runId));
    const mergeState = parent === undefined ? 'unknown' : await parent.getState();
    const gate = await Job.fromId(embed, gateJobId(runId));
    const gateWaiting = gate !== undefined && (await gate.isDelayed());
    let done = 0;
    const rows = { done: 0, ok: 0, failed: 0 };
    const rowFailures: Record<string, number> = {};
    let unprocessed = 0;
    if (parent !== undefined) {
      let cursor = 0;
      do {
        const deps = await parent.getDependencies({ processed: { cursor, count: 1000 } });
        for (const [key, value] of Object.entries(deps.processed ?? {})) {
          if (key.endsWith(`:${gateJobId(runId)}`)) continue;
          done++;
          const v = (typeof value === 'string' ? JSON.parse(value) : value) as { rows?: number; ok?: number; failed?: number; failedByReason?: Record<string, number> } | null;
          rows.done += v?.rows ?? 0;
          rows.ok += v?.ok ?? 0;
          rows.failed += v?.failed ?? 0;
          for (const [r, n] of Object.entries(v?.failedByReason ?? {})) rowFailures[r] = (rowFailures[r] ?? 0) + n;
        }
        cursor = deps.nextProcessedCursor ?? 0;
      } while (cursor !== 0);
      unprocessed = (await parent.getDependenciesCount({ unprocessed: true })).unprocessed ?? 0;
      if (gate !== undefined && (await gate.getState()) !== 'completed') unprocessed--;
    }
    const ours = (j: Job | undefined): j is Job => j?.id?.startsWith(`${runId}-split-`) === true;
    const active = (await embed.getActive()).filter(ours);
    const failedJobs = (await embed.getFailed()).filter(ours);
    const failures = failedJobs.map((j) => ({ job: j.id as string, error: j.failedReason }));
    if (mergeState === 'failed' && parent !== undefined && failures.length === 0) failures.push({ job: parent.id as string, error: parent.failedReason });
    const total = record.splits;
    const elapsed = Math.max(0.001, (now - Date.parse(record.createdAt)) / 1000);
    const remaining = Math.max(0, unprocessed);
    const perSplit = done > 0 ? elapsed / done : undefined;
    const state = mergeState === 'completed' ? 'succeeded' : mergeState === 'failed' || failures.length > 0 ? 'failed' : 'running';
    return {
      runId,
      output: record.output,
      state,
      splits: { total, waiting: Math.max(0, remaining - active.length - failedJobs.length), active: active.length, done: mergeState === 'completed' ? total : total - remaining, failed: failedJobs.length },
      enqueued: !gateWaiting,
      rows: { ...rows, perSecond: rows.done / elapsed },
      etaSeconds: state !== 'running' ? 0 : perSplit === undefined ? undefined : perSplit * remaining,
      rowFailures,
      failures,
    };
  } finally {
    await Promise.all([embed.close(), merge.close()]);
  }
}
