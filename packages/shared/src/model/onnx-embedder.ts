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
  readonly device: 'cpu' | 'cuda';
  private readonly worker: Worker;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (v: Float32Array) => void; reject: (e: Error) => void }>();
  private failure: Error | undefined;

  private constructor(worker: Worker, ready: Extract<EmbedThreadMessage, { kind: 'ready' }>, model: ModelFolder) {
    this.worker = worker;
    this.dims = ready.dims > 0 ? ready.dims : model.config.projectionDim;
    this.hasText = model.textModelPath !== undefined;
    this.hasImage = model.visionModelPath !== undefined;
    this.textInput = { dynamic: ready.textSeqDynamic, fixedLength: ready.textSeqFixed };
    this.device = ready.device;
    worker.on('message', (msg: EmbedThreadMessage) => {
      if (msg.kind !== 'result' && msg.kind !== 'error') return;
      const p = this.pending.get(msg.id);
      if (p === undefined) return;
      this.pending.delete(msg.id);
      if (msg.kind === 'result') p.resolve(msg.values);
      else p.reject(new ModelError(`inference failed: ${msg.message}`));
    });
    worker.on('error', (err) => this.fail(err));
    worker.on('exit', (code) => this.fail(new ModelError(`the inference thread exited (code ${code})`)));
  }

  /** Starts the inference thread and waits until both sessions are open. */
  static async open(model: ModelFolder, options: OnnxEmbedderOptions): Promise<OnnxEmbedder> {
    const init: EmbedThreadInit = {
      textModelPath: model.textModelPath,
      visionModelPath: model.visionModelPath,
      providers: options.plan.providers,
      intraOpThreads: options.intraOpThreads,
    };
    const worker = new Worker(new URL('./embed-thread.js', import.meta.url), { workerData: init });
    const ready = await new Promise<Extract<EmbedThreadMessage, { kind: 'ready' }>>((resolve, reject) => {
      const onMessage = (msg: EmbedThreadMessage): void => {
        if (msg.kind === 'ready') {
          worker.off('message', onMessage);
          resolve(msg);
        } else if (msg.kind === 'init-error') {
          worker.off('message', onMessage);
          void worker.terminate();
          reject(new ModelError(`cannot open the ONNX models in ${model.dir}: ${msg.message}`, { model: model.dir }));
        }
      };
      worker.on('message', onMessage);
      worker.once('error', (err) => reject(new ModelError(`the inference thread failed to start: ${err.message}`, { model: model.dir }, { cause: err })));
    });
    if (ready.fallbackWarning !== undefined) options.onWarning?.(ready.fallbackWarning);
    return new OnnxEmbedder(worker, ready, model);
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
    await this.worker.terminate();
  }

  private request(req: EmbedRequest, transfer: ArrayBuffer[]): Promise<Float32Array> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending.set(req.id, { resolve, reject });
      this.worker.postMessage(req, transfer);
    });
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
