import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { after, before, describe, it } from 'node:test';
import { openOutput, planFromRunConfig } from '@vecmill/producer/plan-from-config';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import { ModelError, VecmillError } from '@vecmill/shared/errors';
import type { Manifest } from '@vecmill/shared/manifest';
import type { TokenBatch } from '@vecmill/worker/model/clip-tokenizer';
import type { Embedder } from '@vecmill/worker/model/embedder';
import type { ImagePreprocessor } from '@vecmill/worker/model/image-preprocessor';
import { OnnxEmbedder } from '@vecmill/worker/model/onnx-embedder';
import { PreprocessPool } from '@vecmill/worker/model/preprocess-pool';
import { SplitFailedError } from '@vecmill/shared/queue/local-queue';
import type { RunEvent } from '@vecmill/shared/queue/run-events';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { readShardMarker } from '@vecmill/worker/shard-commit';
import { runEmbedded } from 'vecmill/embedded-run';
import { readOutputRows } from '../support/distributed-helpers.js';
import { runWiredFlow } from '../support/wired-flow.js';
import { eventLog, runConfig } from '../support/run-helpers.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

/**
 * Failures of ours during a split (a preprocessing thread that dies, a pool closed under the
 * split, an inference call that rejects while the next batch is being prepared) fail the attempt:
 * nothing is committed as error rows, nothing is left unhandled, and the retried run publishes
 * exactly what a clean run publishes. The embedded run's own wiring is rebuilt here so the test
 * can reach the pool's threads and wrap the embedder.
 */

/** Faults a wired run injects through its ports. */
interface Faults {
  /** Wraps the real embedder. */
  readonly embedder?: (inner: Embedder) => Embedder;
  /**
   * Called just before the n-th batch of images (0-based) goes to the pool, with the pool's threads
   * so far. Anything it starts synchronously (a `terminate()`) has taken effect when the batch is sent.
   */
  readonly beforeBatch?: (n: number, threads: readonly Worker[]) => void;
  /** Called as soon as the n-th batch of images (0-based) is with the pool, with the pool's threads so far and a way to replace the pool. */
  readonly duringBatch?: (n: number, pool: PreprocessPool, threads: readonly Worker[], replacePool: () => void) => Promise<void> | void;
}

describe('a failure of ours fails the attempt, never a row', { timeout: 180_000 }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let model: string;
  let input: string;
  let reference: Awaited<ReturnType<typeof readOutputRows>>;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => void unhandled.push(reason);

  before(async () => {
    ({ dir, cleanup } = await makeTempDir('attempt-failures-'));
    model = await tinyModelDir();
    input = join(dir, 'pairs.tsv');
    await makeDataset({ path: input, rows: 48, kind: 'pairs', seed: 5, imageSize: 40 });
    const out = join(dir, 'clean');
    await runEmbedded(runConfig(['--input', input, '--output', out, '--model', model, '--split-size', '4KiB', '--batch-size', '4']), eventLog().sink, dir);
    reference = await readOutputRows(new LocalStore(out));
    process.on('unhandledRejection', onUnhandled);
  });
  after(async () => {
    process.off('unhandledRejection', onUnhandled);
    await cleanup();
  });

  /** `vecmill run`'s wiring with faults injected; resolves with the run's events and manifest, or its error. */
  async function wiredRun(out: string, faults: Faults): Promise<{ events: RunEvent[]; manifest?: Manifest; error?: unknown }> {
    const config = runConfig(['--input', input, '--output', out, '--model', model, '--split-size', '4KiB', '--batch-size', '4']);
    const opened = openOutput(config, dir);
    const { plan, model: folder, providerPlan } = await planFromRunConfig(config, opened, dir, () => undefined);
    const threads: Worker[] = [];
    const newPool = (): PreprocessPool =>
      new PreprocessPool(folder.preprocessorConfig, { maxPixels: plan.settings.maxPixels, fastDecode: plan.settings.fastDecode }, 2, { onThreadStart: (w) => threads.push(w) });
    let pool = newPool();
    const pools = [pool];
    let batches = 0;
    const replacePool = (): void => {
      pool = newPool();
      pools.push(pool);
    };
    const preprocessor: ImagePreprocessor = {
      spec: pool.spec,
      preprocessBatch: async (fields, base64, out) => {
        const n = batches++;
        faults.beforeBatch?.(n, threads);
        const done = pool.preprocessBatch(fields, base64, out);
        // Handled at once: the fault may make it reject before it is returned.
        done.catch(() => undefined);
        await faults.duringBatch?.(n, pool, threads, replacePool);
        return done;
      },
      close: async () => undefined,
    };
    const real = await OnnxEmbedder.open(folder, { plan: providerPlan, intraOpThreads: 1 });
    const embedder = faults.embedder?.(real) ?? real;
    const { events, sink } = eventLog();
    try {
      const manifest = await runWiredFlow({ plan, folder, output: opened.output, dir, input: 'pairs.tsv', embedder, images: preprocessor, attempts: 3, sink });
      return { events, manifest };
    } catch (error) {
      return { events, error };
    } finally {
      await real.close();
      for (const p of pools) await p.close();
    }
  }

  /** The run retried a split, published no error rows, and its rows equal the clean run's. */
  async function assertRetriedAndClean(out: string, run: Awaited<ReturnType<typeof wiredRun>>, why: RegExp): Promise<void> {
    assert.equal(run.error, undefined, `the run publishes: ${String(run.error)}`);
    const retries = run.events.filter((e): e is Extract<RunEvent, { type: 'split-retry' }> => e.type === 'split-retry');
    assert.ok(retries.length >= 1, 'an attempt failed and was retried');
    assert.match(retries[0]!.error, why);
    assert.equal(run.manifest?.rows.failed, 0, 'no row was committed as an error');
    assert.deepEqual(await readOutputRows(new LocalStore(out)), reference);
    assert.deepEqual(unhandled, [], 'no unhandled rejection');
  }

  it('a preprocessing thread terminated mid-split: the attempt is retried on a replacement thread', async () => {
    const out = join(dir, 'thread-killed');
    // The thread is told to stop before the batch is sent, so it can never answer its share of the
    // batch (a worker runs no more JavaScript once terminate() is called); terminating it after the
    // batch was sent raced the thread, which could reply first and leave nothing to fail.
    const run = await wiredRun(out, {
      beforeBatch: (n, threads) => {
        if (n === 2) void threads[0]!.terminate();
      },
    });
    await assertRetriedAndClean(out, run, /preprocessing thread exited/);
  });

  it('the pool closed mid-split: the attempt fails, nothing is committed, the retry publishes the clean output', async () => {
    const out = join(dir, 'pool-closed');
    const run = await wiredRun(out, {
      duringBatch: async (n, pool, _threads, replacePool) => {
        if (n !== 2) return;
        await pool.close();
        replacePool();
      },
    });
    await assertRetriedAndClean(out, run, /preprocessing pool is closed/);
  });

  it('an inference call that rejects while the next batch is prepared fails only that attempt', async () => {
    const out = join(dir, 'infer-rejects');
    let calls = 0;
    const run = await wiredRun(out, {
      embedder: (inner) => rejectingEmbedder(inner, () => ++calls === 5, () => new VecmillError('E_INTERNAL', 'the inference thread exited (code 1)')),
    });
    await assertRetriedAndClean(out, run, /inference thread exited/);
  });

  it('a final inference failure fails the run at once and keeps the splits finished before it', async () => {
    const out = join(dir, 'infer-final');
    let calls = 0;
    const run = await wiredRun(out, {
      embedder: (inner) => rejectingEmbedder(inner, () => ++calls >= 9, () => new ModelError('inference failed: indices element out of data bounds')),
    });
    assert.ok(run.error instanceof SplitFailedError, `the run fails with one error: ${String(run.error)}`);
    assert.match(run.error.message, /indices element out of data bounds/);
    assert.equal(run.events.filter((e) => e.type === 'split-retry').length, 0, 'a final error is not retried');
    const store = new LocalStore(out);
    assert.notEqual(await readShardMarker(store, 0), undefined, 'split 0, done before the failure, keeps its marker');
    assert.equal(await store.exists('manifest.json'), false);
    assert.deepEqual(unhandled, [], 'no unhandled rejection');
  });
});

/** The real embedder, whose text calls reject (asynchronously, as a thread's would) when `fails()` says so. */
function rejectingEmbedder(inner: Embedder, fails: () => boolean, error: () => Error): Embedder {
  return {
    dims: inner.dims,
    hasText: inner.hasText,
    hasImage: inner.hasImage,
    textInput: inner.textInput,
    textTakesMask: inner.textTakesMask,
    device: inner.device,
    embedText: async (tokens: TokenBatch) => {
      if (fails()) {
        await new Promise((r) => setImmediate(r));
        throw error();
      }
      return inner.embedText(tokens);
    },
    embedImages: (pixels) => inner.embedImages(pixels),
    close: () => inner.close(),
  };
}
