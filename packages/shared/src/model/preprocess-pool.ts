import { Worker } from 'node:worker_threads';
import { RowError, VecmillError, type RowErrorReason } from '../errors.js';
import { parsePreprocessSpec, type DecodeOptions, type PreprocessSpec } from './image-preprocess.js';
import type { ImagePreprocessor } from './image-preprocessor.js';

/** Sent once to each thread. */
export interface PreprocessThreadInit {
  readonly preprocessorConfig: unknown;
  readonly options: DecodeOptions;
}

/** One image to preprocess; the bytes are a transferred copy. */
export interface PreprocessRequest {
  readonly id: number;
  readonly bytes: ArrayBuffer;
  /** The bytes are a base64 field to decode (and hash) first. */
  readonly base64: boolean;
}

/** Pixels (transferred) or why the image failed. */
export type PreprocessReply =
  | { readonly id: number; readonly pixels: Float32Array; readonly sha256: Uint8Array | undefined }
  | { readonly id: number; readonly error: { readonly rowReason: RowErrorReason | undefined; readonly message: string } };

/**
 * A fixed pool of preprocessing threads. Each image goes to the thread with the fewest pending
 * images; results are copied into the caller's batch buffer, so batches still form one tensor.
 */
export class PreprocessPool implements ImagePreprocessor {
  readonly spec: PreprocessSpec;
  private readonly threads: { worker: Worker; pending: number }[];
  private readonly waiting = new Map<number, { resolve: (r: { pixels: Float32Array; sha256: Uint8Array | undefined }) => void; reject: (e: Error) => void; thread: { pending: number } }>();
  private nextId = 0;
  private failure: Error | undefined;

  constructor(preprocessorConfig: unknown, options: DecodeOptions, threads: number) {
    this.spec = parsePreprocessSpec(preprocessorConfig);
    const init: PreprocessThreadInit = { preprocessorConfig, options };
    this.threads = Array.from({ length: Math.max(1, threads) }, () => {
      const worker = new Worker(new URL('./preprocess-thread.js', import.meta.url), { workerData: init });
      const slot = { worker, pending: 0 };
      worker.on('message', (reply: PreprocessReply) => this.settle(reply));
      worker.on('error', (err) => this.fail(err));
      worker.on('exit', (code) => {
        if (this.failure === undefined) this.fail(new VecmillError('E_INTERNAL', `a preprocessing thread exited (code ${code})`));
      });
      return slot;
    });
  }

  async preprocessInto(bytes: Buffer, out: Float32Array, offset: number): Promise<void> {
    out.set((await this.send(bytes, false)).pixels, offset);
  }

  async preprocessBase64Into(field: Buffer, out: Float32Array, offset: number): Promise<Uint8Array> {
    const { pixels, sha256 } = await this.send(field, true);
    out.set(pixels, offset);
    return sha256 as Uint8Array;
  }

  private send(bytes: Buffer, base64: boolean): Promise<{ pixels: Float32Array; sha256: Uint8Array | undefined }> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const thread = this.threads.reduce((a, b) => (b.pending < a.pending ? b : a));
    const id = this.nextId++;
    const copy = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    return new Promise((resolve, reject) => {
      thread.pending++;
      this.waiting.set(id, { resolve, reject, thread });
      thread.worker.postMessage({ id, bytes: copy, base64 } satisfies PreprocessRequest, [copy]);
    });
  }

  async close(): Promise<void> {
    this.failure ??= new VecmillError('E_INTERNAL', 'the preprocessing pool is closed');
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
  }

  private settle(reply: PreprocessReply): void {
    const w = this.waiting.get(reply.id);
    if (w === undefined) return;
    this.waiting.delete(reply.id);
    w.thread.pending--;
    if ('pixels' in reply) w.resolve({ pixels: reply.pixels, sha256: reply.sha256 });
    else if (reply.error.rowReason !== undefined) w.reject(new RowError(reply.error.rowReason, reply.error.message));
    else w.reject(new RowError('corrupt_image', reply.error.message));
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }
}
