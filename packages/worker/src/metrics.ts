import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ShardMarker } from './shard-commit.js';

/**
 * A worker's Prometheus metrics. One registry per worker (not prom-client's global one), so a
 * test or an embedding process can run several workers without their counters mixing.
 */
export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly rows = new Counter({ name: 'vecmill_rows_total', help: 'Rows embedded, by outcome', labelNames: ['status'] as const, registers: [this.registry] });
  private readonly rowErrors = new Counter({ name: 'vecmill_row_errors_total', help: 'Rows that became error rows, by reason', labelNames: ['reason'] as const, registers: [this.registry] });
  private readonly stage = new Histogram({
    name: 'vecmill_split_stage_seconds',
    help: 'Time a split spent per stage (read, decode, tokenize, infer, write)',
    labelNames: ['stage'] as const,
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300],
    registers: [this.registry],
  });
  private readonly batchStage = new Histogram({
    name: 'vecmill_batch_stage_seconds',
    help: 'Time one batch spent per stage (read, decode, tokenize, infer)',
    labelNames: ['stage'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  private readonly active = new Gauge({ name: 'vecmill_jobs_active', help: 'Jobs this worker is processing', labelNames: ['queue'] as const, registers: [this.registry] });
  private readonly finished = new Counter({ name: 'vecmill_jobs_finished_total', help: 'Jobs finished, by queue and outcome', labelNames: ['queue', 'outcome'] as const, registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'vecmill_' });
  }

  jobStarted(queue: string): void {
    this.active.inc({ queue });
  }

  /** `outcome` is completed, retry (a transient failure) or failed (final). */
  jobFinished(queue: string, outcome: 'completed' | 'retry' | 'failed'): void {
    this.active.dec({ queue });
    this.finished.inc({ queue, outcome });
  }

  /** Observes one batch's stage latencies as it completes, so dashboards see stalls while a split runs. */
  batchDone(stageMs: Readonly<Record<string, number>>): void {
    for (const [stage, ms] of Object.entries(stageMs)) this.batchStage.observe({ stage }, ms / 1000);
  }

  /** Counts a split this worker computed (reused shards were counted by whoever computed them). */
  splitComputed(marker: ShardMarker): void {
    this.rows.inc({ status: 'ok' }, marker.rowsOk);
    this.rows.inc({ status: 'failed' }, marker.rowsFailed);
    for (const [reason, n] of Object.entries(marker.failedByReason)) this.rowErrors.inc({ reason }, n);
    for (const [stage, ms] of Object.entries(marker.timings)) this.stage.observe({ stage }, ms / 1000);
  }
}

/** The HTTP endpoint: `/metrics` for Prometheus, `/healthz` for a liveness probe. */
export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Serves the metrics on 0.0.0.0:`port` (0 picks a free port). `/healthz` answers 200 while
 * `healthy()` is true (Redis reachable, workers running, every embedder has a live inference
 * thread) and 503 otherwise, so an orchestrator restarts a worker that lost Redis or its
 * inference for good rather than one that is merely busy.
 */
export async function serveMetrics(metrics: WorkerMetrics, port: number, healthy: () => boolean): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.url === '/metrics') {
      metrics.registry.metrics().then(
        (body) => {
          res.writeHead(200, { 'Content-Type': metrics.registry.contentType });
          res.end(body);
        },
        (err: unknown) => {
          res.writeHead(500);
          res.end(String(err));
        },
      );
      return;
    }
    if (req.url === '/healthz') {
      const ok = healthy();
      res.writeHead(ok ? 200 : 503, { 'Content-Type': 'text/plain' });
      res.end(ok ? 'ok\n' : 'unhealthy\n');
      return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
