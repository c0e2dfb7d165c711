/**
 * Entry point of the inference thread. onnxruntime's `session.run()` holds the JavaScript thread
 * for the whole inference, so it runs here, never on the thread that renews BullMQ locks.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { ChwTensor } from './chw-tensor.js';
import type { EmbedRequest, EmbedThreadInit, EmbedThreadMessage } from './embed-thread-protocol.js';
import { cudaSessionFallbackWarning } from '@vecmill/shared/model/execution-provider';

const init = workerData as EmbedThreadInit;

/** The text inputs Hugging Face text towers declare, all of which vecmill feeds as the Python processors do. */
const knownTextInputs = new Set(['input_ids', 'attention_mask', 'token_type_ids', 'position_ids']);
const port = parentPort;
if (port === null) throw new Error('embed-thread must run as a worker thread');

function sessionOptions(providers: readonly string[]): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: [...providers],
    intraOpNumThreads: init.intraOpThreads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    // A failing kernel is reported through the rejected call, as one line of vecmill's; onnxruntime's
    // own log line for it would break the one-line error contract on stderr.
    logSeverityLevel: 4,
  };
}

async function openSession(path: string | undefined, providers: readonly string[]): Promise<ort.InferenceSession | undefined> {
  return path === undefined ? undefined : ort.InferenceSession.create(path, sessionOptions(providers));
}

function outputDims(session: ort.InferenceSession, name: string): number | undefined {
  const meta = session.outputMetadata.find((m) => m.name === name);
  if (meta === undefined || !meta.isTensor) return undefined;
  const last = meta.shape[meta.shape.length - 1];
  return typeof last === 'number' ? last : undefined;
}

/**
 * The embedding output: `text_embeds` / `image_embeds` of CLIP-style exports with projections,
 * else `pooler_output` (SigLIP's towers have no projection; their pooled state is the embedding),
 * else the first output.
 */
function pickOutput(session: ort.InferenceSession, preferred: string): string {
  return [preferred, 'pooler_output'].find((name) => session.outputNames.includes(name)) ?? (session.outputNames[0] as string);
}

async function main(): Promise<void> {
  let device: 'cpu' | 'cuda' = init.providers[0] === 'cuda' ? 'cuda' : 'cpu';
  let fallbackWarning: string | undefined;
  let text: ort.InferenceSession | undefined;
  let vision: ort.InferenceSession | undefined;
  try {
    text = await openSession(init.textModelPath, init.providers);
    vision = await openSession(init.visionModelPath, init.providers);
  } catch (err) {
    if (device !== 'cuda') throw err;
    fallbackWarning = cudaSessionFallbackWarning((err as Error).message.split('\n')[0] ?? 'unknown error');
    device = 'cpu';
    text = await openSession(init.textModelPath, ['cpu']);
    vision = await openSession(init.visionModelPath, ['cpu']);
  }
  const textOut = text === undefined ? undefined : pickOutput(text, 'text_embeds');
  const visionOut = vision === undefined ? undefined : pickOutput(vision, 'image_embeds');
  const idsMeta = text?.inputMetadata.find((m) => m.name === 'input_ids');
  const seqDim = idsMeta !== undefined && idsMeta.isTensor ? idsMeta.shape[1] : undefined;
  const textInputs = new Set(text?.inputNames ?? []);
  const unknownInputs = [...textInputs].filter((name) => !knownTextInputs.has(name));
  if (unknownInputs.length > 0) {
    throw new Error(`the text graph takes ${unknownInputs.join(', ')}, which vecmill does not know how to feed (it feeds ${[...knownTextInputs].join(', ')})`);
  }
  const dims =
    (text !== undefined && textOut !== undefined ? outputDims(text, textOut) : undefined) ??
    (vision !== undefined && visionOut !== undefined ? outputDims(vision, visionOut) : undefined) ??
    -1;
  const ready: EmbedThreadMessage = {
    kind: 'ready',
    device,
    fallbackWarning,
    dims,
    textSeqFixed: typeof seqDim === 'number' ? seqDim : undefined,
    textSeqDynamic: typeof seqDim !== 'number',
    textTakesMask: textInputs.has('attention_mask'),
  };
  port!.postMessage(ready);

  const queue: EmbedRequest[] = [];
  let running = false;
  const pump = async (): Promise<void> => {
    if (running) return;
    running = true;
    while (queue.length > 0) {
      const req = queue.shift() as EmbedRequest;
      try {
        const values = req.kind === 'text' ? await runText(req) : await runImage(req);
        // A view over shared memory is shared again, not copied; an array of our own is transferred.
        const transfer = values.buffer instanceof SharedArrayBuffer ? [] : [values.buffer as ArrayBuffer];
        port!.postMessage({ kind: 'result', id: req.id, values } satisfies EmbedThreadMessage, transfer);
      } catch (err) {
        port!.postMessage({ kind: 'error', id: req.id, message: (err as Error).message } satisfies EmbedThreadMessage);
      }
    }
    running = false;
  };

  async function runText(req: Extract<EmbedRequest, { kind: 'text' }>): Promise<Float32Array> {
    if (text === undefined || textOut === undefined) throw new Error('this run has no text model');
    const feeds: Record<string, ort.Tensor> = { input_ids: new ort.Tensor('int64', req.ids, [req.batch, req.seqLen]) };
    if (textInputs.has('attention_mask')) {
      const mask = new BigInt64Array(req.batch * req.seqLen);
      req.lengths.forEach((len, i) => mask.fill(1n, i * req.seqLen, i * req.seqLen + Math.min(len, req.seqLen)));
      feeds['attention_mask'] = new ort.Tensor('int64', mask, [req.batch, req.seqLen]);
    }
    if (textInputs.has('token_type_ids')) {
      // One caption is one segment: type 0 everywhere, as every family's post-processor assigns it.
      feeds['token_type_ids'] = new ort.Tensor('int64', new BigInt64Array(req.batch * req.seqLen), [req.batch, req.seqLen]);
    }
    if (textInputs.has('position_ids')) {
      const pos = new BigInt64Array(req.batch * req.seqLen);
      for (let i = 0; i < pos.length; i++) pos[i] = BigInt(i % req.seqLen);
      feeds['position_ids'] = new ort.Tensor('int64', pos, [req.batch, req.seqLen]);
    }
    const out = await text.run(feeds, [textOut]);
    return toFloat32(out[textOut], req.into);
  }

  /**
   * The float input is made here, from the batch's 8-bit crops, into memory this thread keeps and
   * reuses (onnxruntime-node refuses tensors over a SharedArrayBuffer, so the shared crops could
   * not be fed as they are anyway): no allocation per batch, and no work on the event loop.
   */
  const tensor = new ChwTensor();

  async function runImage(req: Extract<EmbedRequest, { kind: 'image' }>): Promise<Float32Array> {
    if (vision === undefined || visionOut === undefined) throw new Error('this run has no vision model');
    const { count, height, width } = req.pixels;
    const out = await vision.run({ pixel_values: new ort.Tensor('float32', tensor.fill(req.pixels), [count, 3, height, width]) }, [visionOut]);
    return toFloat32(out[visionOut], req.into);
  }

  let received = 0;
  port!.on('message', (req: EmbedRequest) => {
    if (++received === init.exitAtRequest) process.exit(70);
    queue.push(req);
    void pump();
  });
}

/**
 * Copies the output into the caller's shared `into` when given (it must hold exactly the output),
 * else into a fresh Float32Array we own (ORT's buffer must not be transferred).
 */
function toFloat32(t: ort.Tensor | undefined, into: Float32Array | undefined): Float32Array {
  if (t === undefined) throw new Error('the model produced no output');
  if (t.type !== 'float32') throw new Error(`the model output is ${t.type}; vecmill reads float32 outputs (use an fp32-io export)`);
  const data = t.data as Float32Array;
  if (into === undefined) return new Float32Array(data);
  if (into.length !== data.length) throw new Error(`the model produced ${data.length} values where ${into.length} were expected`);
  into.set(data);
  return into;
}

main().catch((err: unknown) => {
  port.postMessage({ kind: 'init-error', message: (err as Error).message } satisfies EmbedThreadMessage);
});
