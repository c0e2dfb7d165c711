/**
 * Entry point of a tokenizer thread (see TokenizerPool): encodes slices of captions with the
 * model's tokenizer and sends the ids back packed in one transferred array.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ClipTokenizer } from './clip-tokenizer.js';
import type { TokenizeReply, TokenizeRequest, TokenizerThreadInit } from './tokenizer-pool.js';

const init = workerData as TokenizerThreadInit;
const tokenizer = new ClipTokenizer(init.tokenizerJson, init.tokenizerConfig, init.options);
const port = parentPort;
if (port === null) throw new Error('tokenizer-thread must run as a worker thread');

port.on('message', (req: TokenizeRequest) => {
  try {
    const encoded = req.texts.map((t) => tokenizer.encode(t));
    const lengths = Int32Array.from(encoded, (e) => e.length);
    const ids = new Int32Array(lengths.reduce((a, n) => a + n, 0));
    let at = 0;
    for (const e of encoded) {
      ids.set(e, at);
      at += e.length;
    }
    port.postMessage({ id: req.id, ids, lengths } satisfies TokenizeReply, [ids.buffer, lengths.buffer]);
  } catch (err) {
    port.postMessage({ id: req.id, error: err instanceof Error ? err.message : String(err) } satisfies TokenizeReply);
  }
});
