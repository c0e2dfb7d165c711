import { Worker } from 'node:worker_threads';
import { VecmillError } from '@vecmill/shared/errors';
import type { ClipTokenizerOptions } from './clip-tokenizer.js';

/** Sent once to each thread: what `ClipTokenizer` is built from. */
export interface TokenizerThreadInit {
  readonly tokenizerJson: unknown;
  readonly tokenizerConfig: Readonly<Record<string, unknown>>;
  readonly options: ClipTokenizerOptions;
}

/** A slice of a batch's captions. */
export interface TokenizeRequest {
  readonly id: number;
  readonly texts: readonly string[];
}

/** Token ids of every caption of the request, concatenated (transferred), with each caption's count. */
export type TokenizeReply =
  | { readonly id: number; readonly ids: Int32Array; readonly lengths: Int32Array }
  | { readonly id: number; readonly error: string };

/**
 * Tokenizes a batch of captions, each as `ClipTokenizer.encode` does (start and end tokens,
 * truncated to the context with the end token kept). The embed processor takes this port so that
 * tokenization can leave the event loop and use every core.
 */
export interface BatchTextEncoder {
  encodeBatch(texts: readonly string[]): Promise<number[][]>;
}

/**
 * Captions a thread gets at least per message: a message costs tens of microseconds, a caption a
 * few dozen, so smaller slices would spend more on hand-offs than they spread.
 */
const minSlice = 64;

/**
 * A fixed pool of tokenizer threads. A batch is cut into one contiguous slice per thread and the
 * slices are encoded in parallel, so the pure-JavaScript BPE runs on every core and never on the
 * event loop that renews queue locks.
 */
export class TokenizerPool implements BatchTextEncoder {
  private readonly threads: Worker[];
  private readonly waiting = new Map<number, { resolve: (ids: number[][]) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private failure: Error | undefined;

  constructor(tokenizerJson: unknown, tokenizerConfig: Readonly<Record<string, unknown>>, options: ClipTokenizerOptions, threads: number) {
    const init: TokenizerThreadInit = { tokenizerJson, tokenizerConfig, options };
    this.threads = Array.from({ length: Math.max(1, threads) }, () => {
      const worker = new Worker(new URL('./tokenizer-thread.js', import.meta.url), { workerData: init });
      worker.on('message', (reply: TokenizeReply) => this.settle(reply));
      worker.on('error', (err) => this.fail(err));
      worker.on('exit', (code) => {
        if (this.failure === undefined) this.fail(new VecmillError('E_INTERNAL', `a tokenizer thread exited (code ${code})`));
      });
      return worker;
    });
  }

  async encodeBatch(texts: readonly string[]): Promise<number[][]> {
    const slice = Math.max(minSlice, Math.ceil(texts.length / this.threads.length));
    const parts: Promise<number[][]>[] = [];
    for (let at = 0, t = 0; at < texts.length; at += slice, t++) parts.push(this.send(this.threads[t % this.threads.length] as Worker, texts.slice(at, at + slice)));
    return (await Promise.all(parts)).flat();
  }

  private send(worker: Worker, texts: readonly string[]): Promise<number[][]> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      worker.postMessage({ id, texts } satisfies TokenizeRequest);
    });
  }

  async close(): Promise<void> {
    this.failure ??= new VecmillError('E_INTERNAL', 'the tokenizer pool is closed');
    await Promise.all(this.threads.map((t) => t.terminate()));
  }

  private settle(reply: TokenizeReply): void {
    const w = this.waiting.get(reply.id);
    if (w === undefined) return;
    this.waiting.delete(reply.id);
    if ('error' in reply) {
      w.reject(new VecmillError('E_INTERNAL', `tokenizing failed: ${reply.error}`));
      return;
    }
    const out: number[][] = [];
    let at = 0;
    for (const n of reply.lengths) {
      out.push(Array.from(reply.ids.subarray(at, at + n)));
      at += n;
    }
    w.resolve(out);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }
}
