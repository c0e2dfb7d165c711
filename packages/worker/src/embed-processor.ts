import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { InputError, RowError, type RowErrorReason } from '@vecmill/shared/errors';
import { EmbeddingTableBuilder, type RowFailure } from '@vecmill/shared/formats/embedding-table';
import { writeParquet } from '@vecmill/shared/formats/parquet-io';
import type { ClipTokenizer } from '@vecmill/shared/model/clip-tokenizer';
import { l2NormalizeRows, type Embedder } from '@vecmill/shared/model/embedder';
import { preprocessImageInto, type PreprocessSpec } from '@vecmill/shared/model/image-preprocess';
import type { PlannedInput, RunPlan } from '@vecmill/shared/run-plan';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { readSplitLines, type SplitLine } from '@vecmill/shared/tsv/line-reader';
import { parseRow } from '@vecmill/shared/tsv/row-parser';
import { commitShard, readShardMarker, type ShardMarker, type StageTimings } from './shard-commit.js';

/** The ports an embed processor works through; wiring differs between `run`, `worker` and tests. */
export interface EmbedProcessorDeps {
  readonly plan: RunPlan;
  /** Opens the store that holds a planned input and names its key there. */
  readonly openInput: (input: PlannedInput) => { store: ObjectStore; key: string };
  readonly output: ObjectStore;
  readonly embedder: Embedder;
  /** Present when the input has text. */
  readonly tokenizer: ClipTokenizer | undefined;
  /** Present when the input has images. */
  readonly preprocess: PreprocessSpec | undefined;
  /** Images decoded at once; sized to libuv's pool, where sharp works. */
  readonly decodeConcurrency: number;
}

/** Hooks a queue passes in to report progress and to stop a doomed attempt early. */
export interface EmbedHooks {
  readonly onProgress?: (rowsDone: number) => void;
}

/** What processing a split produced. */
export interface EmbedResult {
  readonly marker: ShardMarker;
  /** False when an earlier attempt had already committed the split (nothing was recomputed). */
  readonly computed: boolean;
}

/**
 * One batch of rows after decoding and tokenizing, ready for the model. Row `r` of the batch is
 * line `lineIndex[r]` of the split; `textRows` / `imageRows` name the rows each model input
 * belongs to, in input order.
 */
interface PreparedBatch {
  readonly lineIndex: number[];
  readonly offset: number[];
  readonly text: (string | null)[];
  readonly errors: (RowFailure | null)[];
  readonly textRows: number[];
  readonly tokens: ReturnType<ClipTokenizer['encodeBatch']> | undefined;
  readonly imageRows: number[];
  readonly pixels: Float32Array | undefined;
}

/** Rows and failures of a split so far. */
interface SplitCounts {
  rows: number;
  ok: number;
  failedByReason: Record<string, number>;
}

/**
 * Embeds one split and commits its shard. Lines stream in; each batch is decoded and tokenized
 * while the previous batch runs on the inference thread, so the model never waits for sharp.
 * Rows that cannot be embedded become error rows; only storage and model failures throw.
 */
export function createEmbedProcessor(deps: EmbedProcessorDeps): (splitIndex: number, hooks?: EmbedHooks) => Promise<EmbedResult> {
  const { plan, embedder, tokenizer, preprocess } = deps;
  const settings = plan.settings;
  const dims = embedder.dims;
  const padTo = settings.trimText && embedder.textInput.dynamic ? undefined : (embedder.textInput.fixedLength ?? tokenizer?.contextLength);
  const pixelsPerImage = preprocess === undefined ? 0 : 3 * preprocess.outHeight * preprocess.outWidth;
  const decodeOptions = { maxPixels: settings.maxPixels, fastDecode: settings.fastDecode };

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
    const builder = new EmbeddingTableBuilder({ dims, outDtype: settings.outDtype, hasText: tokenizer !== undefined, hasImage: preprocess !== undefined });
    const counts: SplitCounts = { rows: 0, ok: 0, failedByReason: {} };
    const splitRange = { index: split.index, key, etag: input.etag, start: split.start, end: split.end, objectSize: input.size };
    const lines = readSplitLines(store, splitRange, { maxLineBytes: settings.maxLineBytes })[Symbol.asyncIterator]();

    let inflight: Promise<void> | undefined;
    let lineIndex = 0;
    for (;;) {
      const t0 = performance.now();
      const batch: SplitLine[] = [];
      while (batch.length < settings.batchSize) {
        const next = await lines.next();
        if (next.done === true) break;
        batch.push(next.value);
      }
      timings.read += performance.now() - t0;
      if (batch.length === 0) break;
      const prepared = await prepareBatch(batch, lineIndex, timings);
      lineIndex += batch.length;
      if (inflight !== undefined) await inflight;
      inflight = infer(prepared, timings).then((embedded) => {
        builder.appendBatch({ splitIndex, source: input.uri, ...embedded });
        count(counts, prepared.errors);
        hooks.onProgress?.(counts.rows);
      });
    }
    if (inflight !== undefined) await inflight;

    const tw = performance.now();
    const data = writeParquet(builder.build());
    const result = await commitShard(deps.output, {
      runId: plan.runId,
      splitIndex,
      attempt: randomUUID(),
      data,
      rowsIn: counts.rows,
      rowsOk: counts.ok,
      failedByReason: counts.failedByReason,
      timings: () => ({ ...timings, write: performance.now() - tw }),
      worker: `${hostname()}:${process.pid}`,
    });
    return { marker: result.marker, computed: result.committed };
  };

  async function prepareBatch(lines: readonly SplitLine[], firstLine: number, timings: Record<keyof StageTimings, number>): Promise<PreparedBatch> {
    const b: PreparedBatch = { lineIndex: [], offset: [], text: [], errors: [], textRows: [], tokens: undefined, imageRows: [], pixels: undefined };
    const texts: string[] = [];
    const images: Buffer[] = [];
    const imageRows: number[] = [];
    lines.forEach((line, r) => {
      b.lineIndex.push(firstLine + r);
      b.offset.push(line.offset);
      if (line.tooLong === true) {
        b.text.push(null);
        b.errors.push({ reason: 'line_too_long', message: `line is longer than --max-line-bytes ${settings.maxLineBytes}` });
        return;
      }
      const parsed = parseRow(line.bytes, settings.kind);
      if (!parsed.ok) {
        b.text.push(parsed.text ?? null);
        b.errors.push({ reason: parsed.reason, message: parsed.message });
        return;
      }
      b.text.push(parsed.text ?? null);
      b.errors.push(null);
      if (parsed.image !== undefined) {
        imageRows.push(r);
        images.push(parsed.image);
      }
      if (parsed.text !== undefined) texts.push(parsed.text);
    });

    let pixels: Float32Array | undefined;
    const decodedRows: number[] = [];
    if (images.length > 0 && preprocess !== undefined) {
      const t0 = performance.now();
      const buffer = new Float32Array(images.length * pixelsPerImage);
      const okSlots = await mapLimit(images, deps.decodeConcurrency, async (bytes, slot) => {
        try {
          await preprocessImageInto(bytes, preprocess, decodeOptions, buffer, slot * pixelsPerImage);
          return true;
        } catch (err) {
          const reason: RowErrorReason = err instanceof RowError ? err.reason : 'corrupt_image';
          b.errors[imageRows[slot] as number] = { reason, message: (err as Error).message };
          return false;
        }
      });
      let write = 0;
      okSlots.forEach((ok, slot) => {
        if (!ok) return;
        if (write !== slot) buffer.copyWithin(write * pixelsPerImage, slot * pixelsPerImage, (slot + 1) * pixelsPerImage);
        decodedRows.push(imageRows[slot] as number);
        write++;
      });
      pixels = write === 0 ? undefined : buffer.subarray(0, write * pixelsPerImage);
      timings.decode += performance.now() - t0;
    }

    const t1 = performance.now();
    const textRows: number[] = [];
    const keepTexts: string[] = [];
    if (tokenizer !== undefined) {
      b.errors.forEach((e, r) => {
        if (e !== null) return;
        textRows.push(r);
        keepTexts.push(b.text[r] ?? '');
      });
    }
    const tokens = tokenizer !== undefined && keepTexts.length > 0 ? tokenizer.encodeBatch(keepTexts, padTo) : undefined;
    timings.tokenize += performance.now() - t1;
    return { ...b, textRows, tokens, imageRows: decodedRows, pixels };
  }

  /** Runs both towers for a batch and lays the vectors out row by row, as the table builder takes them. */
  async function infer(batch: PreparedBatch, timings: Record<keyof StageTimings, number>) {
    const t0 = performance.now();
    const [textOut, imageOut] = await Promise.all([
      batch.tokens === undefined ? undefined : embedder.embedText(batch.tokens),
      batch.pixels === undefined || preprocess === undefined
        ? undefined
        : embedder.embedImages(copyOwned(batch.pixels), batch.imageRows.length, preprocess.outHeight, preprocess.outWidth),
    ]);
    timings.infer += performance.now() - t0;
    const n = batch.lineIndex.length;
    return {
      lineIndex: batch.lineIndex,
      offset: batch.offset,
      text: batch.text,
      errors: batch.errors,
      ...(tokenizer !== undefined ? { textEmbedding: scatter(textOut, batch.textRows, n) } : {}),
      ...(preprocess !== undefined ? { imageEmbedding: scatter(imageOut, batch.imageRows, n) } : {}),
    };
  }

  /** Places model rows at their batch rows (`n * dims`, zeros elsewhere), normalizing when asked. */
  function scatter(values: Float32Array | undefined, rows: readonly number[], n: number): Float32Array {
    const out = new Float32Array(n * dims);
    if (values === undefined) return out;
    if (settings.normalize) l2NormalizeRows(values, dims);
    rows.forEach((r, j) => out.set(values.subarray(j * dims, (j + 1) * dims), r * dims));
    return out;
  }
}

/** Adds a batch's rows to the split's counts. */
function count(counts: SplitCounts, errors: readonly (RowFailure | null)[]): void {
  for (const e of errors) {
    counts.rows++;
    if (e === null) counts.ok++;
    else counts.failedByReason[e.reason] = (counts.failedByReason[e.reason] ?? 0) + 1;
  }
}

/** A transferable copy when the array is a view into a larger buffer (transfer moves whole buffers). */
function copyOwned(a: Float32Array): Float32Array {
  return a.byteOffset === 0 && a.byteLength === a.buffer.byteLength ? a : a.slice();
}

/** Runs `fn` over `items` with at most `limit` in flight; results keep the input order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T, i);
    }
  });
  await Promise.all(lanes);
  return out;
}
