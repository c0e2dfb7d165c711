import { Worker } from 'node:worker_threads';
import { ModelError } from '../errors.js';
import type { TokenBatch } from './clip-tokenizer.js';
import type { EmbedRequest, EmbedThreadInit, EmbedThreadMessage } from './embed-thread-protocol.js';
import type { Embedder, TextInputShape } from './embedder.js';
import type { ProviderPlan } from './execution-provider.js';
import type { ModelFolder } from './model-folder.js';

/** Options for the onnxruntime embedder. */
export interface OnnxEmbedderOptions {
  /** Providers decided by `planExecutionProviders`. */
  readonly plan: ProviderPlan;
  /** onnxruntime intra-op threads per session (default: all cores; the decode pool shares them). */
  readonly intraOpThreads: number;
  /** Called once with a warning line when the thread fell back from CUDA to the CPU. */
  readonly onWarning?: (line: string) => void;
}

/**
 * The Embedder over onnxruntime-node. Sessions live in a worker thread; batches cross as
 * transferred buffers (no copies), and calls return promises so the caller can decode the next
 * batch while this one runs.
 */
export class OnnxEmbedder implements Embedder {
  readonly dims: number;
  readonly hasText: boolean;
  readonly hasImage: boolean;
  readonly textInput: TextInputShape;
  readonly textTakesMask: boolean;
  readonly device: 'cpu' | 'cuda';
  private readonly sessions: { worker: Worker; pending: number }[];
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve: (v: Float32Array) => void; reject: (e: Error) => void; session: { pending: number } }>();
  private failure: Error | undefined;

  private constructor(workers: readonly Worker[], ready: Extract<EmbedThreadMessage, { kind: 'ready' }>, model: ModelFolder) {
    this.dims = ready.dims > 0 ? ready.dims : model.config.projectionDim;
    this.hasText = model.textModelPath !== undefined;
    this.hasImage = model.visionModelPath !== undefined;
    this.textInput = { dynamic: ready.textSeqDynamic, fixedLength: ready.textSeqFixed };
    this.textTakesMask = ready.textTakesMask;
    this.device = ready.device;
    this.sessions = workers.map((worker) => {
      const session = { worker, pending: 0 };
      worker.on('message', (msg: EmbedThreadMessage) => this.settle(msg));
      worker.on('error', (err) => this.fail(err));
      worker.on('exit', (code) => this.fail(new ModelError(`the inference thread exited (code ${code})`)));
      return session;
    });
  }

  /**
   * Starts `plan.sessions` inference threads (one on a CPU; several per GPU, so that one
   * session's host-side work overlaps another's kernels) and waits until every session is open.
   */
  static async open(model: ModelFolder, options: OnnxEmbedderOptions): Promise<OnnxEmbedder> {
    const init: EmbedThreadInit = {
      textModelPath: model.textModelPath,
      visionModelPath: model.visionModelPath,
      providers: options.plan.providers,
      intraOpThreads: options.intraOpThreads,
    };
    const started = await Promise.allSettled(Array.from({ length: Math.max(1, options.plan.sessions) }, () => startThread(init, model)));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    const ok = started.filter((r): r is PromiseFulfilledResult<{ worker: Worker; ready: Extract<EmbedThreadMessage, { kind: 'ready' }> }> => r.status === 'fulfilled');
    if (failed !== undefined) {
      await Promise.all(ok.map((r) => r.value.worker.terminate()));
      throw failed.reason;
    }
    const first = ok[0]!.value.ready;
    if (first.fallbackWarning !== undefined) options.onWarning?.(first.fallbackWarning);
    return new OnnxEmbedder(ok.map((r) => r.value.worker), first, model);
  }

  embedText(tokens: TokenBatch): Promise<Float32Array> {
    const ids = tokens.ids.slice();
    return this.request({ kind: 'text', id: this.nextId++, ids, batch: tokens.batch, seqLen: tokens.seqLen, lengths: tokens.lengths }, [ids.buffer]);
  }

  embedImages(pixels: Float32Array, batch: number, height: number, width: number): Promise<Float32Array> {
    return this.request({ kind: 'image', id: this.nextId++, pixels, batch, height, width }, [pixels.buffer as ArrayBuffer]);
  }

  async close(): Promise<void> {
    this.failure ??= new ModelError('the embedder is closed');
    await Promise.all(this.sessions.map((s) => s.worker.terminate()));
  }

  private request(req: EmbedRequest, transfer: ArrayBuffer[]): Promise<Float32Array> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const session = this.sessions.reduce((a, b) => (b.pending < a.pending ? b : a));
    return new Promise((resolve, reject) => {
      session.pending++;
      this.waiting.set(req.id, { resolve, reject, session });
      session.worker.postMessage(req, transfer);
    });
  }

  private settle(msg: EmbedThreadMessage): void {
    if (msg.kind !== 'result' && msg.kind !== 'error') return;
    const w = this.waiting.get(msg.id);
    if (w === undefined) return;
    this.waiting.delete(msg.id);
    w.session.pending--;
    if (msg.kind === 'result') w.resolve(msg.values);
    else w.reject(new ModelError(`inference failed: ${msg.message}`));
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }
}

/** Starts one inference thread and waits for its sessions to open. */
function startThread(init: EmbedThreadInit, model: ModelFolder): Promise<{ worker: Worker; ready: Extract<EmbedThreadMessage, { kind: 'ready' }> }> {
  const worker = new Worker(new URL('./embed-thread.js', import.meta.url), { workerData: init });
  return new Promise((resolve, reject) => {
    const onMessage = (msg: EmbedThreadMessage): void => {
      if (msg.kind === 'ready') {
        worker.off('message', onMessage);
        resolve({ worker, ready: msg });
      } else if (msg.kind === 'init-error') {
        worker.off('message', onMessage);
        void worker.terminate();
        reject(new ModelError(`cannot open the ONNX models in ${model.dir}: ${msg.message}`, { model: model.dir }));
      }
    };
    worker.on('message', onMessage);
    worker.once('error', (err) => reject(new ModelError(`the inference thread failed to start: ${err.message}`, { model: model.dir }, { cause: err })));
  });
}
