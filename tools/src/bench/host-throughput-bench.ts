/**
 * Host-side throughput (issue 12): how many images and captions per second `vecmill run` turns into
 * vectors when the model costs next to nothing (the `host-bench` preset), as on a GPU node, beside
 * the peers measured in the same run: Pillow + numpy in 2 processes doing CLIPImageProcessor's
 * steps (when /usr/bin/python3 has PIL and numpy), and the tokenizer library alone on one core.
 * Runs are interleaved (vecmill, peer, vecmill, ...) so background load hits both alike, and CPU
 * seconds are reported beside wall time. Nothing is asserted.
 *
 * Part of `npm run bench`; `npm run bench:host` runs these rows alone (`-- --text-only`: only the
 * text rows; `-- --images`: only the image rows; `-- --quick`: fewer rows, one repetition).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Tokenizer } from '@huggingface/tokenizers';
import { jpegDecoderDescription } from '@vecmill/worker/model/decode-jpeg-native';
import { defaultDecodeOptions, parsePreprocessSpec, preprocessImage } from '@vecmill/worker/model/image-preprocess';
import { makeModel } from '../modelgen/make-model.js';
import { benchPhotos, captionOfLength } from './bench-data.js';

/** Where the rows go: bench-main's table, or this file's own when run alone. */
export type RecordRow = (key: string, name: string, value: number, unit: string, note?: string) => void;

/** What the host bench needs from its caller. */
export interface HostBenchContext {
  readonly root: string;
  readonly work: string;
  readonly fixtures: string | undefined;
  readonly record: RecordRow;
  /** Fewer rows and one repetition. */
  readonly quick: boolean;
  /** Only the text rows (`--text-only`): the image rows take minutes. */
  readonly textOnly?: boolean;
  /** Only the image rows (`--images`): the text rows take as long and change with other code. */
  readonly imagesOnly?: boolean;
}

/** One `vecmill run` as test/support/measure-run.ts reports it. */
interface MeasuredRun {
  readonly rows: number;
  readonly ok: number;
  readonly seconds: number;
  readonly cpuSeconds: number;
  /** CPU of the embedding phase only (no process start, model load or merge); Pillow's is its whole run. */
  readonly embedCpuSeconds: number;
}

/** Rows and seconds summed over repetitions. */
interface Tally {
  rows: number;
  seconds: number;
  cpuSeconds: number;
  embedCpuSeconds: number;
}

const python = '/usr/bin/python3';

/**
 * The peer: Hugging Face CLIPImageProcessor's steps on Pillow + numpy (base64 decode, open,
 * RGB, shortest edge 224 bicubic, center crop, rescale, normalize, CHW into a float32 batch),
 * over every `count`-th line of the TSV starting at `index`. Prints rows and its own CPU seconds.
 */
const pillowPeer = `
import base64, io, json, resource, sys
import numpy as np
from PIL import Image
path, index, count, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
mean = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)[:, None, None]
std = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)[:, None, None]
out = np.zeros((batch, 3, 224, 224), dtype=np.float32)
rows = 0
with open(path, 'rb') as f:
    for i, line in enumerate(f):
        if i % count != index:
            continue
        im = Image.open(io.BytesIO(base64.b64decode(line.rstrip(b'\\n')))).convert('RGB')
        w, h = im.size
        size = (224, int(224 * h / w)) if w <= h else (int(224 * w / h), 224)
        im = im.resize(size, Image.BICUBIC)
        left, top = (size[0] - 224) // 2, (size[1] - 224) // 2
        a = np.asarray(im)[top:top + 224, left:left + 224].astype(np.float32) * np.float32(1 / 255)
        out[rows % batch] = (a.transpose(2, 0, 1) - mean) / std
        rows += 1
r = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({'rows': rows, 'cpu': r.ru_utime + r.ru_stime}))
`;

/** Per-stage CPU of Pillow on one thread: decode to RGB, and the bicubic resize to a 224 short edge. */
const pillowStages = `
import io, json, sys, time
from PIL import Image
paths, reps = sys.argv[2:], int(sys.argv[1])
photos = [open(p, 'rb').read() for p in paths]
def cpu(fn):
    fn()
    t = time.process_time()
    for _ in range(reps):
        fn()
    return (time.process_time() - t) / reps / len(photos) * 1000
def size(w, h):
    return (224, int(224 * h / w)) if w <= h else (int(224 * w / h), 224)
images = [Image.open(io.BytesIO(p)).convert('RGB') for p in photos]
decode = cpu(lambda: [Image.open(io.BytesIO(p)).convert('RGB') for p in photos])
resize = cpu(lambda: [im.resize(size(*im.size), Image.BICUBIC) for im in images])
print(json.dumps({'decode': decode, 'resize': resize}))
`;

function hasPillow(): boolean {
  return spawnSync(python, ['-c', 'import PIL, numpy'], { stdio: 'ignore' }).status === 0;
}

function runProcess(cmd: string, args: readonly string[]): Promise<string> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolveRun(out) : reject(new Error(`${cmd} exited ${code}: ${err.slice(-800)}`))));
  });
}

/** Pillow in `processes` processes over the TSV at once; wall time from start to the last exit. */
async function runPillow(script: string, tsv: string, processes: number): Promise<MeasuredRun> {
  const t0 = performance.now();
  const outs = await Promise.all(Array.from({ length: processes }, (_, i) => runProcess(python, [script, tsv, String(i), String(processes), '256'])));
  const seconds = (performance.now() - t0) / 1000;
  const parsed = outs.map((o) => JSON.parse(o.trim()) as { rows: number; cpu: number });
  const rows = parsed.reduce((a, p) => a + p.rows, 0);
  const cpuSeconds = parsed.reduce((a, p) => a + p.cpu, 0);
  return { rows, ok: rows, seconds, cpuSeconds, embedCpuSeconds: cpuSeconds };
}

async function runVecmill(root: string, args: readonly string[], out: string): Promise<MeasuredRun> {
  await rm(out, { recursive: true, force: true });
  const stdout = await runProcess(process.execPath, [join(root, 'test', 'dist', 'support', 'measure-run.js'), ...args, '--output', out, '--progress', 'json']);
  await rm(out, { recursive: true, force: true });
  return JSON.parse(stdout.trim().split('\n').pop() as string) as MeasuredRun;
}

function add(t: Tally, r: MeasuredRun): void {
  t.rows += r.ok;
  t.seconds += r.seconds;
  t.cpuSeconds += r.cpuSeconds;
  t.embedCpuSeconds += r.embedCpuSeconds;
}

const tally = (): Tally => ({ rows: 0, seconds: 0, cpuSeconds: 0, embedCpuSeconds: 0 });

/** Lowest cosine between the exact and the --fast-decode pixel tensors of the same photos. */
async function fastDecodeMinCosine(photos: readonly { bytes: Buffer }[]): Promise<number> {
  const spec = parsePreprocessSpec({});
  let worst = 1;
  for (const { bytes } of photos) {
    const a = await preprocessImage(bytes, spec, defaultDecodeOptions);
    const b = await preprocessImage(bytes, spec, { ...defaultDecodeOptions, fastDecode: true });
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let i = 0; i < a.length; i++) {
      dot += a[i]! * b[i]!;
      na += a[i]! * a[i]!;
      nb += b[i]! * b[i]!;
    }
    worst = Math.min(worst, dot / Math.sqrt(na * nb));
  }
  return worst;
}

/** The tokenizer library alone, one thread: captions encoded per CPU-second, best of `reps`. */
function tokenizerAlone(tokenizerJson: unknown, tokenizerConfig: Record<string, unknown>, captions: readonly string[], reps: number): number {
  const tokenizer = new Tokenizer(tokenizerJson as object, tokenizerConfig);
  for (let i = 0; i < 2000; i++) tokenizer.encode(captions[i % captions.length]!);
  let best = 0;
  for (let r = 0; r < reps; r++) {
    const c0 = process.cpuUsage();
    for (const c of captions) tokenizer.encode(c);
    const used = process.cpuUsage(c0);
    best = Math.max(best, captions.length / ((used.user + used.system) / 1e6));
  }
  return best;
}

/** The files benchPhotos reads from the fixtures, in its order. */
function photoPaths(fixtures: string): string[] {
  const dir = join(fixtures, 'images');
  const broken = /truncated|cut_in_half|random_bytes|not_an_image|empty|one_pixel|panorama|tiny/;
  return readFileSync(join(dir, 'captions.tsv'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split('\t')[0] as string)
    .filter((f) => /\.(jpe?g)$/.test(f) && !broken.test(f))
    .map((f) => join(dir, f));
}

/** Records the host-throughput rows (see the file comment). */
export async function runHostThroughputBench(ctx: HostBenchContext): Promise<void> {
  const { root, work, fixtures, record, quick } = ctx;
  const reps = quick ? 1 : 2;
  const cores = availableParallelism();
  const modelDir = join(work, 'model-host-bench');
  const tokenizerPath = fixtures === undefined ? undefined : join(fixtures, 'clip-tokenizer', 'tokenizer.json');
  if (!existsSync(join(modelDir, 'onnx', 'vision_model.onnx'))) {
    await makeModel({ preset: 'host-bench', outDir: modelDir, seed: 11, ...(tokenizerPath !== undefined ? { tokenizerPath } : {}) });
  }
  const { source, photos } = await benchPhotos(fixtures);
  process.stderr.write(`host throughput: ${source}, host-bench model, ${cores} cores\n`);

  // As with text below: a GPU node embeds millions of images per run. At 11,400 rows (15-25 s a run
  // here) vecmill's fixed cost (process start, model load, the first batches' page faults and JIT
  // compilation: about a second, in which the first thousand images go at half the later rate) is
  // a twentieth of a run; at 3,800 rows it was a fifth, at 760 most of it. Written a block at a
  // time: the file (1.6 GB) is larger than a JavaScript string can be.
  const imagesTsv = join(work, 'host-images.tsv');
  const b64 = photos.map((p) => p.bytes.toString('base64'));
  const block = `${Array.from({ length: photos.length * 20 }, (_, r) => b64[r % b64.length]).join('\n')}\n`;
  const file = await open(imagesTsv, 'w');
  try {
    for (let k = 0; k < (quick ? 1 : 30); k++) await file.write(block);
  } finally {
    await file.close();
  }
  // A GPU node embeds millions of captions per run: 400,000 keep the fixed cost of a run (about
  // 0.9 s of process start, module loading, tokenizer and model loading, merge) under a fifth of
  // it, where at 50,000 it was half and the rows measured mostly startup.
  const textRows = quick ? 50_000 : 400_000;
  const captions = Array.from({ length: textRows }, (_, r) => captionOfLength(photos[r % photos.length]!.caption, r));
  const textTsv = join(work, 'host-text.tsv');
  await writeFile(textTsv, `${captions.join('\n')}\n`);

  // GPU-node settings: batches of 256, and one onnxruntime thread, since the model's own CPU cost
  // (here next to nothing, on a GPU node nothing) is not what these rows measure.
  const common = ['--model', modelDir, '--batch-size', '256', '--threads', '1'];
  const rate = (t: Tally): number => t.rows / t.seconds;
  const perCpu = (t: Tally): number => t.rows / t.embedCpuSeconds;
  async function measureText(): Promise<void> {
    const text = tally();
    let aloneBest = 0;
    const model = JSON.parse(readFileSync(join(modelDir, 'tokenizer.json'), 'utf8')) as unknown;
    const tokenizerConfig = JSON.parse(readFileSync(join(modelDir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    for (let r = 0; r < reps; r++) {
      process.stderr.write(`  text, round ${r + 1}/${reps}: vecmill, tokenizer alone…\n`);
      add(text, await runVecmill(root, ['--input', textTsv, '--kind', 'text', ...common], join(work, 'host-out-text')));
      aloneBest = Math.max(aloneBest, tokenizerAlone(model, tokenizerConfig, captions.slice(0, 20_000), 1));
    }
    record(
      'host_text_rows_per_s',
      'text, vecmill run',
      rate(text),
      'rows/s',
      `${text.rows} captions in ${reps} run(s), whole runs; ${(text.rows / text.cpuSeconds).toFixed(0)} per CPU-second of whole runs, ${perCpu(text).toFixed(0)} of the embedding phase`,
    );
    record('host_tokenizer_alone_per_cpu_s', 'tokenizer library alone, one core', aloneBest, 'captions/s', '@huggingface/tokenizers encode(), per CPU-second');
    record('host_text_over_tokenizer_core', 'text / tokenizer alone on one core', rate(text) / aloneBest, 'x', `goal >= 1.5 on ${cores} cores`);
  }
  if (ctx.imagesOnly !== true) await measureText();
  if (ctx.textOnly === true) return;

  const pillow = hasPillow();
  const script = join(work, 'pillow-peer.py');
  await writeFile(script, pillowPeer);
  const exact = tally();
  const fast = tally();
  const peer = tally();
  for (let r = 0; r < reps; r++) {
    process.stderr.write(`  images, round ${r + 1}/${reps}: vecmill exact, Pillow, vecmill --fast-decode…\n`);
    add(exact, await runVecmill(root, ['--input', imagesTsv, '--kind', 'image', ...common], join(work, 'host-out-exact')));
    if (pillow) add(peer, await runPillow(script, imagesTsv, cores));
    add(fast, await runVecmill(root, ['--input', imagesTsv, '--kind', 'image', '--fast-decode', ...common], join(work, 'host-out-fast')));
  }
  const wallNote = (t: Tally): string => `${t.rows} images in ${reps} run(s), whole runs; ${perCpu(t).toFixed(0)} per CPU-second of the embedding phase`;
  record('host_images_exact_per_s', 'images, exact path, vecmill run', rate(exact), 'images/s', wallNote(exact));
  record('host_images_fast_per_s', 'images, --fast-decode, vecmill run', rate(fast), 'images/s', wallNote(fast));
  record('host_fast_decode_min_pixel_cosine', '--fast-decode min cosine to exact (pixel tensors)', await fastDecodeMinCosine(photos), '', `${photos.length} photos`);
  if (pillow) {
    record('host_images_pillow_per_s', `images, Pillow + numpy in ${cores} processes`, rate(peer), 'images/s', wallNote(peer));
    record('host_images_exact_over_pillow', 'exact path / Pillow (images/s)', rate(exact) / rate(peer), 'x', `goal >= 1.5; per CPU-second ${(perCpu(exact) / perCpu(peer)).toFixed(2)}x`);
    record('host_images_fast_over_pillow', '--fast-decode / Pillow (images/s)', rate(fast) / rate(peer), 'x', `goal >= 3; per CPU-second ${(perCpu(fast) / perCpu(peer)).toFixed(2)}x`);
    record('host_cores_per_1000_images_pillow', 'cores per 1,000 images/s, Pillow', 1000 / perCpu(peer), 'cores', 'from CPU-seconds');
  } else {
    process.stderr.write(`  Pillow rows skipped: ${python} lacks PIL or numpy (apt-get install python3-pil python3-numpy)\n`);
  }
  record('host_cores_per_1000_images_exact', 'cores per 1,000 images/s, exact path', 1000 / perCpu(exact), 'cores', 'from CPU-seconds of the embedding phase, all threads');
  record('host_cores_per_1000_images_fast', 'cores per 1,000 images/s, --fast-decode', 1000 / perCpu(fast), 'cores', 'from CPU-seconds of the embedding phase, all threads');

  if (pillow && fixtures !== undefined) {
    const stagesScript = join(work, 'pillow-stages.py');
    await writeFile(stagesScript, pillowStages);
    const paths = photoPaths(fixtures);
    const mine = { decode: 0, resize: 0 };
    const theirs = { decode: 0, resize: 0 };
    for (let r = 0; r < reps; r++) {
      process.stderr.write(`  stages, round ${r + 1}/${reps}: vecmill and Pillow on one thread…
`);
      // In a fresh process, as Pillow's stages are: CPU time is per process, and this one has run the whole bench.
      const v = JSON.parse((await runProcess(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), 'vecmill-stages.js'), quick ? '2' : '5', ...paths])).trim()) as { decode: number; resize: number };
      const p = JSON.parse((await runProcess(python, [stagesScript, quick ? '2' : '5', ...paths])).trim()) as { decode: number; resize: number };
      mine.decode += v.decode / reps;
      mine.resize += v.resize / reps;
      theirs.decode += p.decode / reps;
      theirs.resize += p.resize / reps;
    }
    record('host_decode_cpu_ms_vecmill', `JPEG decode to RGB, one thread, vecmill (${jpegDecoderDescription()})`, mine.decode, 'ms', 'CPU per photo');
    record('host_decode_cpu_ms_pillow', 'JPEG decode to RGB, one thread, Pillow', theirs.decode, 'ms', `CPU per photo; vecmill/Pillow ${(mine.decode / theirs.decode).toFixed(2)}x`);
    record('host_resize_cpu_ms_vecmill', 'bicubic resize to 224 short edge, vecmill (WebAssembly SIMD)', mine.resize, 'ms', 'CPU per photo, whole resized image');
    record('host_resize_cpu_ms_pillow', 'bicubic resize to 224 short edge, Pillow', theirs.resize, 'ms', `CPU per photo; Pillow/vecmill ${(theirs.resize / mine.resize).toFixed(2)}x`);
  }
}

/**
 * `npm run bench:host`: these rows alone, printed as a table and (unless `--text-only` or `--images`)
 * written to bench/host-results.json. `-- --images` runs only the image rows, `-- --quick` fewer rows and one repetition.
 */
async function main(): Promise<void> {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const work = join(root, 'bench', '.work');
  await mkdir(work, { recursive: true });
  const fixtures = existsSync(join(root, '..', 'shared', 'fixtures', 'README.md')) ? join(root, '..', 'shared', 'fixtures') : undefined;
  const rows: { name: string; value: string; note: string }[] = [];
  const results: Record<string, number> = {};
  const record: RecordRow = (key, name, value, unit, note = '') => {
    results[key] = value;
    rows.push({ name, value: `${value.toFixed(unit === 'x' || unit === '' ? 4 : 1)} ${unit}`.trim(), note });
    process.stderr.write(`  ${name}: ${value.toFixed(3)} ${unit} ${note}\n`);
  };
  const textOnly = process.argv.includes('--text-only');
  const imagesOnly = process.argv.includes('--images');
  await runHostThroughputBench({ root, work, fixtures, record, quick: process.argv.includes('--quick'), textOnly, imagesOnly });
  const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${availableParallelism()} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
  const date = new Date().toISOString();
  // A text-only or image-only run leaves the recorded results of the full bench as they are.
  if (!textOnly && !imagesOnly) await writeFile(join(root, 'bench', 'host-results.json'), `${JSON.stringify({ date, machine, results }, null, 2)}\n`);
  process.stdout.write(`\nvecmill host throughput — ${date}\n${machine}\n\n| measure | value | note |\n|---|---|---|\n${rows.map((r) => `| ${r.name} | ${r.value} | ${r.note} |`).join('\n')}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`host bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
