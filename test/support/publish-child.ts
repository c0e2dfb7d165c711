// A child process for the publish fault tests: it commits or publishes on a real store and can
// die (SIGKILL, from inside) at an exact step, so the tests see what a killed worker or merger
// really leaves behind. Run as `node publish-child.js '<json ChildTask>'`; prints one JSON line.
import { createS3Client, S3Store, type S3ClientOptions } from '@vecmill/shared/storage/s3-store';
import { readPlan } from '@vecmill/shared/run-plan';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { mergeRun } from '@vecmill/worker/merge-processor';
import { commitSyntheticSplit } from './committed-run.js';

/** What the child does: stage then die, commit (optionally dying at its first promotion copy), or publish. */
export interface ChildTask {
  readonly op: 'stage-then-die' | 'commit' | 'commit-die-before-promotion' | 'merge';
  readonly s3: S3ClientOptions;
  readonly bucket: string;
  readonly prefix: string;
  readonly split?: number;
  readonly attempt?: string;
  readonly variant?: string;
}

async function main(task: ChildTask): Promise<unknown> {
  const client = createS3Client(task.s3);
  const s3 = new S3Store(client, task.bucket, task.prefix);
  const plan = await readPlan(s3);
  if (plan === undefined) throw new Error('no plan.json');
  if (task.op === 'merge') return { rows: (await mergeRun({ plan, output: s3 })).rows.in };
  const split = task.split ?? 0;
  const attempt = task.attempt ?? 'child';
  // Dies inside the first promotion copy: the marker is written, nothing is promoted.
  const store: ObjectStore =
    task.op === 'commit-die-before-promotion'
      ? Object.assign(Object.create(s3) as S3Store, {
          copy: (): Promise<void> => {
            process.kill(process.pid, 'SIGKILL');
            return new Promise<void>(() => undefined);
          },
        })
      : s3;
  const committed = await commitSyntheticSplit(store, plan, split, attempt, {
    ...(task.variant === undefined ? {} : { variant: task.variant }),
    ...(task.op === 'stage-then-die' ? { afterStaged: () => process.kill(process.pid, 'SIGKILL') } : {}),
  });
  client.destroy();
  return { committed };
}

main(JSON.parse(process.argv[2] ?? '{}') as ChildTask).then(
  (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
