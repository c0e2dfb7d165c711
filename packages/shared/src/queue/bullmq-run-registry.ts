import type { Redis } from 'ioredis';
import { checkRunId } from '../run-plan.js';

/** What Redis remembers about a run besides its jobs: where its plan lives and how big it is. */
export interface RunRecord {
  readonly runId: string;
  /** Output location holding plan.json: the only place workers accept for this run. */
  readonly output: string;
  readonly splits: number;
  readonly createdAt: string;
}

/** Redis key of a run's record, under the same prefix as its queues (so `--prefix` isolates it too). */
export function runRecordKey(prefix: string, runId: string): string {
  return `${prefix}:runs:${checkRunId(runId)}`;
}

/**
 * Records a run. The first record wins: a second `produce` for the same run id must not move the
 * run to another output, since workers trust this record to decide which output a job may name.
 * Returns the record in force.
 */
export async function registerRun(redis: Redis, prefix: string, record: RunRecord): Promise<RunRecord> {
  const key = runRecordKey(prefix, record.runId);
  await redis.multi().hsetnx(key, 'output', record.output).hsetnx(key, 'splits', String(record.splits)).hsetnx(key, 'createdAt', record.createdAt).exec();
  return (await readRunRecord(redis, prefix, record.runId)) ?? record;
}

/** The run's record, or undefined when Redis does not know the run (never produced, or flushed). */
export async function readRunRecord(redis: Redis, prefix: string, runId: string): Promise<RunRecord | undefined> {
  const h = await redis.hgetall(runRecordKey(prefix, runId));
  if (h['output'] === undefined || h['splits'] === undefined) return undefined;
  return { runId, output: h['output'], splits: Number(h['splits']), createdAt: h['createdAt'] ?? '' };
}
