/**
 * Entry point of a preprocessing thread: base64-decode, hash, decode (libjpeg-turbo or sharp),
 * resize with the exact bicubic resampler and center crop here, writing each image's crop straight
 * into its slot of the shared batch buffer, so that none of it (nor the garbage it makes) ever runs on the event loop
 * that renews queue locks, and so that it uses every core.
 */
import { createHash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { RowError } from '@vecmill/shared/errors';
import { decodeBase64Strict } from '@vecmill/shared/tsv/base64';
import { preprocessImageInto, parsePreprocessSpec, type DecodeOptions } from './image-preprocess.js';
import { inputBufferBytes, type PreprocessImageReply, type PreprocessReply, type PreprocessRequest, type PreprocessThreadInit } from './preprocess-pool.js';

const init = workerData as PreprocessThreadInit;
const spec = parsePreprocessSpec(init.preprocessorConfig);
const options: DecodeOptions = init.options;
const perImage = 3 * spec.outHeight * spec.outWidth;
const port = parentPort;
if (port === null) throw new Error('preprocess-thread must run as a worker thread');

/**
 * Buffers base64 fields are decoded into, one per request in hand, reused: a fresh buffer per
 * image would be page-faulted in and unmapped again each time. Their size holds any image of a
 * full input buffer; a larger image is decoded into a buffer of its own. Every one is kept, so as
 * many exist as requests this thread ever held at once (`messagesPerThread` for each batch being
 * prepared, one per split in flight), 3 MiB each.
 */
const decodeBufferBytes = (inputBufferBytes / 4) * 3;
const freeDecodeBuffers: Uint8Array[] = [];

/** One image of the request into its slot; base64 fields are decoded (into `decoded`) and hashed here, off the event loop. */
async function one(req: PreprocessRequest, k: number, decoded: Uint8Array): Promise<PreprocessImageReply> {
  const start = k === 0 ? 0 : (req.ends[k - 1] as number);
  const input = Buffer.from(req.bytes, start, (req.ends[k] as number) - start);
  try {
    const bytes = req.base64 ? decodeBase64Strict(input, decoded) : input;
    await preprocessImageInto(bytes, spec, options, req.out, (req.firstSlot + k) * perImage);
    return { sha256: req.base64 ? new Uint8Array(createHash('sha256').update(bytes).digest()) : undefined };
  } catch (err) {
    return { error: { rowReason: err instanceof RowError ? err.reason : undefined, message: err instanceof Error ? err.message : String(err) } };
  }
}

port.on('message', (req: PreprocessRequest) => {
  void (async () => {
    const decoded = freeDecodeBuffers.pop() ?? new Uint8Array(decodeBufferBytes);
    const images: PreprocessImageReply[] = [];
    for (let k = 0; k < req.ends.length; k++) images.push(await one(req, k, decoded));
    freeDecodeBuffers.push(decoded);
    port.postMessage({ id: req.id, images } satisfies PreprocessReply);
  })();
});
