import { openOutput, planFromRunConfig } from '@vecmill/producer/plan-from-config';
import type { RunConfig } from '@vecmill/shared/config';
import { readManifestIfPublished, type Manifest } from '@vecmill/shared/manifest';
import { LocalQueue } from '@vecmill/shared/queue/local-queue';
import type { RunEventSink } from '@vecmill/shared/queue/run-events';
import { modalities, type RunPlan } from '@vecmill/shared/run-plan';
import { EmbedEngine } from '@vecmill/worker/embed-engine';
import { mergeRun } from '@vecmill/worker/merge-processor';
import { jpegDecoderDescription } from '@vecmill/worker/model/decode-jpeg-native';
import { readShardMarker } from '@vecmill/worker/shard-commit';

/** What an embedded run did: the published manifest and how much work this invocation did. */
export interface EmbeddedRunResult {
  readonly runId: string;
  readonly manifest: Manifest;
  readonly outputUri: string;
  /** True when the output already held a published run and nothing was done. */
  readonly alreadyPublished: boolean;
  readonly resumed: boolean;
  readonly splitsComputed: number;
  readonly splitsReused: number;
}

/**
 * `vecmill run`: plan → in-process queue → embed every split → merge, in one process with no
 * Redis. Every check that can fail fast (inputs, model folder, output writable) runs before any
 * embedding starts.
 */
export async function runEmbedded(config: RunConfig, events: RunEventSink, cwd = process.cwd()): Promise<EmbeddedRunResult> {
  const opened = openOutput(config, cwd);
  const { output, outputUri } = opened;
  const published = await readManifestIfPublished(output);
  if (published !== undefined) {
    return { runId: published.runId, manifest: published, outputUri, alreadyPublished: true, resumed: true, splitsComputed: 0, splitsReused: published.splits };
  }
  const { plan, resumed, model, providerPlan } = await planFromRunConfig(config, opened, cwd, (message) => events({ type: 'warning', message }));
  const pending: RunPlan['splits'][number][] = [];
  for (const split of plan.splits) if ((await readShardMarker(output, split.index)) === undefined) pending.push(split);
  const splitBytes = (s: RunPlan['splits'][number]): number => s.end - s.start;
  events({
    type: 'run-start',
    runId: plan.runId,
    splits: plan.splits.length,
    pending: pending.length,
    bytes: pending.reduce((a, s) => a + splitBytes(s), 0),
    ...(modalities(plan.settings.kind).image ? { jpegDecoder: jpegDecoderDescription() } : {}),
  });

  const warn = (message: string): void => events({ type: 'warning', message });
  const engine = new EmbedEngine({
    s3: config.env.s3,
    cacheDir: config.env.cacheDir,
    cwd,
    providerPlan,
    threads: config.threads,
    decodeThreads: config.decodeThreads,
    faultInferenceExit: config.env.faultInferenceExit,
    onWarning: warn,
    onThreadEvent: warn,
  });
  try {
    const processSplit = await engine.forRun(plan, output, model);
    let computed = 0;
    const manifest = await new LocalQueue({ concurrency: config.concurrency }).runFlow(
      pending.map((s) => ({ split: s.index, bytes: splitBytes(s) })),
      async (job) => {
        const result = await processSplit(job.split, { onProgress: (rows) => events({ type: 'split-progress', split: job.split, rows }) });
        if (result.computed) computed++;
        events({ type: 'split-done', split: job.split, rows: result.marker.rowsIn, failed: result.marker.rowsFailed, computed: result.computed, bytes: job.bytes });
      },
      () => mergeRun({ plan, output, events }),
      events,
    );
    return { runId: plan.runId, manifest, outputUri, alreadyPublished: false, resumed, splitsComputed: computed, splitsReused: plan.splits.length - computed };
  } finally {
    await engine.close();
  }
}
