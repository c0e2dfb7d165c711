/**
 * Entry point of a preprocessing thread: base64-decode, hash, decode with sharp and resize with
 * the exact bicubic resampler here, so that none of it (nor the garbage it makes) ever runs on
 * the event loop that renews queue locks, and so that it uses every core.
 */
import { createHash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { RowError } from '@vecmill/shared/errors';
import { decodeBase64Strict } from '@vecmill/shared/tsv/base64';
import { preprocessImage, parsePreprocessSpec, type DecodeOptions } from './image-preprocess.js';
import type { PreprocessReply, PreprocessRequest, PreprocessThreadInit } from './preprocess-pool.js';

const init = workerData as PreprocessThreadInit;
const spec = parsePreprocessSpec(init.preprocessorConfig);
const options: DecodeOptions = init.options;
const port = parentPort;
if (port === null) throw new Error('preprocess-thread must run as a worker thread');

/** Decodes the request's bytes (base64 fields are decoded and hashed here, off the event loop). */
async function run(req: PreprocessRequest): Promise<{ pixels: Float32Array; sha256: Uint8Array | undefined }> {
  const input = Buffer.from(req.bytes);
  const bytes = req.base64 ? decodeBase64Strict(input) : input;
  const pixels = await preprocessImage(bytes, spec, options);
  return { pixels, sha256: req.base64 ? new Uint8Array(createHash('sha256').update(bytes).digest()) : undefined };
}

port.on('message', (req: PreprocessRequest) => {
  run(req).then(
    ({ pixels, sha256 }) =>
      port.postMessage({ id: req.id, pixels, sha256 } satisfies PreprocessReply, [pixels.buffer as ArrayBuffer, ...(sha256 === undefined ? [] : [sha256.buffer as ArrayBuffer])]),
    (err: unknown) =>
      port.postMessage({
        id: req.id,
        error: { rowReason: err instanceof RowError ? err.reason : undefined, message: err instanceof Error ? err.message : String(err) },
      } satisfies PreprocessReply),
  );
});
