/**
 * The text-only memory row of `npm run bench` (issue 10): peak RSS of `vecmill run` with default
 * settings over 25 MiB and 100 MiB of short captions (about 30 bytes, so a 64 MiB split holds
 * about two million rows) with a 768-dim text tower that costs almost nothing (the `wide-text`
 * preset), so the figure is vecmill's own memory: shards streamed in chunks, the merger reading
 * chunk by chunk. The goal: under 1.5 GiB, and the two runs within 10% of each other.
 */
import { spawnSync } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';
import { makeModel } from '../modelgen/make-model.js';

/** Records one bench figure (bench-main's `record`). */
export type RecordFigure = (key: string, name: string, value: number, unit: string, note?: string) => void;

/** What test/support/measure-run.js prints about one run (the fields this row reads). */
interface MeasuredRun {
  readonly maxRssBytes: number;
  readonly rows: number;
  readonly seconds: number;
}

const words = ['red', 'cotton', 'shirt', 'for', 'men', 'women', 'leather', 'bag', 'small', 'large', 'phone', 'case', 'black', 'steel', 'watch', 'kids', 'shoe', 'blue', 'lamp', 'desk'];

/** Writes about `bytes` bytes of one-column captions of 20-40 bytes, deterministic. */
async function writeCaptions(path: string, bytes: number): Promise<void> {
  const out = createWriteStream(path);
  let written = 0;
  let row = 0;
  while (written < bytes) {
    let block = '';
    for (let i = 0; i < 4096; i++, row++) {
      const n = 3 + (row % 3);
      const parts: string[] = [];
      for (let w = 0; w < n; w++) parts.push(words[(row * 7 + w * 13 + (row >> 5)) % words.length]!);
      block += `${parts.join(' ')} ${row}\n`;
    }
    written += Buffer.byteLength(block);
    if (!out.write(block)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

/** Runs `vecmill run` in a fresh process (test/support/measure-run.js), so the RSS is its own. */
function measureRun(root: string, args: readonly string[]): MeasuredRun {
  const r = spawnSync(process.execPath, [join(root, 'test', 'dist', 'support', 'measure-run.js'), ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`vecmill run failed: ${r.stderr.slice(-1000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as MeasuredRun;
}

/** Measures the text-only memory row into `record`; `work` is the bench's scratch folder, `root` the repository. */
export async function runTextMemoryBench(root: string, work: string, record: RecordFigure): Promise<void> {
  process.stderr.write('text-only memory: 25 MiB and 100 MiB of short captions, 768-dim text tower…\n');
  const model = join(work, 'model-wide-text');
  if (!existsSync(join(model, 'onnx', 'text_model.onnx'))) await makeModel({ preset: 'wide-text', outDir: model, seed: 11, variants: ['fp32'] });
  const rss: number[] = [];
  for (const mib of [25, 100]) {
    const input = join(work, `captions-${mib}mib.tsv`);
    const out = join(work, `text-mem-out-${mib}`);
    await mkdir(work, { recursive: true });
    await writeCaptions(input, mib * 2 ** 20);
    await rm(out, { recursive: true, force: true });
    const m = measureRun(root, ['--input', input, '--model', model, '--output', out, '--progress', 'json']);
    await rm(out, { recursive: true, force: true });
    await rm(input, { force: true });
    rss.push(m.maxRssBytes / 2 ** 20);
    record(`peak_rss_text_${mib}mib_mib`, `peak RSS, ${mib} MiB of short captions (768-dim text tower)`, m.maxRssBytes / 2 ** 20, 'MiB', `${m.rows} rows, ${m.seconds.toFixed(0)} s, goal < 1536`);
  }
  record('rss_text_100mib_over_25mib', 'peak RSS text 100 MiB / 25 MiB', rss[1]! / rss[0]!, 'x', 'goal within 10%');
}
