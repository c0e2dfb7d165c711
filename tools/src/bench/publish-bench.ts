/**
 * The publish bench: how long `mergeRun` takes once every split is committed, on the S3 test
 * server behind a proxy adding 20 ms to every request (the round trip a worker sees from S3), for
 * a 400-split run committed through the real write path; and a 50,000-split publish simulated on
 * the in-memory store with 20 ms per call and per listing page. The S3 test server, its proxy and
 * the synthetic runs are test support (test/support/publish-bench-run.ts), loaded from the
 * compiled tests that `tsc -b` builds beside this.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { RecordFigure } from './text-memory-bench.js';

/** One publish measured (by test/support/publish-bench-run.ts): how long `mergeRun` took, over how many splits, files and requests. */
export interface PublishFigure {
  readonly splits: number;
  readonly files: number;
  readonly requests: number;
  readonly seconds: number;
  readonly latencyMs: number;
  readonly where: string;
  readonly loadAverage: readonly number[];
}
interface PublishBenchRun {
  measureS3Publish(splits: number, latencyMs: number): Promise<PublishFigure>;
  simulatePublish(splits: number, latencyMs: number): Promise<PublishFigure>;
}

/** Round trip added to every request, as a worker sees S3 from its region. */
const LATENCY_MS = 20;

/** Runs the publish bench and records its figures; `quick` measures only the 400-split publish. */
export async function runPublishBench(root: string, record: RecordFigure, quick = false): Promise<void> {
  const helper = join(root, 'test', 'dist', 'support', 'publish-bench-run.js');
  if (!existsSync(helper)) throw new Error(`${helper} is missing: run \`npx tsc -b\` first (the publish bench uses the S3 test server from test/support)`);
  const run = (await import(pathToFileURL(helper).href)) as PublishBenchRun;
  const note = (f: PublishFigure): string => `${f.files} files, ${f.requests} requests, +${f.latencyMs} ms each; ${f.where}; load ${f.loadAverage.map((l) => l.toFixed(2)).join(' ')}`;
  process.stderr.write(`publish: committing 400 splits on the S3 test server, then publishing through +${LATENCY_MS} ms per request…\n`);
  const s3 = await run.measureS3Publish(400, LATENCY_MS);
  record('publish_400_splits_s3_s', 'publish 400 splits (S3 test server, +20 ms/request)', s3.seconds, 's', `goal < 2 s; ${note(s3)}`);
  if (quick) return;
  process.stderr.write(`publish: 50,000 splits simulated in memory, +${LATENCY_MS} ms per call…\n`);
  const sim = await run.simulatePublish(50_000, LATENCY_MS);
  record('publish_50k_splits_sim_s', 'publish 50,000 splits (simulated, +20 ms/call)', sim.seconds, 's', note(sim));
}
