/**
 * `vecmill export pgvector` benchmark: rows/s of the load into PGlite (PostgreSQL 17 in
 * WebAssembly with pgvector, served over TCP by pglite-socket in its own process, the same server
 * the tests use) at several `--batch-rows`, the HNSW build after it, and the exporter's peak RSS
 * on two output sizes (memory must not grow with the output). ViT-B/32 shapes: 512 dims, image
 * and text columns. Figures go to the README; nothing here is asserted.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { loadRunConfig } from '@vecmill/shared/config';
import { makeDataset } from '../datagen/make-dataset.js';
import type { Manifest } from '@vecmill/shared/manifest';
import { makeModel } from '../modelgen/make-model.js';
import { PublishedOutput } from '@vecmill/retrieval/output-reader';
import { exportToPgvector } from '@vecmill/retrieval/pgvector-export';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { runEmbedded } from 'vecmill/embedded-run';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const cli = join(root, 'packages', 'cli', 'bin', 'vecmill.js');

/** Records one figure of the bench table (bench-main's `record`). */
export type RecordFigure = (key: string, name: string, value: number, unit: string, note?: string) => void;

/** What the pgvector benchmark loads. */
export interface PgvectorBenchOptions {
  /** Rows of the output loaded at each batch size (default 10,000); the memory figure compares this and 4x as many. */
  readonly rows?: number;
  /** Embedding dimensions (default 512, ViT-B/32). */
  readonly dims?: number;
  /** `--batch-rows` values measured (default 100, 500, 1000, 2000, 5000). */
  readonly batchRows?: readonly number[];
}

/** The test helpers the bench reuses, compiled with the tests (`tsc -b` builds both). */
interface TestSupport {
  startPgliteServer(): Promise<{ url: string; stop(): Promise<void> }>;
  writeSyntheticOutput(dir: string, base: Manifest, v: { dims: number; image?: Float32Array; text?: Float32Array; rowsPerPart?: number }): Promise<void>;
  randomUnitVectors(rows: number, dims: number, seed: number): Float32Array;
}

async function testSupport(): Promise<TestSupport> {
  const support = (name: string): Promise<Record<string, unknown>> => import(pathToFileURL(join(root, 'test', 'dist', 'support', name)).href) as Promise<Record<string, unknown>>;
  return { ...(await support('pglite-server.js')), ...(await support('synthetic-output.js')) } as unknown as TestSupport;
}

/** Runs the benchmark and records its figures. */
export async function runPgvectorBench(record: RecordFigure, options: PgvectorBenchOptions = {}): Promise<void> {
  const rows = options.rows ?? 10_000;
  const dims = options.dims ?? 512;
  const batchSizes = options.batchRows ?? [100, 500, 1000, 2000, 5000];
  const support = await testSupport();
  const work = await mkdtemp(join(tmpdir(), 'vecmill-pgvector-bench-'));
  const server = await support.startPgliteServer();
  try {
    const base = await baseManifest(work);
    const output = async (n: number): Promise<string> => {
      const dir = join(work, `out-${n}`);
      await support.writeSyntheticOutput(dir, base, { dims, image: support.randomUnitVectors(n, dims, 1), text: support.randomUnitVectors(n, dims, 2), rowsPerPart: 5000 });
      return dir;
    };
    const main = await PublishedOutput.open(new LocalStore(await output(rows)));
    let best = { batchRows: 0, rowsPerSecond: 0 };
    for (const batchRows of batchSizes) {
      const r = await exportToPgvector(main, { url: server.url, table: `bench_${batchRows}`, batchRows, index: 'none' });
      const rowsPerSecond = r.loaded / r.seconds;
      record(`pgvector_load_rows_per_s_batch_${batchRows}`, `export pgvector load, --batch-rows ${batchRows}`, rowsPerSecond, 'rows/s', `${rows} rows, ${dims} dims x 2 columns, PGlite`);
      if (rowsPerSecond > best.rowsPerSecond) best = { batchRows, rowsPerSecond };
    }
    record('pgvector_load_rows_per_s', 'export pgvector load, best batch size', best.rowsPerSecond, 'rows/s', `--batch-rows ${best.batchRows}`);
    const reload = await exportToPgvector(main, { url: server.url, table: `bench_${best.batchRows}`, batchRows: best.batchRows, index: 'none' });
    record('pgvector_reload_rows_per_s', 'export pgvector, reload of an unchanged output', reload.loaded / reload.seconds, 'rows/s', `${reload.written} rows rewritten`);
    const hnsw = await exportToPgvector(main, { url: server.url, table: `bench_${best.batchRows}`, batchRows: best.batchRows, index: 'hnsw' });
    record('pgvector_hnsw_build_s', 'export pgvector, HNSW build on both columns', hnsw.seconds - reload.seconds, 's', `${rows} rows, m 16, ef_construction 64 (reload time subtracted)`);
    for (const n of [rows, rows * 4]) {
      const peak = await peakRss(['export', 'pgvector', await output(n), '--url', server.url, '--table', `rss_${n}`, '--batch-rows', String(best.batchRows), '--index', 'none']);
      record(`pgvector_export_peak_rss_${n}_mib`, `export pgvector peak RSS, ${n}-row output`, peak / 2 ** 20, 'MiB', 'parts of 5000 rows');
    }
  } finally {
    await server.stop();
    await rm(work, { recursive: true, force: true });
  }
}

/** A real run's manifest (model, settings) for the synthetic outputs to copy. */
async function baseManifest(work: string): Promise<Manifest> {
  const model = join(work, 'model');
  await makeModel({ preset: 'tiny', outDir: model, seed: 42, variants: ['fp32'] });
  await makeDataset({ path: join(work, 'seed.tsv'), rows: 4, kind: 'pairs', seed: 1, imageSize: 32 });
  const config = loadRunConfig(['--input', join(work, 'seed.tsv'), '--model', model, '--output', join(work, 'seed-out'), '--progress', 'json', '--threads', '1'], {});
  await runEmbedded(config, () => undefined);
  return (await PublishedOutput.open(new LocalStore(join(work, 'seed-out')))).manifest;
}

/** Runs the CLI in its own process and samples its resident memory until it exits. */
async function peakRss(args: readonly string[]): Promise<number> {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, CI: '1' } });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-2000)));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let peak = 0;
  let done = false;
  void exited.then(() => (done = true));
  while (!done) {
    try {
      const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (hwm !== null) peak = Math.max(peak, Number(hwm[1]) * 1024);
    } catch {
      break;
    }
    await sleep(50);
  }
  if ((await exited) !== 0) throw new Error(`vecmill export pgvector failed: ${stderr}`);
  return peak;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const rows = process.argv[2] !== undefined ? Number(process.argv[2]) : undefined;
  await runPgvectorBench((_key, name, value, unit, note = '') => process.stdout.write(`${name}: ${value.toFixed(1)} ${unit} ${note}\n`), rows !== undefined ? { rows } : {});
}
