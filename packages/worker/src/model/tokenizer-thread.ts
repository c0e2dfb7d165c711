/**
 * Entry point of a tokenizer thread (see TokenizerPool): encodes and hashes slices of captions
 * with the model's tokenizer and sends the ids, counts and hashes back in transferred arrays.
 */
import * as crypto from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { VecmillError } from '@vecmill/shared/errors';
import { ClipTokenizer } from './clip-tokenizer.js';
import type { TokenizeReply, TokenizeRequest, TokenizerThreadInit, TokenizerThreadStart } from './tokenizer-pool.js';

const init = workerData as TokenizerThreadInit;
const port = parentPort;
if (port === null) throw new Error('tokenizer-thread must run as a worker thread');

/** Builds the tokenizer and tells the pool its layout, or why it cannot be built (then the thread ends). */
function start(): ClipTokenizer | undefined {
  try {
    const tokenizer = new ClipTokenizer(init.tokenizerJson, init.tokenizerConfig, init.options);
    port?.postMessage({ ready: tokenizer.options } satisfies TokenizerThreadStart);
    return tokenizer;
  } catch (err) {
    const failed = err instanceof VecmillError ? { code: err.code, message: err.message } : { code: 'E_INTERNAL' as const, message: `the tokenizer cannot be built: ${String(err)}` };
    port?.postMessage({ failed } satisfies TokenizerThreadStart);
    return undefined;
  }
}

/**
 * sha256 of a caption's UTF-8 bytes. Node's one-shot `crypto.hash` (Node 20.12 and later) makes no
 * Hash object per caption, which cost about a tenth of this thread's time once tokenizing got
 * cheaper; older Nodes (which lack the export, hence the namespace import) use createHash.
 */
const sha256Of: (text: string) => Uint8Array =
  typeof crypto.hash === 'function' ? (text) => crypto.hash('sha256', text, 'buffer') : (text) => crypto.createHash('sha256').update(text, 'utf8').digest();

const tokenizer = start();
if (tokenizer !== undefined) port.on('message', (req: TokenizeRequest) => {
  try {
    const { texts } = req;
    const lengths = new Int32Array(texts.length);
    const sha256 = new Uint8Array(32 * texts.length);
    // No caption encodes to more than the context length, so this holds the slice's ids.
    const scratch = new Int32Array(texts.length * tokenizer.contextLength);
    let at = 0;
    texts.forEach((text, i) => {
      const ids = tokenizer.encode(text);
      scratch.set(ids, at);
      at += ids.length;
      lengths[i] = ids.length;
      sha256.set(sha256Of(text), 32 * i);
    });
    const ids = scratch.slice(0, at);
    port.postMessage({ id: req.id, ids, lengths, sha256 } satisfies TokenizeReply, [ids.buffer, lengths.buffer, sha256.buffer]);
  } catch (err) {
    port.postMessage({ id: req.id, error: err instanceof Error ? err.message : String(err) } satisfies TokenizeReply);
  }
});
