import { randomBytes } from 'node:crypto';
import { planRun, sniffInputKind } from '@vecmill/producer/plan-run';
import type { RunConfig } from '@vecmill/shared/config';
import { StorageError, describeError } from '@vecmill/shared/errors';
import type { Manifest } from '@vecmill/shared/manifest';
import { ClipTokenizer } from '@vecmill/shared/model/clip-tokenizer';
import { detectProviderAvailability, planExecutionProviders } from '@vecmill/shared/model/execution-provider';
import { loadModelFolder } from '@vecmill/shared/model/model-folder';
import { OnnxEmbedder } from '@vecmill/shared/model/onnx-embedder';
import { PreprocessPool } from '@vecmill/shared/model/preprocess-pool';
import { resolveModelDir } from '@vecmill/shared/model/resolve-model';
import { LocalQueue } from '@vecmill/shared/queue/local-queue';
import type { RunEventSink } from '@vecmill/shared/queue/run-events';
import { modalities, type RunPlan } from '@vecmill/shared/run-plan';
import { formatLocation, parseLocation } from '@vecmill/shared/storage/location';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { createObjectOpener } from '@vecmill/shared/storage/open-object';
import { openStore, resolveInputs } from '@vecmill/shared/storage/open-store';
import { withResilientReads } from '@vecmill/shared/storage/resilient-read';
import { createEmbedProcessor } from '@vecmill/worker/embed-processor';
import { mergeRun, readManifestIfPublished } from '@vecmill/worker/merge-processor';
import { ReuseIndex } from '@vecmill/worker/reuse-index';
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
  const outputUri = formatLocation(parseLocation(config.output, cwd));
  const output = withResilientReads(openStore(parseLocation(config.output, cwd), config.env.s3));
  const published = await readManifestIfPublished(output);
  if (published !== undefined) {
    return { runId: published.runId, manifest: published, outputUri, alreadyPublished: true, resumed: true, splitsComputed: 0, splitsReused: published.splits };
  }

  const inputs = (await resolveInputs(config.inputs, config.env.s3, cwd)).map((i) => ({
    uri: i.uri,
    store: i.store,
    key: i.info.key,
    size: i.info.size,
    etag: i.info.etag,
    modified: i.info.modified,
  }));
  await checkWritable(output, outputUri);
  const kind = config.kind ?? (await sniffInputKind(inputs));
  const needs = modalities(kind);
  const modelDir = await resolveModelDir({ spec: config.model, dtype: config.dtype, needs, cacheDir: config.env.cacheDir, s3: config.env.s3, cwd });
  const model = await loadModelFolder(modelDir, config.dtype, needs);
  const tokenizer = needs.text ? new ClipTokenizer(model.tokenizerJson, model.tokenizerConfig, { contextLength: model.config.contextLength }) : undefined;
  const providerPlan = planExecutionProviders(config.device, await detectProviderAvailability());
  if (providerPlan.warning !== undefined) events({ type: 'warning', message: providerPlan.warning });

  const { plan, resumed } = await planRun({
    inputs,
    output,
    outputUri,
    splitSize: config.splitSize,
    model: {
      location: config.model,
      dtype: config.dtype,
      fingerprint: model.fingerprint,
      dims: model.config.projectionDim,
      preprocessing: model.preprocessorConfig,
      contextLength: model.config.contextLength,
    },
    settings: {
      kind,
      dtype: config.dtype,
      normalize: config.normalize,
      outDtype: config.outDtype,
      batchSize: config.batchSize ?? providerPlan.defaultBatchSize,
      maxPixels: config.maxPixels,
      fastDecode: config.fastDecode,
      maxLineBytes: config.maxLineBytes,
      trimText: config.trimText,
      formats: config.formats,
    },
    runId: config.runId,
    ...(config.reuse !== undefined ? { reuse: formatLocation(parseLocation(config.reuse, cwd)) } : {}),
  });
  const reuse = plan.reuse === undefined ? undefined : await ReuseIndex.open(openStore(parseLocation(plan.reuse, cwd), config.env.s3), plan);

  const pending: RunPlan['splits'][number][] = [];
  for (const split of plan.splits) if ((await readShardMarker(output, split.index)) === undefined) pending.push(split);
  const splitBytes = (s: RunPlan['splits'][number]): number => s.end - s.start;
  events({ type: 'run-start', runId: plan.runId, splits: plan.splits.length, pending: pending.length, bytes: pending.reduce((a, s) => a + splitBytes(s), 0) });

  const images = needs.image
    ? new PreprocessPool(model.preprocessorConfig, { maxPixels: plan.settings.maxPixels, fastDecode: plan.settings.fastDecode }, config.decodeThreads)
    : undefined;
  const embedder = await OnnxEmbedder.open(model, {
    plan: providerPlan,
    intraOpThreads: config.threads,
    onWarning: (message) => events({ type: 'warning', message }),
  });
  try {
    const openObject = createObjectOpener(config.env.s3);
    const processSplit = createEmbedProcessor({
      plan,
      openInput: (input) => {
        const { store, key } = openObject(input.uri);
        return { store: withResilientReads(store), key };
      },
      output,
      embedder,
      tokenizer,
      images,
      decodeConcurrency: 2 * config.decodeThreads,
      ...(reuse !== undefined ? { reuse } : {}),
    });
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
    await embedder.close();
    await images?.close();
  }
}

/** Fails before any work when the output cannot be written, rather than after an hour of embedding. */
async function checkWritable(output: ObjectStore, outputUri: string): Promise<void> {
  const probe = `.vecmill-write-check-${randomBytes(4).toString('hex')}`;
  try {
    await output.put(probe, Buffer.from('ok'));
    await output.delete(probe);
  } catch (err) {
    throw new StorageError(`output ${outputUri} is not writable: ${describeError(err)}`, { output: outputUri }, { cause: err });
  }
}
