import type { S3ClientOptions } from '@vecmill/shared/storage/s3-store';
import { ModelError } from '@vecmill/shared/errors';
import type { ClipTokenizerOptions } from './model/clip-tokenizer.js';
import type { ProviderPlan } from '@vecmill/shared/model/execution-provider';
import { loadModelFolder, type ModelFolder } from '@vecmill/shared/model/model-folder';
import { OnnxEmbedder } from './model/onnx-embedder.js';
import { PreprocessPool } from './model/preprocess-pool.js';
import { resolveModelDir } from '@vecmill/shared/model/resolve-model';
import { TokenizerPool } from './model/tokenizer-pool.js';
import { modalities, type RunPlan } from '@vecmill/shared/run-plan';
import { parseLocation } from '@vecmill/shared/storage/location';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { createObjectOpener } from '@vecmill/shared/storage/open-object';
import { ReadBufferPool } from '@vecmill/shared/storage/read-buffer-pool';
import { openStore } from '@vecmill/shared/storage/open-store';
import { createEmbedProcessor } from './embed-processor.js';
import { PixelBatchBuffers } from './model/pixel-batch-buffers.js';
import { ReuseIndex } from './reuse-index.js';

/** What every run this process embeds shares; `vecmill run` and `vecmill worker` fill it from their config. */
export interface EmbedEngineOptions {
  /** S3 settings for inputs, `--reuse` outputs and `s3://` model folders. */
  readonly s3: S3ClientOptions;
  /** Where `s3://` models and pulled repos are cached. */
  readonly cacheDir: string;
  /** Resolves relative input, model and `--reuse` paths. */
  readonly cwd: string;
  /** Execution providers, chosen once per process from `--device`. */
  readonly providerPlan: ProviderPlan;
  /** onnxruntime intra-op threads of the inference thread. */
  readonly threads: number;
  /** Threads of each preprocessing pool and each tokenizer pool. */
  readonly decodeThreads: number;
  /** Test hook from the config loader: the inference thread exits at this request number. */
  readonly faultInferenceExit: number | undefined;
  readonly onWarning: (message: string) => void;
  /** The inference thread died, was replaced, or could not be. */
  readonly onThreadEvent: (message: string, modelId: string) => void;
}

/** Embeds one split of a run and commits its shard (see createEmbedProcessor). */
export type EmbedSplit = ReturnType<typeof createEmbedProcessor>;

/**
 * The one wiring of the embed path, used by `vecmill run` and `vecmill worker` alike: from a run's
 * plan and model folder to its embed function. Everything expensive is shared by the runs that can
 * share it, for as long as the process lives: one inference thread per model fingerprint (the
 * fingerprint covers the dtype's files), one preprocessing pool per model and decode settings,
 * one tokenizer pool per model and context length.
 */
export class EmbedEngine {
  private readonly embedders = new Map<string, Promise<OnnxEmbedder>>();
  /** The opened ones, for `healthy`. */
  private readonly openEmbedders = new Set<OnnxEmbedder>();
  private readonly imagePools = new Map<string, PreprocessPool>();
  private readonly tokenizerPools = new Map<string, TokenizerPool>();
  /** Batch buffers by crop size, and the read buffers: shared by every run, so a worker serving many keeps one set. */
  private readonly pixelBuffers = new Map<string, PixelBatchBuffers>();
  private readonly readBuffers = new ReadBufferPool();
  private readonly openObject: ReturnType<typeof createObjectOpener>;

  constructor(private readonly options: EmbedEngineOptions) {
    this.openObject = createObjectOpener(options.s3);
  }

  /**
   * False while an inference thread is dead and could not be replaced: a worker's `/healthz`
   * then fails, so the orchestrator replaces the pod.
   */
  get healthy(): boolean {
    return [...this.openEmbedders].every((e) => e.healthy);
  }

  /**
   * The model folder a run was planned with, as this process sees it; refused when its files
   * differ from the plan's (every worker must embed with the same model).
   */
  async loadPlannedModel(plan: RunPlan): Promise<ModelFolder> {
    const needs = modalities(plan.settings.kind);
    const { s3, cacheDir, cwd } = this.options;
    const dir = await resolveModelDir({ spec: plan.model.location, dtype: plan.model.dtype, needs, cacheDir, s3, cwd });
    const model = await loadModelFolder(dir, plan.model.dtype, needs);
    const id = model.fingerprint.id;
    if (id !== plan.model.fingerprint.id) {
      throw new ModelError(
        `the model files at ${plan.model.location} here differ from those run ${plan.runId} was planned with (fingerprint ${id.slice(0, 12)} ≠ ${plan.model.fingerprint.id.slice(0, 12)}); give every worker the same model`,
        { model: plan.model.location },
      );
    }
    return model;
  }

  /** The embed function of a run whose shards go to `output`, over its loaded model folder. */
  async forRun(plan: RunPlan, output: ObjectStore, model: ModelFolder): Promise<EmbedSplit> {
    const needs = modalities(plan.settings.kind);
    const { decodeThreads } = this.options;
    const id = model.fingerprint.id;
    const textOptions: ClipTokenizerOptions = { contextLength: plan.model.contextLength, family: model.config.family };
    const textEncoder = needs.text ? this.shared(this.tokenizerPools, `${id}/${textOptions.contextLength}`, () => new TokenizerPool(model.tokenizerJson, model.tokenizerConfig, textOptions, decodeThreads)) : undefined;
    const images = needs.image
      ? this.shared(this.imagePools, `${id}/${plan.settings.maxPixels}/${plan.settings.fastDecode}`, () => new PreprocessPool(model.preprocessorConfig, { maxPixels: plan.settings.maxPixels, fastDecode: plan.settings.fastDecode }, decodeThreads))
      : undefined;
    const reuse = plan.reuse === undefined ? undefined : await ReuseIndex.open(openStore(parseLocation(plan.reuse, this.options.cwd), this.options.s3), plan);
    return createEmbedProcessor({
      plan,
      openInput: (input) => this.openObject(input.uri),
      output,
      embedder: await this.embedder(model),
      // The threads build the tokenizer; the event loop only needs its layout.
      tokenizer: textEncoder !== undefined ? await textEncoder.layout : undefined,
      ...(textEncoder !== undefined ? { textEncoder } : {}),
      images,
      ...(reuse !== undefined ? { reuse } : {}),
      readBuffers: this.readBuffers,
      pixelBuffersFor: (batchImages, bytesPerImage) => this.shared(this.pixelBuffers, `${batchImages}/${bytesPerImage}`, () => new PixelBatchBuffers(batchImages, bytesPerImage)),
    });
  }

  /** Stops every thread this engine started. */
  async close(): Promise<void> {
    for (const e of this.embedders.values()) await e.then((embedder) => embedder.close(), () => undefined);
    for (const p of this.imagePools.values()) await p.close();
    for (const p of this.tokenizerPools.values()) await p.close();
  }

  private embedder(model: ModelFolder): Promise<OnnxEmbedder> {
    const id = model.fingerprint.id;
    let embedder = this.embedders.get(id);
    if (embedder === undefined) {
      const { providerPlan, threads, faultInferenceExit, onWarning, onThreadEvent } = this.options;
      embedder = OnnxEmbedder.open(model, {
        plan: providerPlan,
        intraOpThreads: threads,
        onWarning,
        onThreadEvent: (message) => onThreadEvent(message, id),
        ...(faultInferenceExit !== undefined ? { exitThreadAtRequest: faultInferenceExit } : {}),
      });
      this.embedders.set(id, embedder);
      embedder.then(
        (opened) => this.openEmbedders.add(opened),
        () => this.embedders.delete(id),
      );
    }
    return embedder;
  }

  private shared<T>(cache: Map<string, T>, key: string, make: () => T): T {
    let value = cache.get(key);
    if (value === undefined) {
      value = make();
      cache.set(key, value);
    }
    return value;
  }
}
