import { loadRunConfig } from '@vecmill/shared/config';
import { runEmbedded } from '../embedded-run.js';
import { createProgressReporter } from '../progress-reporter.js';
import { summarizeManifest } from '../manifest-summary.js';

/** `vecmill run`: the embedded mode, start to finish in this process. */
export async function runCommand(argv: readonly string[]): Promise<number> {
  const config = loadRunConfig(argv);
  const progress = createProgressReporter({ mode: config.progress, write: (t) => process.stderr.write(t) });
  const result = await runEmbedded(config, progress);
  progress.finish();
  if (result.alreadyPublished) process.stderr.write(`${result.outputUri} already holds the published run ${result.runId}; nothing to do\n`);
  process.stdout.write(`${summarizeManifest(result.manifest, result.outputUri)}\n`);
  return 0;
}
