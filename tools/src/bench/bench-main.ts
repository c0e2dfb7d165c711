/**
 * `npm run bench`: throughput, memory and event-loop figures on the ViT-B/32-shaped generated
 * model and real photographs. Prints a table and writes bench/results.json. Nothing here is
 * asserted: the README records what it measured and on which machine. `--family chinese_clip`
 * or `--family siglip` measures that family's real-size generated model instead and writes
 * bench/results-FAMILY.json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tuneThreadPool } from '@vecmill/shared/config';
import { makeDataset } from '../datagen/make-dataset.js';
import { EmbeddingTableBuilder } from '@vecmill/shared/formats/embedding-table';
import { writeParquet } from '@vecmill/shared/formats/parquet-io';
import { ClipTokenizer } from '@vecmill/worker/model/clip-tokenizer';
import { detectProviderAvailability, planExecutionProviders } from '@vecmill/shared/model/execution-provider';
import { MODEL_FAMILIES, type ModelFamily } from '@vecmill/shared/model/model-family';
import { loadModelFolder, type ModelDtype } from '@vecmill/shared/model/model-folder';
import { OnnxEmbedder } from '@vecmill/worker/model/onnx-embedder';
import { PreprocessPool } from '@vecmill/worker/model/preprocess-pool';
import { pixelBatch } from '@vecmill/worker/model/image-preprocess';
import { cropBytes, type PixelBatch } from '@vecmill/worker/model/pixel-batch';
import { makeModel } from '../modelgen/make-model.js';
import { benchPhotos, captionOfLength, writePairsTsv } from './bench-data.js';
import { runPgvectorBench } from './pgvector-bench.js';
import { runPublishBench } from './publish-bench.js';
import { runHostThroughputBench } from './host-throughput-bench.js';
import { runQueueBench } from './queue-bench.js';
import { runTextMemoryBench } from './text-memory-bench.js';

tuneThreadPool();
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const work = join(root, 'bench', '.work');
const fixtures = existsSync(join(root, '..', 'shared', 'fixtures', 'README.md')) ? join(root, '..', 'shared', 'fixtures') : undefined;
const threads = availableParallelism();
const quick = process.argv.includes('--quick');
const deviceArg = process.argv[process.argv.indexOf('--device') + 1];
const device = process.argv.includes('--device') && (deviceArg === 'cuda' || deviceArg === 'auto') ? deviceArg : 'cpu';
const batch = device === 'cpu' ? 32 : 256;
const pairsRows = quick ? 64 : device === 'cpu' ? 1024 : 10_000;
const familyArg = process.argv[process.argv.indexOf('--family') + 1] ?? '';
const family: ModelFamily = process.argv.includes('--family') && (MODEL_FAMILIES as readonly string[]).includes(familyArg) ? (familyArg as ModelFamily) : 'clip';
/** Each family's real-size preset and the shared fixture tokenizer it is generated with (SigLIP's generator writes its own). */
const familyModels = {
  clip: { preset: 'vit-b-32', tokenizer: 'clip-tokenizer' },
  chinese_clip: { preset: 'vit-b-16', tokenizer: 'chinese-bert-tokenizer' },
  siglip: { preset: 'base-patch16-224', tokenizer: undefined },
} as const;

interface Row {
  readonly name: string;
  readonly value: string;
  readonly note: string;
}
const table: Row[] = [];
const results: Record<string, unknown> = {};
function record(key: string, name: string, value: number, unit: string, note = ''): void {
  results[key] = value;
  table.push({ name, value: `${value.toFixed(unit === 'x' || unit === '' ? 3 : 1)} ${unit}`.trim(), note });
  process.stderr.write(`  ${name}: ${value.toFixed(3)} ${unit} ${note}\n`);
}

async function ensureModel(): Promise<string> {
  const { preset, tokenizer: fixture } = familyModels[family];
  const dir = join(work, family === 'clip' ? `model-${preset}` : `model-${family}-${preset}`);
  if (!existsSync(join(dir, 'onnx', 'vision_model_quantized.onnx'))) {
    process.stderr.write(`generating the ${family} ${preset} model (about 10 s)…\n`);
    const tokenizer = fixtures === undefined || fixture === undefined ? undefined : join(fixtures, fixture, 'tokenizer.json');
    await makeModel({ family, preset, outDir: dir, seed: 7, ...(tokenizer !== undefined ? { tokenizerPath: tokenizer } : {}) });
  }
  return dir;
}

async function timeIt(fn: () => Promise<void>, minRuns = 3): Promise<number> {
  await fn();
  const t0 = performance.now();
  for (let i = 0; i < minRuns; i++) await fn();
  return (performance.now() - t0) / 1000 / minRuns;
}

function cosineRows(a: Float32Array, b: Float32Array, d: number): number {
  let worst = 1;
  for (let o = 0; o < a.length; o += d) {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let j = 0; j < d; j++) {
      dot += a[o + j]! * b[o + j]!;
      na += a[o + j]! ** 2;
      nb += b[o + j]! ** 2;
    }
    worst = Math.min(worst, dot / Math.sqrt(na * nb));
  }
  return worst;
}

async function openEmbedder(modelDir: string, dtype: ModelDtype) {
  const model = await loadModelFolder(modelDir, dtype, { text: true, image: true });
  const plan = planExecutionProviders(device, await detectProviderAvailability());
  if (plan.warning !== undefined) process.stderr.write(`warning: ${plan.warning}\n`);
  return { model, embedder: await OnnxEmbedder.open(model, { plan, intraOpThreads: threads }) };
}

/** A batch buffer the preprocessing threads write crops into directly. */
function sharedBytes(n: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(n));
}

async function main(): Promise<void> {
  await mkdir(work, { recursive: true });
  const modelDir = await ensureModel();
  const { source, photos } = await benchPhotos(fixtures);
  process.stderr.write(`photos: ${source}\n`);
  const { model, embedder } = await openEmbedder(modelDir, 'fp32');
  const tokenizer = new ClipTokenizer(model.tokenizerJson, model.tokenizerConfig, { contextLength: model.config.contextLength, family });
  const context = tokenizer.contextLength;
  const pool = new PreprocessPool(model.preprocessorConfig, { maxPixels: 50_000_000, fastDecode: false }, threads);
  const spec = pool.spec;
  const per = cropBytes(spec.outHeight, spec.outWidth);
  const photoBytes = (n: number): Buffer[] => Array.from({ length: n }, (_, i) => photos[i % photos.length]!.bytes);
  const batchOf = (crops: Uint8Array): PixelBatch => pixelBatch(spec, crops, batch);
  const pixels = batchOf(sharedBytes(batch * per));
  await pool.preprocessBatch(photoBytes(batch), false, pixels.crops);
  const captions = Array.from({ length: batch }, (_, r) => captionOfLength(photos[r % photos.length]!.caption, r));

  process.stderr.write('model-only ceiling…\n');
  const ids77 = tokenizer.encodeBatch(captions, context);
  const tImage = await timeIt(async () => void (await embedder.embedImages(pixels)));
  const tText77 = await timeIt(async () => void (await embedder.embedText(ids77)));
  const ceiling = batch / (tImage + tText77);
  record('model_ceiling_pairs_per_s', `model-only ceiling (text padded to ${context})`, ceiling, 'pairs/s', `batch ${batch}, ${threads} threads`);
  record('vision_images_per_s_fp32', 'vision tower fp32', batch / tImage, 'images/s');

  const trimmed = tokenizer.encodeBatch(captions, undefined);
  record('text_captions_per_s_77', `text tower, padded to ${context}`, batch / tText77, 'captions/s', `captions of ${Math.min(...trimmed.lengths)}-${Math.max(...trimmed.lengths)} tokens`);
  if (tokenizer.padLength(true, embedder) === undefined) {
    const tTextTrim = await timeIt(async () => void (await embedder.embedText(trimmed)));
    record('text_captions_per_s_trimmed', 'text tower, trimmed to the batch', batch / tTextTrim, 'captions/s', `padded to ${trimmed.seqLen}`);
    record('text_trim_speedup', 'trim speed-up', tText77 / tTextTrim, 'x');
  }

  process.stderr.write('decode-only…\n');
  const decodeImages = 4 * batch;
  const scratch = sharedBytes(decodeImages * per);
  const tDecode = await timeIt(async () => void (await pool.preprocessBatch(photoBytes(decodeImages), false, scratch)), 2);
  record('decode_images_per_s', 'decode + exact resize only', decodeImages / tDecode, 'images/s', `${threads} threads`);
  const fastPool = new PreprocessPool(model.preprocessorConfig, { maxPixels: 50_000_000, fastDecode: true }, threads);
  const fastPixels = sharedBytes(decodeImages * per);
  const tFast = await timeIt(async () => void (await fastPool.preprocessBatch(photoBytes(decodeImages), false, fastPixels)), 2);
  await fastPool.close();
  record('fast_decode_speedup', '--fast-decode speed-up', tDecode / tFast, 'x');
  const exactEmb = await embedder.embedImages(batchOf(scratch));
  const fastEmb = await embedder.embedImages(batchOf(fastPixels));
  record('fast_decode_min_cosine', '--fast-decode min cosine to exact', cosineRows(exactEmb, fastEmb, embedder.dims), '');

  process.stderr.write('q8…\n');
  const fp32Vision = await embedder.embedImages(pixels);
  const fp32Text = await embedder.embedText(ids77);
  await embedder.close();
  const q8 = await openEmbedder(modelDir, 'q8');
  const tImageQ8 = await timeIt(async () => void (await q8.embedder.embedImages(pixels)));
  record('vision_images_per_s_q8', 'vision tower q8', batch / tImageQ8, 'images/s');
  record('q8_vision_speedup', 'q8 vision speed-up over fp32', tImage / tImageQ8, 'x');
  record('q8_vision_min_cosine', 'q8 vision min cosine to fp32', cosineRows(fp32Vision, await q8.embedder.embedImages(pixels), q8.embedder.dims), '');
  record('q8_text_min_cosine', 'q8 text min cosine to fp32', cosineRows(fp32Text, await q8.embedder.embedText(ids77), q8.embedder.dims), '');
  await q8.embedder.close();
  await pool.close();

  process.stderr.write(`end to end: ${pairsRows} pairs with vecmill run in a child process…\n`);
  const tsv = join(work, 'pairs.tsv');
  await writePairsTsv(tsv, photos, pairsRows);
  const out = join(work, 'out-e2e');
  await rm(out, { recursive: true, force: true });
  const run = measureRun(['--input', tsv, '--model', modelDir, '--output', out, '--progress', 'json', '--device', device, '--batch-size', String(batch)]);
  record('e2e_pairs_per_s', 'end to end, vecmill run defaults', pairsRows / run.seconds, 'pairs/s', `${run.ok} ok rows, TSV to published output, startup included`);
  record('e2e_over_ceiling', 'end to end / model-only ceiling', pairsRows / run.seconds / ceiling, 'x', 'goal >= 0.9');
  record('e2e_embed_phase_pairs_per_s', 'embedding phase only (first split to merge)', pairsRows / run.embedSeconds, 'pairs/s', 'excludes model loading and the merge');
  record('max_event_loop_delay_ms', 'longest event-loop delay while embedding', run.maxEventLoopDelayMs, 'ms', 'goal < 100');
  record('e2e_peak_rss_mib', 'peak RSS of the run', run.maxRssBytes / 2 ** 20, 'MiB');
  results['e2e_stage_ms'] = run.timings;

  process.stderr.write('writers…\n');
  for (const dtype of ['float32', 'float16'] as const) {
    const rows = 20_000;
    const d = 512;
    const values = new Float32Array(rows * d).map((_, i) => Math.sin(i));
    const t1 = performance.now();
    const b = new EmbeddingTableBuilder({ dims: d, outDtype: dtype, hasText: true, hasImage: true, expectedRows: rows });
    b.appendBatch({ splitIndex: 0, source: 'x', lineIndex: Int32Array.from({ length: rows }, (_, i) => i), offset: Float64Array.from({ length: rows }, (_, i) => i * 100), text: Array.from({ length: rows }, (_, i) => `caption ${i}`), textEmbedding: values, imageEmbedding: values });
    const bytes = writeParquet(b.build());
    const secs = (performance.now() - t1) / 1000;
    record(`shard_writer_rows_per_s_${dtype}`, `shard writer (${dtype}, 512 dims, both towers)`, rows / secs, 'rows/s', `${(bytes.byteLength / 2 ** 20).toFixed(1)} MiB`);
  }
  record('merge_ms', 'merger on the end-to-end run', run.timings['merge'] ?? Number.NaN, 'ms');

  await runHostThroughputBench({ root, work, fixtures, record, quick });

  if (!quick) {
    process.stderr.write('memory flatness: 1 GB and 4 GB inputs with the tiny model…\n');
    const tiny = join(work, 'model-tiny');
    if (!existsSync(join(tiny, 'config.json'))) await makeModel({ preset: 'tiny', outDir: tiny, seed: 42 });
    const rss: number[] = [];
    for (const gb of [1, 4]) {
      const path = join(work, `mem-${gb}gb.tsv`);
      await makeDataset({ path, rows: 330 * gb, kind: 'pairs', imageSize: 1024, noise: 255, imageFormat: 'png', distinctImages: 4, seed: 5 });
      const m = measureRun(['--input', path, '--model', tiny, '--output', join(work, `mem-out-${gb}`), '--progress', 'json']);
      await rm(path, { force: true });
      await rm(join(work, `mem-out-${gb}`), { recursive: true, force: true });
      rss.push(m.maxRssBytes / 2 ** 20);
      record(`peak_rss_${gb}gb_mib`, `peak RSS, ${gb} GB pairs input (tiny model)`, m.maxRssBytes / 2 ** 20, 'MiB');
    }
    record('rss_4gb_over_1gb', 'peak RSS 4 GB / 1 GB', rss[1]! / rss[0]!, 'x', 'goal within 10%');
  }
  if (!quick) await runTextMemoryBench(root, work, record);

  if (!quick) {
    process.stderr.write('distributed mode: 1, 2 and 4 worker processes on the tiny model…\n');
    const q = await runQueueBench();
    for (const r of q.runs) record(`queue_rows_per_s_${r.processes}_workers`, `distributed, ${r.processes} worker process(es), tiny model`, r.rowsPerSecond, 'rows/s', `${r.splits} splits`);
    record('queue_noop_ms_per_job', 'queue overhead per no-op job', q.noopMsPerJob, 'ms');
    record('enqueue_50k_splits_s', `enqueue a ${q.enqueueSplits}-split flow`, q.enqueueSeconds, 's');
  }

  if (!quick) await runPgvectorBench(record);
  await runPublishBench(root, record, quick);

  const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${threads} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
  const doc = { date: new Date().toISOString(), machine, photos: source, batch, threads, results };
  await mkdir(join(root, 'bench'), { recursive: true });
  await writeFile(join(root, 'bench', family === 'clip' ? 'results.json' : `results-${family}.json`), `${JSON.stringify(doc, null, 2)}\n`);
  process.stdout.write(`\nvecmill bench — ${doc.date}\n${machine}\nvit-b-32-shaped generated model; ${source}\n\n`);
  process.stdout.write(`| measure | value | note |\n|---|---|---|\n${table.map((r) => `| ${r.name} | ${r.value} | ${r.note} |`).join('\n')}\n`);
}

/** What test/support/measure-run.ts prints about one `vecmill run` in its own process. */
interface MeasuredRun {
  readonly maxRssBytes: number;
  readonly rows: number;
  readonly ok: number;
  readonly seconds: number;
  readonly embedSeconds: number;
  readonly maxEventLoopDelayMs: number;
  readonly timings: Record<string, number>;
}

/** Runs `vecmill run` in a fresh process, so its memory and event loop are its own. */
function measureRun(args: readonly string[]): MeasuredRun {
  const r = spawnSync(process.execPath, [join(root, 'test', 'dist', 'support', 'measure-run.js'), ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`vecmill run failed: ${r.stderr.slice(-1000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as MeasuredRun;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
