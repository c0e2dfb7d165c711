import { Worker } from 'node:worker_threads';
import { ModelError, VecmillError, type ErrorCode } from '@vecmill/shared/errors';
import type { ClipTokenizerOptions } from './clip-tokenizer.js';
import { TokenLayout, type EncodedTexts, type TokenLayoutOptions } from './token-layout.js';

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

/** Token ids of every caption of the request, concatenated, with each caption's count and sha256 (all transferred). */
export type TokenizeReply =
  | { readonly id: number; readonly ids: Int32Array; readonly lengths: Int32Array; readonly sha256: Uint8Array }
  | { readonly id: number; readonly error: string };

/**
 * A thread's first message: the layout of its tokenizer, or why the tokenizer could not be built
 * (a ModelError's code and message, rebuilt on the event loop as the same one-line error).
 */
export type TokenizerThreadStart =
  | { readonly ready: TokenLayoutOptions }
  | { readonly failed: { readonly code: ErrorCode; readonly message: string } };

/**
 * Tokenizes a batch of captions, each as `ClipTokenizer.encode` does (start and end tokens,
 * truncated to the context with the end token kept), and hashes each (sha256 of its UTF-8 bytes,
 * the key of `--reuse`). The embed processor takes this port so that both can leave the event loop
 * and use every core, with no per-caption object on the way back.
 */
export interface BatchTextEncoder {
  encodeTexts(texts: readonly string[]): Promise<HashedTexts>;
}

/** Encoded captions with their hashes. */
export type HashedTexts = EncodedTexts & { readonly sha256: Uint8Array };

/**
 * Captions a thread gets at least per message: a message costs tens of microseconds, a caption a
 * few dozen, so smaller slices would spend more on hand-offs than they spread.
 */
const minSlice = 64;

/**
 * A fixed pool of tokenizer threads. A batch is cut into one contiguous slice per thread and the
 * slices are encoded and hashed in parallel, so the pure-JavaScript BPE runs on every core and
 * never on the event loop that renews queue locks.
 */
export class TokenizerPool implements BatchTextEncoder {
  /**
   * How the event loop lays out the ids the threads send, from the first thread that built its
   * tokenizer: the event loop never builds one (hundreds of milliseconds of blocking work).
   * Rejects with the tokenizer's ModelError when the model's files cannot be tokenized with.
   */
  readonly layout: Promise<TokenLayout>;
  private readonly threads: Worker[];
  private started: { resolve: (layout: TokenLayout) => void; reject: (e: Error) => void } | undefined;
  private readonly waiting = new Map<number, { resolve: (part: Part) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private failure: Error | undefined;

  constructor(tokenizerJson: unknown, tokenizerConfig: Readonly<Record<string, unknown>>, options: ClipTokenizerOptions, threads: number) {
    const init: TokenizerThreadInit = { tokenizerJson, tokenizerConfig, options };
    this.layout = new Promise((resolve, reject) => (this.started = { resolve, reject }));
    // Handled here too: a pool used only through encodeTexts reports failures there.
    this.layout.catch(() => undefined);
    this.threads = Array.from({ length: Math.max(1, threads) }, () => {
      const worker = new Worker(new URL('./tokenizer-thread.js', import.meta.url), { workerData: init });
      worker.on('message', (message: TokenizeReply | TokenizerThreadStart) => ('id' in message ? this.settle(message) : this.start(message)));
      worker.on('error', (err) => this.fail(err));
      worker.on('exit', (code) => {
        if (this.failure === undefined) this.fail(new VecmillError('E_INTERNAL', `a tokenizer thread exited (code ${code})`));
      });
      return worker;
    });
  }

  async encodeTexts(texts: readonly string[]): Promise<HashedTexts> {
    const slice = Math.max(minSlice, Math.ceil(texts.length / this.threads.length));
    const parts: Promise<Part>[] = [];
    for (let at = 0, t = 0; at < texts.length; at += slice, t++) parts.push(this.send(this.threads[t % this.threads.length] as Worker, texts.slice(at, at + slice)));
    return joinParts(await Promise.all(parts), texts.length);
  }

  /** Token ids of each caption, as `ClipTokenizer.encode` gives them. */
  async encodeBatch(texts: readonly string[]): Promise<number[][]> {
    const { ids, starts, lengths } = await this.encodeTexts(texts);
    return Array.from(lengths, (n, i) => Array.from(ids.subarray(starts[i] as number, (starts[i] as number) + n)));
  }

  private send(worker: Worker, texts: readonly string[]): Promise<Part> {
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

  private start(message: TokenizerThreadStart): void {
    if ('ready' in message) {
      this.started?.resolve(new TokenLayout(message.ready));
      this.started = undefined;
      return;
    }
    const { code, message: text } = message.failed;
    this.fail(code === 'E_MODEL' ? new ModelError(text) : new VecmillError(code, text));
  }

  private settle(reply: TokenizeReply): void {
    const w = this.waiting.get(reply.id);
    if (w === undefined) return;
    this.waiting.delete(reply.id);
    if ('error' in reply) w.reject(new VecmillError('E_INTERNAL', `tokenizing failed: ${reply.error}`));
    else w.resolve(reply);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.started?.reject(this.failure);
    this.started = undefined;
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }
}

/** One thread's reply. */
interface Part {
  readonly ids: Int32Array;
  readonly lengths: Int32Array;
  readonly sha256: Uint8Array;
}

/** The threads' replies as one flat layout, in caption order. */
function joinParts(parts: readonly Part[], count: number): HashedTexts {
  const only = parts.length === 1 ? parts[0] : undefined;
  const ids = only?.ids ?? new Int32Array(parts.reduce((a, p) => a + p.ids.length, 0));
  const lengths = only?.lengths ?? new Int32Array(count);
  const sha256 = only?.sha256 ?? new Uint8Array(32 * count);
  if (only === undefined) {
    let at = 0;
    let row = 0;
    for (const p of parts) {
      ids.set(p.ids, at);
      lengths.set(p.lengths, row);
      sha256.set(p.sha256, 32 * row);
      at += p.ids.length;
      row += p.lengths.length;
    }
  }
  const starts = new Int32Array(count);
  for (let i = 0, at = 0; i < count; at += lengths[i] as number, i++) starts[i] = at;
  return { ids, starts, lengths, sha256 };
}
