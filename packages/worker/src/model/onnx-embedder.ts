import { Worker } from 'node:worker_threads';
import { ModelError, VecmillError } from '@vecmill/shared/errors';
import type { TokenBatch } from './clip-tokenizer.js';
import type { EmbedRequest, EmbedThreadInit, EmbedThreadMessage } from './embed-thread-protocol.js';
import type { Embedder, TextInputShape } from './embedder.js';
import type { PixelBatch } from './pixel-batch.js';
import type { ProviderPlan } from '@vecmill/shared/model/execution-provider';
import type { ModelFolder } from '@vecmill/shared/model/model-folder';

/** Options for the onnxruntime embedder. */
export interface OnnxEmbedderOptions {
  /** Providers decided by `planExecutionProviders`. */
  readonly plan: ProviderPlan;
  /** onnxruntime intra-op threads per session (default: all cores; the decode pool shares them). */
  readonly intraOpThreads: number;
  /** Called once with a warning line when the thread fell back from CUDA to the CPU. */
  readonly onWarning?: (line: string) => void;
  /** Called when an inference thread died and when its replacement is ready or could not start. */
  readonly onThreadEvent?: (line: string) => void;
  /**
   * Fault injection for tests of crash recovery (`VECMILL_FAULT_INFERENCE_EXIT`): the first thread
   * exits when it receives its n-th request. Replacement threads never do.
   */
  readonly exitThreadAtRequest?: number;
}

/** An inference thread; `worker` is undefined while a replacement starts. */
interface Session {
  worker: Worker | undefined;
  pending: number;
  /** The uncaught error the thread died of, reported by 'error' before 'exit'. */
  died: Error | undefined;
}

/**
 * The Embedder over onnxruntime-node. Sessions live in worker threads; batches cross as
 * transferred or shared buffers (no copies on this thread), and calls return promises so the caller can decode the next
 * batch while this one runs.
 *
 * A thread that dies (a crash in onnxruntime, a kill) fails only the calls it held, with a
 * VecmillError `E_INTERNAL` (so the attempt is retried), and is replaced by a new thread; calls
 * made meanwhile wait for it. `healthy` is false while no thread can embed, and for good when a
 * replacement cannot start.
 */
export class OnnxEmbedder implements Embedder {
  readonly dims: number;
  readonly hasText: boolean;
  readonly hasImage: boolean;
  readonly textInput: TextInputShape;
  readonly textTakesMask: boolean;
  readonly device: 'cpu' | 'cuda';
  private readonly sessions: Session[];
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve: (v: Float32Array) => void; reject: (e: Error) => void; session: Session }>();
  /** Calls waiting for a thread to be ready again. */
  private readonly parked: (() => void)[] = [];
  private failure: Error | undefined;

  private constructor(
    workers: readonly Worker[],
    ready: Extract<EmbedThreadMessage, { kind: 'ready' }>,
    private readonly model: ModelFolder,
    private readonly init: EmbedThreadInit,
    private readonly onThreadEvent: ((line: string) => void) | undefined,
  ) {
    this.dims = ready.dims > 0 ? ready.dims : model.config.projectionDim;
    this.hasText = model.textModelPath !== undefined;
    this.hasImage = model.visionModelPath !== undefined;
    this.textInput = { dynamic: ready.textSeqDynamic, fixedLength: ready.textSeqFixed };
    this.textTakesMask = ready.textTakesMask;
    this.device = ready.device;
    this.sessions = workers.map((worker) => {
      const session: Session = { worker: undefined, pending: 0, died: undefined };
      this.attach(session, worker);
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
      exitAtRequest: undefined,
    };
    const sessions = Math.max(1, options.plan.sessions);
    const started = await Promise.allSettled(
      Array.from({ length: sessions }, (_, k) => startThread(k === 0 && options.exitThreadAtRequest !== undefined ? { ...init, exitAtRequest: options.exitThreadAtRequest } : init, model)),
    );
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    const ok = started.filter((r): r is PromiseFulfilledResult<{ worker: Worker; ready: Extract<EmbedThreadMessage, { kind: 'ready' }> }> => r.status === 'fulfilled');
    if (failed !== undefined) {
      await Promise.all(ok.map((r) => r.value.worker.terminate()));
      throw failed.reason;
    }
    const first = ok[0]!.value.ready;
    if (first.fallbackWarning !== undefined) options.onWarning?.(first.fallbackWarning);
    return new OnnxEmbedder(ok.map((r) => r.value.worker), first, model, init, options.onThreadEvent);
  }

  /** True while at least one thread can embed; false once the embedder is closed or cannot replace a dead thread. */
  get healthy(): boolean {
    return this.failure === undefined && this.sessions.some((s) => s.worker !== undefined);
  }

  /** With `into` over a SharedArrayBuffer, the inference thread writes the vectors there (see `Embedder`). */
  embedText(tokens: TokenBatch, into?: Float32Array): Promise<Float32Array> {
    const ids = tokens.ids.slice();
    return this.request({ kind: 'text', id: this.nextId++, ids, batch: tokens.batch, seqLen: tokens.seqLen, lengths: tokens.lengths, into: this.output(into, tokens.batch) }, [ids.buffer]);
  }

  /**
   * Crops over a SharedArrayBuffer are shared with the inference thread, not transferred: the
   * caller gets them back to reuse once the promise settles. Any other buffer is transferred.
   */
  embedImages(pixels: PixelBatch, into?: Float32Array): Promise<Float32Array> {
    const transfer = pixels.crops.buffer instanceof SharedArrayBuffer ? [] : [pixels.crops.buffer as ArrayBuffer];
    return this.request({ kind: 'image', id: this.nextId++, pixels, into: this.output(into, pixels.count) }, transfer);
  }

  /** `into` when the thread can write into it: shared memory of exactly `batch × dims` floats; else a fresh array is answered. */
  private output(into: Float32Array | undefined, batch: number): Float32Array | undefined {
    if (into === undefined) return undefined;
    if (!(into.buffer instanceof SharedArrayBuffer) || into.length !== batch * this.dims) {
      throw new VecmillError('E_INTERNAL', `an output buffer must be ${batch} × ${this.dims} floats over a SharedArrayBuffer, got ${into.length} floats`);
    }
    return into;
  }

  async close(): Promise<void> {
    this.fail(new VecmillError('E_INTERNAL', 'the embedder is closed'));
    await Promise.all(this.sessions.map((s) => s.worker?.terminate()));
  }

  private async request(req: EmbedRequest, transfer: ArrayBuffer[]): Promise<Float32Array> {
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      const live = this.sessions.filter((s) => s.worker !== undefined);
      if (live.length > 0) {
        const session = live.reduce((a, b) => (b.pending < a.pending ? b : a));
        const worker = session.worker as Worker;
        return new Promise((resolve, reject) => {
          session.pending++;
          this.waiting.set(req.id, { resolve, reject, session });
          worker.postMessage(req, transfer);
        });
      }
      await new Promise<void>((resume) => this.parked.push(resume));
    }
  }

  /** Puts `worker` in `session`; when it dies, its calls fail (retryable) and a new thread is started. */
  private attach(session: Session, worker: Worker): void {
    session.worker = worker;
    session.died = undefined;
    worker.on('message', (msg: EmbedThreadMessage) => this.settle(msg));
    worker.on('error', (err) => (session.died = err));
    worker.on('exit', (code) => {
      if (this.failure !== undefined) return;
      const cause = session.died;
      session.worker = undefined;
      const err = (cause as { code?: unknown } | undefined)?.code === 'ERR_WORKER_OUT_OF_MEMORY'
        ? (cause as Error)
        : new VecmillError('E_INTERNAL', `the inference thread exited (code ${code}${cause === undefined ? '' : `: ${cause.message}`}); the attempt is retried on a new thread`, {}, { cause });
      for (const [id, w] of this.waiting) {
        if (w.session !== session) continue;
        this.waiting.delete(id);
        w.reject(err);
      }
      session.pending = 0;
      this.onThreadEvent?.(`${err.message}; starting a new inference thread`);
      startThread(this.init, this.model).then(
        ({ worker: next }) => {
          if (this.failure !== undefined) {
            void next.terminate();
            return;
          }
          this.attach(session, next);
          this.onThreadEvent?.('a new inference thread is ready');
          for (const resume of this.parked.splice(0)) resume();
        },
        (startErr: unknown) => {
          // The models opened before, so this is the machine's fault: retryable elsewhere, and
          // `healthy` turns false so the orchestrator replaces this process.
          const message = `a dead inference thread could not be replaced (${(startErr as Error).message}); this process cannot embed until it is restarted`;
          this.onThreadEvent?.(message);
          this.fail(new VecmillError('E_INTERNAL', message, {}, { cause: startErr }));
        },
      );
    });
  }

  private settle(msg: EmbedThreadMessage): void {
    if (msg.kind !== 'result' && msg.kind !== 'error') return;
    const w = this.waiting.get(msg.id);
    if (w === undefined) return;
    this.waiting.delete(msg.id);
    w.session.pending--;
    if (msg.kind === 'result') w.resolve(msg.values);
    else w.reject(new ModelError(`inference failed: ${msg.message}; a retry fails the same way: check that the model folder's ONNX graphs match its tokenizer and config (or re-export them)`));
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
    for (const resume of this.parked.splice(0)) resume();
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
