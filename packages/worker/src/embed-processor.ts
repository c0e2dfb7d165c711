import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { InputError, VecmillError } from '@vecmill/shared/errors';
import { ClipTokenizer } from './model/clip-tokenizer.js';
import { l2NormalizeRows, type Embedder } from './model/embedder.js';
import type { ImagePreprocessor } from './model/image-preprocessor.js';
import { InlineTextEncoder } from './model/inline-text-encoder.js';
import { cropBytes, slicePixelBatch, type PixelBatch } from './model/pixel-batch.js';
import { PixelBatchBuffers } from './model/pixel-batch-buffers.js';
import type { TokenLayout } from './model/token-layout.js';
import type { BatchTextEncoder } from './model/tokenizer-pool.js';
import type { PlannedInput, RunPlan } from '@vecmill/shared/run-plan';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { readSplitLineGroups, type SplitLine } from '@vecmill/shared/tsv/line-reader';
import { createImageDecoder, type DecodedImages } from './decode-images.js';
import { findReused } from './find-reused.js';
import { hashForReuse } from './hash-for-reuse.js';
import { parseBatch, type ParseBatchOptions, type ParsedBatch } from './parse-batch.js';
import type { ReuseLookup } from './reuse-index.js';
import { commitShard, readShardMarker, type ShardMarker, type StageTimings } from './shard-commit.js';
import { IpcScratch } from '@vecmill/shared/formats/ipc-scratch';
import { ChunkSlots } from './chunk-slots.js';
import { FileBufferPool } from './file-buffer-pool.js';
import { ReadBufferPool } from '@vecmill/shared/storage/read-buffer-pool';
import { ShardWriter } from './shard-writer.js';
import { createBatchTokenizer, type TextGroup } from './tokenize-batch.js';

/** The ports an embed processor works through; wiring differs between `run`, `worker` and tests. */
export interface EmbedProcessorDeps {
  readonly plan: RunPlan;
  /** Opens the store that holds a planned input and names its key there. */
  readonly openInput: (input: PlannedInput) => { store: ObjectStore; key: string };
  readonly output: ObjectStore;
  readonly embedder: Embedder;
  /** Present when the input has text: lays token ids out for the model (and encodes here when it is a ClipTokenizer and no `textEncoder` is given). */
  readonly tokenizer: TokenLayout | undefined;
  /** Tokenizes and hashes captions off the event loop, on every core (a thread pool in `vecmill run` and workers); absent, `tokenizer` encodes here. */
  readonly textEncoder?: BatchTextEncoder;
  /** Present when the input has images; a thread pool in production, so decoding never blocks the event loop. */
  readonly images: ImagePreprocessor | undefined;
  /** `--reuse`: embeddings of an earlier run, found by content hash. */
  readonly reuse?: ReuseLookup;
  /** Buffers the splits read their input into, shared by the splits in flight. Default: a `ReadBufferPool` with its defaults. */
  readonly readBuffers?: ReadBufferPool;
  /**
   * The batch buffers for crops of a size, two per split in flight. Default: the processor's own.
   * A worker hands every run the same set for the same sizes, so what it keeps is bounded by its
   * concurrency, not by the runs it served.
   */
  readonly pixelBuffersFor?: (batchImages: number, bytesPerImage: number) => PixelBatchBuffers;
}

/** Hooks a queue passes in to report progress and to stop a doomed attempt early. */
export interface EmbedHooks {
  readonly onProgress?: (rowsDone: number) => void;
  /** Milliseconds one batch spent per stage, for latency histograms. */
  readonly onBatch?: (stageMs: BatchStageTimings, rows: number) => void;
}

/** A batch's stage times: the write stage belongs to the shard's chunks, not to a batch. */
export type BatchStageTimings = Omit<StageTimings, 'write'>;

/** What processing a split produced. */
export interface EmbedResult {
  readonly marker: ShardMarker;
  /** False when an earlier attempt had already committed the split (nothing was recomputed). */
  readonly computed: boolean;
}

/**
 * One batch of rows after decoding and tokenizing, ready for the model. `textGroups` / `imageRows`
 * name the rows each model input belongs to, in input order.
 */
interface PreparedBatch extends Omit<ParsedBatch, 'images'> {
  /** Text model calls: rows grouped by token length, so each call pads as little as possible. */
  readonly textGroups: readonly TextGroup[];
  readonly imageRows: number[];
  /** The batch's images in a shared batch buffer, which `releasePixels` gives back once inference has settled. */
  readonly pixels: PixelBatch | undefined;
  readonly releasePixels: () => void;
}

/**
 * A batch also ends once its lines hold this many bytes: with multi-megabyte images, 32 rows of
 * base64 plus their decoded bytes would otherwise dominate memory. Keeps peak RSS flat whatever
 * the image sizes.
 */
const maxBatchBytes = 16 * 1024 * 1024;

/**
 * Chunks of a run built and uploaded at once, across its splits (see `ChunkSlots`): one, so the
 * memory of chunk files does not grow with `--concurrency`; batches still fill every split's
 * chunk meanwhile, and building is synchronous work on this thread anyway.
 */
const CHUNKS_IN_FLIGHT = 1;

/** A split's reused row-major vector buffers, one per tower it has, sized for its largest batch. */
interface BatchVectors {
  readonly text: Float32Array | undefined;
  readonly image: Float32Array | undefined;
  /**
   * Where the inference thread writes the model calls' outputs, one region per call in call
   * order (SharedArrayBuffers, one per tower): no array is allocated per model call.
   */
  readonly textOutputs: Float32Array | undefined;
  readonly imageOutputs: Float32Array | undefined;
}

/** Rows and failures of a split so far. */
interface SplitCounts {
  rows: number;
  ok: number;
  reused: number;
  failedByReason: Record<string, number>;
}

/**
 * Embeds one split and commits its shard. Lines stream in; each batch is decoded and tokenized
 * while the previous batch runs on the inference thread, so the model never waits for sharp.
 * Embedded rows stream into bounded chunk files (`ShardWriter`), so memory does not grow with
 * the split's rows; the marker listing them is the commit. Rows that cannot be embedded become
 * error rows; only storage and model failures throw.
 */
export function createEmbedProcessor(deps: EmbedProcessorDeps): (splitIndex: number, hooks?: EmbedHooks) => Promise<EmbedResult> {
  const { plan, embedder, tokenizer } = deps;
  const preprocess = deps.images?.spec;
  const settings = plan.settings;
  const dims = embedder.dims;
  const padTo = tokenizer?.padLength(settings.trimText, embedder);
  const cropBytesPerImage = preprocess === undefined ? 0 : cropBytes(preprocess.outHeight, preprocess.outWidth);
  // Text-only inputs read several batches at once and sort them by token length, so each model
  // call pads to a near-uniform length; with images the window stays one batch to bound memory.
  const windowBatches = preprocess === undefined && padTo === undefined ? 8 : 1;
  // Without --reuse, base64 fields go to the preprocessing threads undecoded: decoding, hashing
  // and their garbage stay off the event loop. With --reuse the hash must be known before
  // decoding (a reused image is never decoded), so it is computed here.
  const parseOptions: ParseBatchOptions = { kind: settings.kind, maxLineBytes: settings.maxLineBytes, decodeImages: deps.reuse !== undefined };
  // Two batch buffers per split in flight: one batch prepares while the previous one is in inference.
  const pixelBuffersFor = deps.pixelBuffersFor ?? ((batchImages: number, bytesPerImage: number) => new PixelBatchBuffers(batchImages, bytesPerImage));
  const decodeImages = deps.images === undefined ? undefined : createImageDecoder(deps.images, pixelBuffersFor(settings.batchSize, cropBytesPerImage));
  // The splits in flight keep their chunks' large files in one pool of buffers, and lay out
  // their tables for parquet-wasm in one scratch (encodes are synchronous).
  const fileBuffers = new FileBufferPool();
  const ipcScratch = new IpcScratch();
  // The splits in flight read their input into reused buffers, each given back once the batch
  // whose lines it held is prepared (nothing keeps a view of a line past that).
  const readBuffers = deps.readBuffers ?? new ReadBufferPool();
  // One chunk of the run is built and uploaded at a time, whatever the splits in flight.
  const chunkSlots = new ChunkSlots(CHUNKS_IN_FLIGHT);
  const tokenizeBatch =
    tokenizer === undefined ? undefined : createBatchTokenizer({ tokenizer, textEncoder: deps.textEncoder ?? inlineEncoder(tokenizer), padTo, batchSize: settings.batchSize });

  return async function processSplit(splitIndex, hooks = {}) {
    const split = plan.splits[splitIndex];
    if (split === undefined) throw new InputError(`split ${splitIndex} is not in the plan of run ${plan.runId}`, { split: splitIndex });
    const existing = await readShardMarker(deps.output, splitIndex);
    if (existing !== undefined) return { marker: existing, computed: false };

    const input = plan.inputs[split.input];
    if (input === undefined) throw new InputError(`split ${splitIndex} names input ${split.input}, which the plan does not have`, { split: splitIndex });
    const { store, key } = deps.openInput(input);
    const now = await store.stat(key);
    if (now.etag !== input.etag || now.size !== input.size) {
      throw new InputError(
        `input ${input.uri} changed after the run was planned (etag ${input.etag} → ${now.etag}); start a new run with a new --output`,
        { split: splitIndex, key: input.uri },
      );
    }

    const timings: Record<keyof StageTimings, number> = { read: 0, decode: 0, tokenize: 0, infer: 0, write: 0 };
    const attempt = randomUUID();
    const maxBatchRows = settings.batchSize * windowBatches;
    const shard = new ShardWriter(deps.output, {
      splitIndex,
      attempt,
      batchRows: maxBatchRows,
      fileBuffers,
      ipcScratch,
      chunkSlots,
      table: { dims, outDtype: settings.outDtype, hasText: tokenizer !== undefined, hasImage: preprocess !== undefined },
    });
    const counts: SplitCounts = { rows: 0, ok: 0, reused: 0, failedByReason: {} };
    // A batch's vectors, laid out row by row, are copied into the shard before the next batch's
    // inference starts, so each split reuses one buffer per tower instead of allocating a batch's
    // worth of memory per batch (garbage that a long run keeps collecting).
    const vectors: BatchVectors = {
      text: tokenizer !== undefined ? new Float32Array(maxBatchRows * dims) : undefined,
      image: preprocess !== undefined ? new Float32Array(maxBatchRows * dims) : undefined,
      textOutputs: tokenizer !== undefined ? sharedFloats(maxBatchRows * dims) : undefined,
      imageOutputs: preprocess !== undefined ? sharedFloats(maxBatchRows * dims) : undefined,
    };
    const splitRange = { index: split.index, key, etag: input.etag, start: split.start, end: split.end, objectSize: input.size };
    const reads = readBuffers.lease();
    const groups = readSplitLineGroups(store, splitRange, { maxLineBytes: settings.maxLineBytes, buffers: reads })[Symbol.asyncIterator]();
    /** Lines read but not yet in a batch: a chunk's lines can end one batch and start the next. */
    let pending: SplitLine[] = [];
    let pendingAt = 0;

    // The previous batch's inference runs while the next batch is prepared. Its promise gets a
    // handler at once (so a rejection is never unhandled), is awaited before the next inference
    // starts, and is settled before the attempt ends, whichever way it ends.
    let inflight: Promise<void> | undefined;
    let inferFailed = false;
    let lineIndex = 0;
    for (;;) {
      if (inferFailed) break;
      const t0 = performance.now();
      const batch: SplitLine[] = [];
      let batchBytes = 0;
      while (batch.length < settings.batchSize * windowBatches && batchBytes < maxBatchBytes) {
        if (pendingAt === pending.length) {
          const next = await settledWith(groups.next(), inflight);
          if (next.done === true) break;
          pending = next.value;
          pendingAt = 0;
        }
        const line = pending[pendingAt++] as SplitLine;
        batch.push(line);
        batchBytes += line.bytes.length;
      }
      timings.read += performance.now() - t0;
      if (batch.length === 0) break;
      const before = { ...timings };
      const prepared = await settledWith(prepareBatch(batch, lineIndex, timings), inflight);
      reads.release((batch[batch.length - 1] as SplitLine).offset);
      const stageMs = { read: performance.now() - t0, decode: timings.decode - before.decode, tokenize: timings.tokenize - before.tokenize };
      lineIndex += batch.length;
      batch.length = 0;
      if (inflight !== undefined) await inflight;
      const inferBefore = timings.infer;
      const inferred = infer(prepared, vectors, timings);
      void inferred.then(prepared.releasePixels, prepared.releasePixels);
      inflight = inferred.then(async (embedded) => {
        await shard.append({ splitIndex, source: input.uri, ...embedded });
        count(counts, prepared);
        hooks.onProgress?.(counts.rows);
        hooks.onBatch?.({ ...stageMs, read: stageMs.read - stageMs.decode - stageMs.tokenize, infer: timings.infer - inferBefore }, prepared.lineIndex.length);
      });
      inflight.catch(() => (inferFailed = true));
    }
    if (inflight !== undefined) await inflight;

    const files = await shard.finish();
    const tw = performance.now();
    const result = await commitShard(deps.output, {
      runId: plan.runId,
      splitIndex,
      attempt,
      files,
      rowsIn: counts.rows,
      rowsOk: counts.ok,
      rowsReused: counts.reused,
      failedByReason: counts.failedByReason,
      timings: () => ({ ...timings, write: shard.elapsedMs + performance.now() - tw }),
      worker: `${hostname()}:${process.pid}`,
    });
    return { marker: result.marker, computed: result.committed };
  };

  /** The data path of a batch up to the model: parse, find reused rows (`--reuse`), encode and hash captions, decode images, group captions into model calls. */
  async function prepareBatch(lines: readonly SplitLine[], firstLine: number, timings: Record<keyof StageTimings, number>): Promise<PreparedBatch> {
    const batch = parseBatch(lines, firstLine, parseOptions);
    if (deps.reuse !== undefined) {
      hashForReuse(batch, { text: tokenizer !== undefined });
      await findReused(deps.reuse, batch);
    }
    const t1 = performance.now();
    const encoded = tokenizeBatch === undefined ? undefined : await tokenizeBatch.encode(batch);
    timings.tokenize += performance.now() - t1;

    let decoded: DecodedImages = { rows: [], pixels: undefined, release: () => undefined };
    if (batch.images.bytes.length > 0 && decodeImages !== undefined) {
      const t0 = performance.now();
      decoded = await decodeImages(batch);
      timings.decode += performance.now() - t0;
    }

    const t2 = performance.now();
    const textGroups = tokenizeBatch === undefined || encoded === undefined ? [] : tokenizeBatch.group(batch, encoded);
    timings.tokenize += performance.now() - t2;
    // The image fields are left behind: only what inference and the shard need lives on.
    const { lineIndex, offset, text, errors, textSha256, imageSha256, reusedText, reusedImage } = batch;
    return { lineIndex, offset, text, errors, textSha256, imageSha256, reusedText, reusedImage, textGroups, imageRows: decoded.rows, pixels: decoded.pixels, releasePixels: decoded.release };
  }

  /**
   * Runs both towers for a batch and lays the vectors out row by row in `vectors` (zeroed first),
   * as the table builder takes them; they stay valid until the next batch of the split is inferred.
   */
  async function infer(batch: PreparedBatch, vectors: BatchVectors, timings: Record<keyof StageTimings, number>) {
    const t0 = performance.now();
    const n = batch.lineIndex.length;
    const imageCalls: Promise<Float32Array>[] = [];
    if (batch.pixels !== undefined) {
      for (let i = 0; i < batch.imageRows.length; i += settings.batchSize) {
        const count = Math.min(settings.batchSize, batch.imageRows.length - i);
        const into = vectors.imageOutputs?.subarray(i * dims, (i + count) * dims);
        imageCalls.push(embedder.embedImages(slicePixelBatch(batch.pixels, i, count), into));
      }
    }
    let textAt = 0;
    const textCalls = batch.textGroups.map((g) => {
      const into = vectors.textOutputs?.subarray(textAt * dims, (textAt + g.tokens.batch) * dims);
      textAt += g.tokens.batch;
      return embedder.embedText(g.tokens, into);
    });
    const outs = await allSettledOrThrow([...textCalls, ...imageCalls]);
    const textOuts = outs.slice(0, textCalls.length);
    const imageOuts = outs.slice(textCalls.length);
    // Only model calls count: a batch served wholly by --reuse spends no inference time.
    if (outs.length > 0) timings.infer += performance.now() - t0;
    const textEmbedding = vectors.text?.subarray(0, n * dims).fill(0);
    const imageEmbedding = vectors.image?.subarray(0, n * dims).fill(0);
    if (textEmbedding !== undefined) {
      batch.textGroups.forEach((g, k) => scatter(textOuts[k] as Float32Array, g.rows, textEmbedding));
      for (const [r, v] of batch.reusedText) textEmbedding.set(v, r * dims);
    }
    if (imageEmbedding !== undefined) {
      imageOuts.forEach((out, k) => scatter(out, batch.imageRows.slice(k * settings.batchSize, (k + 1) * settings.batchSize), imageEmbedding));
      for (const [r, v] of batch.reusedImage) imageEmbedding.set(v, r * dims);
    }
    return {
      textSha256: batch.textSha256,
      imageSha256: batch.imageSha256,
      lineIndex: batch.lineIndex,
      offset: batch.offset,
      text: batch.text,
      errors: batch.errors,
      ...(textEmbedding !== undefined ? { textEmbedding } : {}),
      ...(imageEmbedding !== undefined ? { imageEmbedding } : {}),
    };
  }

  /** Places model rows at their batch rows in `out` (`n * dims`), normalizing when asked. */
  function scatter(values: Float32Array, rows: readonly number[], out: Float32Array): void {
    if (settings.normalize) l2NormalizeRows(values, dims);
    rows.forEach((r, j) => out.set(values.subarray(j * dims, (j + 1) * dims), r * dims));
  }
}

/** A zeroed float array in memory the inference thread can write into. */
function sharedFloats(length: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(length * Float32Array.BYTES_PER_ELEMENT));
}

/** Encodes on the event loop: only with a whole tokenizer, as tests and tools give. */
function inlineEncoder(tokenizer: TokenLayout): InlineTextEncoder {
  if (!(tokenizer instanceof ClipTokenizer)) throw new VecmillError('E_INTERNAL', 'the embed processor was given a token layout without a text encoder to fill it');
  return new InlineTextEncoder(tokenizer);
}

/** Adds a batch's rows to the split's counts; a row is reused when no tower ran for it. */
function count(counts: SplitCounts, batch: PreparedBatch): void {
  batch.errors.forEach((e, r) => {
    counts.rows++;
    if (e !== null) {
      counts.failedByReason[e.reason] = (counts.failedByReason[e.reason] ?? 0) + 1;
      return;
    }
    counts.ok++;
    const textDone = batch.textSha256[r] === null || batch.reusedText.has(r);
    const imageDone = batch.imageSha256[r] === null || batch.reusedImage.has(r);
    if (textDone && imageDone && (batch.reusedText.has(r) || batch.reusedImage.has(r))) counts.reused++;
  });
}

/** Awaits `work`; when it fails, lets the in-flight inference settle first, so no work of a failed attempt outlives it. */
async function settledWith<T>(work: Promise<T>, inflight: Promise<void> | undefined): Promise<T> {
  try {
    return await work;
  } catch (err) {
    await inflight?.catch(() => undefined);
    throw err;
  }
}

/** Like Promise.all, but rejects only once every call has settled: a failed batch leaves no model call behind. */
function allSettledOrThrow<T>(calls: readonly Promise<T>[]): Promise<T[]> {
  if (calls.length === 0) return Promise.resolve([]);
  return Promise.allSettled(calls).then((settled) => {
    const rejected = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (rejected !== undefined) throw rejected.reason;
    return settled.map((r) => (r as PromiseFulfilledResult<T>).value);
  });
}
