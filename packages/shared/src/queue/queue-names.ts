import { checkRunId } from '../run-plan.js';

/** BullMQ key prefix when `--prefix` is not given: every vecmill key in Redis starts with it. */
export const DEFAULT_QUEUE_PREFIX = 'vecmill';

/**
 * Queue names and deterministic job ids, in one place so the producer, the workers and `status`
 * agree. Ids hold no `:` (BullMQ uses it as its key separator), so a run id plus an index names
 * one job forever: adding it twice is a no-op, which is what makes `produce` safe to repeat.
 */
export const queueNames = {
  embed: 'embed',
  merge: 'merge',
} as const;

/** The queues a worker can serve. */
export type QueueRole = keyof typeof queueNames;

/** Job names inside the queues. */
export const jobNames = {
  embed: 'embed',
  merge: 'merge',
  gate: 'gate',
} as const;

/** The embed job of one split. */
export function splitJobId(runId: string, splitIndex: number): string {
  return `${checkRunId(runId)}-split-${splitIndex}`;
}

/** The run's merge job: the flow's parent. */
export function mergeJobId(runId: string): string {
  return `${checkRunId(runId)}-merge`;
}

/** The no-op child that holds the merge back until every chunk of children is in the queue. */
export function gateJobId(runId: string): string {
  return `${checkRunId(runId)}-gate`;
}

/** `--prefix` values become Redis key parts: a small alphabet keeps them unambiguous. */
export const queuePrefixPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
