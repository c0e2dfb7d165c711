import { loadWorkerConfig } from '@vecmill/shared/config';
import { startWorker } from '@vecmill/worker/worker-main';

/** Help text of `vecmill worker`, for the command table. */
export const help = `vecmill worker --redis redis://host:port [--concurrency N] [--queues embed,merge]
  Process embed and merge jobs until SIGTERM/SIGINT, then finish or hand back the jobs held
  and exit 0 (a second signal exits at once). Logs one JSON object per line on stderr.
  --redis            redis:// or rediss:// URL (or VECMILL_REDIS_URL)
  --redis-ca         PEM file of the CA of a rediss:// server
  --prefix           key prefix of the runs to serve (default vecmill)
  --queues           embed,merge (default both)
  --concurrency      embed jobs in flight (default 2; they share one inference thread)
  --device           cpu|cuda|auto (default cpu)
  --threads          onnxruntime intra-op threads (default: all cores)
  --decode-threads   image preprocessing threads (default: all cores)
  --metrics-port     serve Prometheus /metrics and /healthz on this port
  --lock-duration    ms a job stays locked without renewal (default 30000)
  --stalled-interval ms between checks for jobs of dead workers (default 30000)
  --max-stalled      stalls a job survives before it fails (default 3)
  --name             worker name recorded on jobs (default host:pid)`;

/** `vecmill worker`: runs until a signal, then drains; the first signal's handlers are removed so a second one kills as usual. */
export async function workerCommand(argv: readonly string[]): Promise<number> {
  const config = loadWorkerConfig(argv);
  const log = (event: string, fields: Record<string, unknown> = {}): void => {
    process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), event, ...fields })}\n`);
  };
  // Listen before starting: a signal that lands while the queues spin up must still drain.
  const stopped = new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      log('signal', { signal });
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      resolve();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  const worker = await startWorker(config, log);
  await stopped;
  await worker.close();
  return 0;
}
