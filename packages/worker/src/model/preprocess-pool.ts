import { Worker } from 'node:worker_threads';
import { RowError, VecmillError, type RowErrorReason } from '@vecmill/shared/errors';
import { parsePreprocessSpec, type DecodeOptions, type PreprocessSpec } from './image-preprocess.js';
import type { BatchImageResult, ImagePreprocessor } from './image-preprocessor.js';
import { cropBytes } from './pixel-batch.js';

/** Sent once to each thread. */
export interface PreprocessThreadInit {
  readonly preprocessorConfig: unknown;
  readonly options: DecodeOptions;
}

/**
 * A run of consecutive images of a batch: their encoded bytes back to back at the start of an
 * input buffer in shared memory (image `k` ends at `ends[k]`), whose crops are written from slot
 * `firstSlot` on into `out`, the batch's crops over shared memory (see PixelBatch). The pool writes that input buffer again only
 * once this request is answered (or its thread is dead).
 */
export interface PreprocessRequest {
  readonly id: number;
  readonly bytes: SharedArrayBuffer;
  readonly ends: readonly number[];
  /** The bytes are base64 fields to decode (and hash) first. */
  readonly base64: boolean;
  readonly out: Uint8Array;
  readonly firstSlot: number;
}

/** One image's outcome: written (with its hash for base64 fields), or why it failed. */
export type PreprocessImageReply =
  | { readonly sha256: Uint8Array | undefined }
  | { readonly error: { readonly rowReason: RowErrorReason | undefined; readonly message: string } };

/** Sent once every image of the request is written or failed. */
export interface PreprocessReply {
  readonly id: number;
  readonly images: readonly PreprocessImageReply[];
}

/** Test and supervision hooks of a PreprocessPool. */
export interface PreprocessPoolHooks {
  /** Called with every thread the pool starts, first ones and replacements alike. */
  readonly onThreadStart?: (thread: Worker) => void;
}

/** Replacements in a row without a single reply before the pool gives up: a thread that cannot start is not retried forever. */
const MAX_RESPAWNS_WITHOUT_REPLY = 3;

/**
 * Images per message at most. A message costs tens of microseconds against milliseconds per
 * image, so a few images per message already make hand-offs negligible; more would leave one
 * thread finishing a long run while the others wait at the end of each batch.
 */
const maxImagesPerMessage = 8;

/** Messages each thread holds at once: while one image waits on sharp's decoder, the thread resizes another. */
const messagesPerThread = 2;

/**
 * Size of the input buffers a run's encoded bytes are copied into, reused from message to message
 * (a fresh buffer per message would be page-faulted in and unmapped again every time), and so the
 * most bytes a run holds: a run ends before an image that would overflow it. An image larger on
 * its own goes alone in a buffer of its size, used once. Every buffer given back is kept, so as
 * many exist as messages were ever in flight at once: `threads x messagesPerThread` for each
 * batch being prepared (one per split in flight), 4 MiB each, fixed by configuration. Keeping
 * only one batch's worth made new ones all the time with two splits in flight.
 */
export const inputBufferBytes = 4 * 1024 * 1024;

interface ThreadSlot {
  worker: Worker;
  /** The uncaught error the thread died of, reported by its 'error' event before 'exit'. */
  died: Error | undefined;
}

/**
 * A fixed pool of preprocessing threads. A batch is cut into runs of a few images, each one message;
 * every thread keeps two runs in hand, taking the next as one finishes, and writes each image's
 * crop straight into its slot of the caller's shared batch buffer: the main thread copies no pixels.
 *
 * Only a RowError (the thread's verdict on the image) describes the image. A thread that throws
 * anything else, or dies, is a failure of ours: the batch rejects with a VecmillError
 * (`E_INTERNAL`, so the attempt is retried), or with the thread's own out-of-memory error, and the
 * thread is replaced at once, so a crash fails one attempt and never poisons later images.
 */
export class PreprocessPool implements ImagePreprocessor {
  readonly spec: PreprocessSpec;
  private readonly init: PreprocessThreadInit;
  private readonly hooks: PreprocessPoolHooks;
  private readonly threads: ThreadSlot[];
  private readonly waiting = new Map<number, { resolve: (r: readonly PreprocessImageReply[]) => void; reject: (e: Error) => void; thread: ThreadSlot }>();
  private readonly freeInputs: SharedArrayBuffer[] = [];
  private nextId = 0;
  private respawnsWithoutReply = 0;
  private failure: Error | undefined;

  constructor(preprocessorConfig: unknown, options: DecodeOptions, threads: number, hooks: PreprocessPoolHooks = {}) {
    this.spec = parsePreprocessSpec(preprocessorConfig);
    this.init = { preprocessorConfig, options };
    this.hooks = hooks;
    this.threads = Array.from({ length: Math.max(1, threads) }, () => this.start(undefined));
  }

  async preprocessBatch(fields: readonly Buffer[], base64: boolean, out: Uint8Array): Promise<BatchImageResult[]> {
    if (!(out.buffer instanceof SharedArrayBuffer)) throw new TypeError('PreprocessPool writes into a batch buffer over a SharedArrayBuffer');
    const per = cropBytes(this.spec.outHeight, this.spec.outWidth);
    if (fields.length * per > out.length) throw new RangeError(`cannot write ${fields.length} crops of ${per} bytes into a buffer of ${out.length}`);
    const results = new Array<BatchImageResult>(fields.length);
    const runLength = Math.max(1, Math.min(maxImagesPerMessage, Math.ceil(fields.length / (this.threads.length * messagesPerThread * 2))));
    let next = 0;
    let failed = false;
    // One lane per message a thread holds: each takes the next run as its previous one is done.
    // After a failure no lane starts a run, and the batch rejects only once every run sent has
    // settled, so no thread still writes into `out` when the caller reuses it.
    const lanes = this.threads.flatMap((thread) =>
      Array.from({ length: messagesPerThread }, async () => {
        while (next < fields.length && !failed) {
          const first = next;
          let bytes = fields[next++]!.length;
          while (next < fields.length && next - first < runLength && bytes + fields[next]!.length <= inputBufferBytes) bytes += fields[next++]!.length;
          try {
            const images = await this.send(thread, fields.slice(first, next), base64, out, first);
            images.forEach((reply, k) => (results[first + k] = toResult(reply)));
          } catch (err) {
            failed = true;
            throw err;
          }
        }
      }),
    );
    const settled = await Promise.allSettled(lanes);
    const rejected = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (rejected !== undefined) throw rejected.reason;
    return results;
  }

  private send(thread: ThreadSlot, fields: readonly Buffer[], base64: boolean, out: Uint8Array, firstSlot: number): Promise<readonly PreprocessImageReply[]> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const ends: number[] = [];
    let total = 0;
    for (const f of fields) ends.push((total += f.length));
    const bytes = total <= inputBufferBytes ? (this.freeInputs.pop() ?? new SharedArrayBuffer(inputBufferBytes)) : new SharedArrayBuffer(total);
    const view = new Uint8Array(bytes);
    fields.forEach((f, k) => view.set(f, k === 0 ? 0 : ends[k - 1]));
    const id = this.nextId++;
    // Settled means answered, or its thread dead, or the pool failed (nothing is sent after that): no thread still reads `bytes`.
    const giveBack = (): void => {
      if (bytes.byteLength === inputBufferBytes) this.freeInputs.push(bytes);
    };
    return new Promise<readonly PreprocessImageReply[]>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, thread });
      thread.worker.postMessage({ id, bytes, ends, base64, out, firstSlot } satisfies PreprocessRequest);
    }).finally(giveBack);
  }

/** Rejects every pending and later image, and stops the threads. */
  async close(): Promise<void> {
    this.fail(new VecmillError('E_INTERNAL', 'the preprocessing pool is closed'));
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
  }

  /** Starts a thread in `reused` (or a new slot); when it dies, its images fail and a new thread takes the slot. */
  private start(reused: ThreadSlot | undefined): ThreadSlot {
    const worker = new Worker(new URL('./preprocess-thread.js', import.meta.url), { workerData: this.init });
    const slot = reused ?? { worker, died: undefined };
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
    const ours = reply.images.find((r) => 'error' in r && r.error.rowReason === undefined);
    if (ours !== undefined && 'error' in ours) w.reject(new VecmillError('E_INTERNAL', `preprocessing an image failed in a way that does not describe the image: ${ours.error.message}`));
    else w.resolve(reply.images);
  }

  private rejectThread(slot: ThreadSlot, err: Error): void {
    for (const [id, w] of this.waiting) {
      if (w.thread !== slot) continue;
      this.waiting.delete(id);
      w.reject(err);
    }
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }
}

/** A thread's verdict on one image as the port reports it. */
function toResult(reply: PreprocessImageReply): BatchImageResult {
  if (!('error' in reply)) return { sha256: reply.sha256 };
  return { error: new RowError(reply.error.rowReason as RowErrorReason, reply.error.message) };
}

/** True for the error a thread dies of when it runs out of heap. */
function isOutOfMemory(err: Error | undefined): boolean {
  return (err as { code?: unknown } | undefined)?.code === 'ERR_WORKER_OUT_OF_MEMORY';
}
