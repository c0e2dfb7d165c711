/** Messages between the main thread and the inference thread. Buffers travel as transferables, or shared (SharedArrayBuffer batch buffers). */
import type { PixelBatch } from './pixel-batch.js';

/** Session settings sent once when the thread starts. */
export interface EmbedThreadInit {
  readonly textModelPath: string | undefined;
  readonly visionModelPath: string | undefined;
  readonly providers: readonly string[];
  readonly intraOpThreads: number;
  /** Fault injection for crash-recovery tests: the thread exits on receiving this request (1-based). */
  readonly exitAtRequest: number | undefined;
}

/** The graphs' declared inputs, reported back so the main thread can shape its batches. */
export interface EmbedThreadReady {
  readonly kind: 'ready';
  readonly device: 'cpu' | 'cuda';
  readonly fallbackWarning: string | undefined;
  readonly dims: number;
  readonly textSeqFixed: number | undefined;
  readonly textSeqDynamic: boolean;
  readonly textTakesMask: boolean;
}

/**
 * A model call. With `into` (a view over a SharedArrayBuffer of `batch × dims` floats), the thread
 * writes the vectors there and answers with that view: the caller's reused memory, no array
 * allocated per call on either side.
 */
export type EmbedRequest =
  | { readonly kind: 'text'; readonly id: number; readonly ids: BigInt64Array; readonly batch: number; readonly seqLen: number; readonly lengths: readonly number[]; readonly into: Float32Array | undefined }
  | { readonly kind: 'image'; readonly id: number; readonly pixels: PixelBatch; readonly into: Float32Array | undefined };

export type EmbedResponse =
  | { readonly kind: 'result'; readonly id: number; readonly values: Float32Array }
  | { readonly kind: 'error'; readonly id: number; readonly message: string };

export type EmbedThreadMessage = EmbedThreadReady | EmbedResponse | { readonly kind: 'init-error'; readonly message: string };
