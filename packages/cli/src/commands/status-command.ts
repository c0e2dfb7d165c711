import { setTimeout as sleep } from 'node:timers/promises';
import { loadStatusConfig } from '@vecmill/shared/config';
import { connectRedis } from '@vecmill/shared/queue/bullmq-connection';
import { readRunStatus, statusExitCodes, type RunStatus } from '@vecmill/producer/run-status';
import { formatDuration } from '../progress-reporter.js';

/** Help text of `vecmill status`, for the command table. */
export const help = `vecmill status --redis redis://host:port --run ID [--watch] [--json]
  Splits waiting, active, done and failed; rows done, rows/s, ETA; failures by reason.
  Exit code: 0 the run succeeded, 1 it failed, 3 it is still running.
  --prefix         key prefix the run was produced under (default vecmill)
  --watch          refresh until the run finishes
  --interval       ms between refreshes with --watch (default 2000)
  --json           one JSON object per refresh`;

/** `vecmill status`: the exit code tells a script whether to wait, alert or go on. */
export async function statusCommand(argv: readonly string[]): Promise<number> {
  const config = loadStatusConfig(argv);
  const redis = await connectRedis(config.redis);
  try {
    for (;;) {
      const status = await readRunStatus(redis, config.prefix, config.runId);
      process.stdout.write(config.json ? `${JSON.stringify(status)}\n` : `${describeStatus(status)}\n`);
      if (!config.watch || status.state !== 'running') return statusExitCodes[status.state];
      await sleep(config.intervalMs);
    }
  } finally {
    redis.disconnect();
  }
}

/** Human-readable status block. */
function describeStatus(s: RunStatus): string {
  const lines = [
    `run ${s.runId}: ${s.state}${s.enqueued ? '' : ' (enqueueing did not finish: re-run `vecmill produce` with the same flags)'}`,
    `  output   ${s.output}`,
    `  splits   ${s.splits.done}/${s.splits.total} done, ${s.splits.active} active, ${s.splits.waiting} waiting, ${s.splits.failed} failed`,
    `  rows     ${s.rows.done} done (${s.rows.ok} ok, ${s.rows.failed} failed), ${s.rows.perSecond.toFixed(1)} rows/s, ETA ${s.etaSeconds === undefined ? '?' : formatDuration(s.etaSeconds)}`,
  ];
  const reasons = Object.entries(s.rowFailures);
  if (reasons.length > 0) lines.push(`  row failures by reason: ${reasons.map(([r, n]) => `${r} ${n}`).join(', ')}`);
  for (const f of s.failures) lines.push(`  FAILED ${f.job}: ${f.error}`);
  return lines.join('\n');
}
