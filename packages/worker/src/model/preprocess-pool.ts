import { Worker } from 'node:worker_threads';
import { RowError, VecmillError, type RowErrorReason } from '@vecmill/shared/errors';
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

/** Test and supervision hooks of a PreprocessPool. */
export interface PreprocessPoolHooks {
  /** Called with every thread the pool starts, first ones and replacements alike. */
  readonly onThreadStart?: (thread: Worker) => void;
}

/** Replacements in a row without a single reply before the pool gives up: a thread that cannot start is not retried forever. */
const MAX_RESPAWNS_WITHOUT_REPLY = 3;

interface ThreadSlot {
  worker: Worker;
  pending: number;
  /** The uncaught error the thread died of, reported by its 'error' event before 'exit'. */
  died: Error | undefined;
}

/**
 * A fixed pool of preprocessing threads. Each image goes to the thread with the fewest pending
 * images; results are copied into the caller's batch buffer, so batches still form one tensor.
 *
 * Only a RowError (the thread's verdict on the image) describes the image. A thread that throws
 * anything else, or dies, is a failure of ours: its pending images reject with a VecmillError
 * (`E_INTERNAL`, so the attempt is retried), or with the thread's own out-of-memory error, and the
 * thread is replaced at once, so a crash fails one attempt and never poisons later images.
 */
export class PreprocessPool implements ImagePreprocessor {
  readonly spec: PreprocessSpec;
  private readonly init: PreprocessThreadInit;
  private readonly hooks: PreprocessPoolHooks;
  private readonly threads: ThreadSlot[];
  private readonly waiting = new Map<number, { resolve: (r: { pixels: Float32Array; sha256: Uint8Array | undefined }) => void; reject: (e: Error) => void; thread: ThreadSlot }>();
  private nextId = 0;
  private respawnsWithoutReply = 0;
  private failure: Error | undefined;

  constructor(preprocessorConfig: unknown, options: DecodeOptions, threads: number, hooks: PreprocessPoolHooks = {}) {
    this.spec = parsePreprocessSpec(preprocessorConfig);
    this.init = { preprocessorConfig, options };
    this.hooks = hooks;
    this.threads = Array.from({ length: Math.max(1, threads) }, () => this.start(undefined));
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

  /** Rejects every pending and later image, and stops the threads. */
  async close(): Promise<void> {
    this.fail(new VecmillError('E_INTERNAL', 'the preprocessing pool is closed'));
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
  }

  /** Starts a thread in `reused` (or a new slot); when it dies, its images fail and a new thread takes the slot. */
  private start(reused: ThreadSlot | undefined): ThreadSlot {
    const worker = new Worker(new URL('./preprocess-thread.js', import.meta.url), { workerData: this.init });
    const slot = reused ?? { worker, pending: 0, died: undefined };
    slot.worker = worker;
    slot.died = undefined;
    worker.on('message', (reply: PreprocessReply) => this.settle(reply));
    worker.on('error', (err) => (slot.died = err));
    worker.on('exit', (code) => {
      if (this.failure !== undefined) return;
      const err = isOutOfMemory(slot.died)
        ? (slot.died as Error)
        : new VecmillError('E_INTERNAL', `a preprocessing thread exited (code ${code}${slot.died === undefined ? '' : `: ${slot.died.message}`}); the attempt is retried on a new thread`, {}, { cause: slot.died });
      this.rejectThread(slot, err);
      if (++this.respawnsWithoutReply > MAX_RESPAWNS_WITHOUT_REPLY) {
        this.fail(new VecmillError('E_INTERNAL', `preprocessing threads keep exiting (last: code ${code}${slot.died === undefined ? '' : `, ${slot.died.message}`}); restart the process`));
        return;
      }
      this.start(slot);
    });
    this.hooks.onThreadStart?.(worker);
    return slot;
  }

  private settle(reply: PreprocessReply): void {
    this.respawnsWithoutReply = 0;
    const w = this.waiting.get(reply.id);
    if (w === undefined) return;
    this.waiting.delete(reply.id);
    w.thread.pending--;
    if ('pixels' in reply) w.resolve({ pixels: reply.pixels, sha256: reply.sha256 });
    else if (reply.error.rowReason !== undefined) w.reject(new RowError(reply.error.rowReason, reply.error.message));
    else w.reject(new VecmillError('E_INTERNAL', `preprocessing an image failed in a way that does not describe the image: ${reply.error.message}`));
  }

  private rejectThread(slot: ThreadSlot, err: Error): void {
    for (const [id, w] of this.waiting) {
      if (w.thread !== slot) continue;
      this.waiting.delete(id);
      w.reject(err);
    }
    slot.pending = 0;
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }
}

/** True for the error a thread dies of when it runs out of heap. */
function isOutOfMemory(err: Error | undefined): boolean {
  return (err as { code?: unknown } | undefined)?.code === 'ERR_WORKER_OUT_OF_MEMORY';
}
