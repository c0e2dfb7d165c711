import { InputError, ModelError, RowError } from '@vecmill/shared/errors';
import type { Modality } from '@vecmill/shared/formats/embedding-table';
import { ClipTokenizer } from '@vecmill/worker/model/clip-tokenizer';
import { l2NormalizeRows } from '@vecmill/worker/model/embedder';
import { detectProviderAvailability, planExecutionProviders, type DeviceRequest } from '@vecmill/shared/model/execution-provider';
import { InlinePreprocessor } from '@vecmill/worker/model/image-preprocessor';
import { parsePreprocessSpec, pixelBatch } from '@vecmill/worker/model/image-preprocess';
import { loadModelFolder } from '@vecmill/shared/model/model-folder';
import { OnnxEmbedder } from '@vecmill/worker/model/onnx-embedder';
import { cropBytes } from '@vecmill/worker/model/pixel-batch';
import { resolveModelDir } from '@vecmill/shared/model/resolve-model';
import { modalities } from '@vecmill/shared/run-plan';
import type { S3ClientOptions } from '@vecmill/shared/storage/s3-store';
import type { RetrievalManifest } from './output-reader.js';

/** Where to find the run's model and how to run it for queries. */
export interface QueryEmbedderOptions {
  /** Model location; default: the one the manifest records (which may be relative to where the run started). */
  readonly model?: string;
  readonly cacheDir: string;
  readonly s3: S3ClientOptions | undefined;
  /** Relative model paths resolve against this (default: the current directory). */
  readonly cwd?: string;
  /** Default cpu: a handful of queries never pays for a GPU session. */
  readonly device?: DeviceRequest;
  /** onnxruntime intra-op threads (default 1: queries are tiny). */
  readonly threads?: number;
}

/**
 * Embeds search queries and label prompts exactly as the run embedded its rows: same model files
 * (checked against the manifest's fingerprint, so a query is never compared with vectors from
 * another model), same tokenizer padding, preprocessing and normalization.
 */
export class QueryEmbedder {
  private constructor(
    private readonly embedder: OnnxEmbedder,
    private readonly tokenizer: ClipTokenizer | undefined,
    private readonly images: InlinePreprocessor | undefined,
    private readonly normalize: boolean,
    private readonly trimText: boolean,
  ) {}

  /** Opens only the towers `towers` names; fails with ModelError when the model is not the run's. */
  static async open(manifest: RetrievalManifest, towers: readonly Modality[], options: QueryEmbedderOptions): Promise<QueryEmbedder> {
    const spec = options.model ?? manifest.model.location;
    const dtype = manifest.settings.dtype;
    // The fingerprint covers the files of every tower the run used, so hash those same files.
    const runNeeds = modalities(manifest.settings.kind);
    const lookup = { spec, dtype, needs: runNeeds, cacheDir: options.cacheDir, s3: options.s3, cwd: options.cwd ?? process.cwd() };
    const folder = await loadModelFolder(await resolveModelDir(lookup), dtype, runNeeds);
    if (folder.fingerprint.id !== manifest.model.fingerprint.id) {
      throw new ModelError(
        `model ${spec} (fingerprint ${folder.fingerprint.id.slice(0, 12)}) is not the model run ${manifest.runId} was embedded with (${manifest.model.fingerprint.id.slice(0, 12)}); pass that run's model with --model`,
        { model: spec },
      );
    }
    const wantText = towers.includes('text');
    const wantImage = towers.includes('image');
    const model = { ...folder, textModelPath: wantText ? folder.textModelPath : undefined, visionModelPath: wantImage ? folder.visionModelPath : undefined };
    const plan = planExecutionProviders(options.device ?? 'cpu', await detectProviderAvailability());
    const embedder = await OnnxEmbedder.open(model, { plan, intraOpThreads: options.threads ?? 1 });
    const tokenizer = wantText ? new ClipTokenizer(folder.tokenizerJson, folder.tokenizerConfig, { contextLength: manifest.model.contextLength, family: folder.config.family }) : undefined;
    const images = wantImage
      ? new InlinePreprocessor(parsePreprocessSpec(folder.preprocessorConfig), { maxPixels: manifest.settings.maxPixels, fastDecode: manifest.settings.fastDecode })
      : undefined;
    return new QueryEmbedder(embedder, tokenizer, images, manifest.settings.normalize, manifest.settings.trimText);
  }

  get dims(): number {
    return this.embedder.dims;
  }

  /** `texts.length × dims` float32 values, row-major. */
  async embedTexts(texts: readonly string[]): Promise<Float32Array> {
    if (this.tokenizer === undefined) throw new ModelError('this query embedder was opened without the text tower');
    const padTo = this.tokenizer.padLength(this.trimText, this.embedder);
    const values = await this.embedder.embedText(this.tokenizer.encodeBatch(texts, padTo));
    return this.normalize ? l2NormalizeRows(values, this.dims) : values;
  }

  /** One image's embedding; `name` (its file) appears in the error when it cannot be decoded. */
  async embedImage(bytes: Buffer, name: string): Promise<Float32Array> {
    if (this.images === undefined) throw new ModelError('this query embedder was opened without the image tower');
    const { spec } = this.images;
    const crop = new Uint8Array(cropBytes(spec.outHeight, spec.outWidth));
    try {
      await this.images.preprocessInto(bytes, crop, 0);
    } catch (err) {
      if (err instanceof RowError) throw new InputError(`query image ${name} cannot be used (${err.reason}: ${err.message}); pass a JPEG, PNG, WebP, GIF, TIFF or AVIF file`, { file: name }, { cause: err });
      throw err;
    }
    const values = await this.embedder.embedImages(pixelBatch(spec, crop, 1));
    return this.normalize ? l2NormalizeRows(values, this.dims) : values;
  }

  async close(): Promise<void> {
    await this.embedder.close();
    await this.images?.close();
  }
}
