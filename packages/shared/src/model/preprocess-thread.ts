/**
 * Entry point of a preprocessing thread: decode with sharp and resize with the exact bicubic
 * resampler here, so that neither the JavaScript resize nor the CHW conversion ever runs on the
 * event loop that renews queue locks, and so that they use every core.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { RowError } from '../errors.js';
import { preprocessImage, parsePreprocessSpec, type DecodeOptions } from './image-preprocess.js';
import type { PreprocessReply, PreprocessRequest, PreprocessThreadInit } from './preprocess-pool.js';

const init = workerData as PreprocessThreadInit;
const spec = parsePreprocessSpec(init.preprocessorConfig);
const options: DecodeOptions = init.options;
const port = parentPort;
if (port === null) throw new Error('preprocess-thread must run as a worker thread');

port.on('message', (req: PreprocessRequest) => {
  preprocessImage(Buffer.from(req.bytes), spec, options).then(
    (pixels) => port.postMessage({ id: req.id, pixels } satisfies PreprocessReply, [pixels.buffer as ArrayBuffer]),
    (err: unknown) =>
      port.postMessage({
        id: req.id,
        error: { rowReason: err instanceof RowError ? err.reason : undefined, message: err instanceof Error ? err.message : String(err) },
      } satisfies PreprocessReply),
  );
});
