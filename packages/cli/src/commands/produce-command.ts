import { loadProduceConfig } from '@vecmill/shared/config';
import { produceRun } from '@vecmill/producer/produce-run';

/** Help text of `vecmill produce`, for the command table. */
export const help = `vecmill produce --input ... --model ... --output ... --redis redis://host:port [--prefix P] [--run-id ID]
  Plan a run (plan.json on the output), register it in Redis and enqueue one BullMQ flow:
  a merge job waiting on one embed job per split. Prints the run id and exits.
  Takes every embedding flag of \`vecmill run\` (--split-size, --batch-size, --dtype, --formats, ...).
  --redis          redis:// or rediss:// URL (or VECMILL_REDIS_URL); passwords are never printed
  --redis-ca       PEM file of the CA of a rediss:// server
  --prefix         key prefix isolating runs and tenants (default vecmill)
  --resume ID      re-enqueue the splits of run ID that have no shard marker (after Redis lost
                   its data); give --output when Redis no longer knows the run
  --chunk-size     jobs added per Redis round trip (default 1000)
  --attempts       tries per split before the run fails (default 5)
  --backoff        first retry delay in ms, doubled per try with jitter (default 2000)`;

/** `vecmill produce`: prints the run id on stdout (for scripts) and progress on stderr. */
export async function produceCommand(argv: readonly string[]): Promise<number> {
  const config = loadProduceConfig(argv);
  const result = await produceRun(config, {
    onWarning: (line) => process.stderr.write(`warning: ${line}\n`),
    onChunk: (added, total) => process.stderr.write(`enqueued ${added}/${total} splits\n`),
  });
  if (result.alreadyDone) process.stderr.write(`run ${result.runId} is already complete in ${result.output}; nothing enqueued\n`);
  else process.stderr.write(`run ${result.runId}: ${result.pending} of ${result.splits} splits enqueued; output ${result.output}\n`);
  process.stdout.write(`${result.runId}\n`);
  return 0;
}
