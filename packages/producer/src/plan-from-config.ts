import { randomBytes } from 'node:crypto';
import type { RunConfig } from '@vecmill/shared/config';
import { describeError, StorageError } from '@vecmill/shared/errors';
import { detectProviderAvailability, planExecutionProviders, type ProviderPlan } from '@vecmill/shared/model/execution-provider';
import { loadModelFolder, resolveContextLength, type ModelFolder } from '@vecmill/shared/model/model-folder';
import { resolveModelDir } from '@vecmill/shared/model/resolve-model';
import { modalities, type RunPlan } from '@vecmill/shared/run-plan';
import { formatLocation, parseLocation } from '@vecmill/shared/storage/location';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { openStore, resolveInputs } from '@vecmill/shared/storage/open-store';
import { withResilientReads } from '@vecmill/shared/storage/resilient-read';
import { planRun, sniffInputKind } from './plan-run.js';

/** A run's output location, opened once. */
export interface OpenedOutput {
  readonly output: ObjectStore;
  readonly outputUri: string;
}

/** Everything `vecmill run` and `vecmill produce` learn while planning from flags. */
export interface PlannedFromConfig extends OpenedOutput {
  readonly plan: RunPlan;
  readonly resumed: boolean;
  readonly model: ModelFolder;
  readonly providerPlan: ProviderPlan;
}

/** Opens `--output` (reads resume from the last byte on dropped connections). */
export function openOutput(run: RunConfig, cwd: string): OpenedOutput {
  const location = parseLocation(run.output, cwd);
  return { output: withResilientReads(openStore(location, run.env.s3)), outputUri: formatLocation(location) };
}

/**
 * Plans a run from its flags, identically for both modes: resolve inputs, check the output is
 * writable, detect the kind, load and fingerprint exactly the towers it needs, choose the
 * execution provider, then plan (or find the same plan on the output). Every check that can fail
 * runs before any work is queued.
 */
export async function planFromRunConfig(run: RunConfig, opened: OpenedOutput, cwd: string, onWarning: (line: string) => void): Promise<PlannedFromConfig> {
  const { output, outputUri } = opened;
  const inputs = (await resolveInputs(run.inputs, run.env.s3, cwd)).map((i) => ({
    uri: i.uri,
    store: i.store,
    key: i.info.key,
    size: i.info.size,
    etag: i.info.etag,
    modified: i.info.modified,
  }));
  await checkWritable(output, outputUri);
  const kind = run.kind ?? (await sniffInputKind(inputs));
  const needs = modalities(kind);
  const modelDir = await resolveModelDir({ spec: run.model, dtype: run.dtype, needs, cacheDir: run.env.cacheDir, s3: run.env.s3, cwd });
  const model = await loadModelFolder(modelDir, run.dtype, needs);
  const providerPlan = planExecutionProviders(run.device, await detectProviderAvailability());
  if (providerPlan.warning !== undefined) onWarning(providerPlan.warning);
  const modelLocation = parseLocation(run.model, cwd);
  const { plan, resumed } = await planRun({
    inputs,
    output,
    outputUri,
    splitSize: run.splitSize,
    model: {
      // Workers start elsewhere: record a location that means the same folder from any cwd.
      location: modelLocation.kind === 's3' || modelLocation.path === modelDir ? formatLocation(modelLocation) : run.model,
      dtype: run.dtype,
      fingerprint: model.fingerprint,
      dims: model.config.projectionDim,
      preprocessing: model.preprocessorConfig,
      contextLength: resolveContextLength(model.config, run.contextLength),
    },
    settings: {
      kind,
      dtype: run.dtype,
      normalize: run.normalize,
      outDtype: run.outDtype,
      batchSize: run.batchSize ?? providerPlan.defaultBatchSize,
      maxPixels: run.maxPixels,
      fastDecode: run.fastDecode,
      maxLineBytes: run.maxLineBytes,
      trimText: run.trimText,
      cmykConversion: 'pillow',
      formats: run.formats,
    },
    runId: run.runId,
    ...(run.reuse !== undefined ? { reuse: formatLocation(parseLocation(run.reuse, cwd)) } : {}),
  });
  return { plan, resumed, output, outputUri, model, providerPlan };
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
