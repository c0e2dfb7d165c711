import type { TokenBatch } from './clip-tokenizer.js';
import type { PixelBatch } from './pixel-batch.js';

/** How the text graph's sequence axis is declared: decides whether padding can be trimmed. */
export interface TextInputShape {
  /** True when the graph accepts any sequence length (padding to the batch's longest caption is then exact). */
  readonly dynamic: boolean;
  /** The declared length when the axis is fixed. */
  readonly fixedLength: number | undefined;
}

/**
 * The model port. Processors embed through it without knowing whether the towers run in a worker
 * thread on the CPU, on a GPU, or in a test double; vectors come back raw (not normalized).
 */
export interface Embedder {
  readonly dims: number;
  readonly hasText: boolean;
  readonly hasImage: boolean;
  readonly textInput: TextInputShape;
  /** Whether the text graph takes `attention_mask`: a bidirectional tower (BERT) ignores padding only then. */
  readonly textTakesMask: boolean;
  /** Which execution provider actually runs the sessions (after any fallback). */
  readonly device: 'cpu' | 'cuda';
  /**
   * `batch * dims` floats, row-major. With `into` (a view over a SharedArrayBuffer of that many
   * floats, which the caller reuses call after call), an embedder may write the vectors there and
   * return it instead of allocating an array per call; callers read whichever array is returned.
   */
  embedText(tokens: TokenBatch, into?: Float32Array): Promise<Float32Array>;
  /**
   * `pixels.count` images as crops (see PixelBatch), which the embedder turns into the model's
   * `[count, 3, height, width]` float32 input; returns `count * dims` floats, row-major (`into` as for `embedText`).
   */
  embedImages(pixels: PixelBatch, into?: Float32Array): Promise<Float32Array>;
  close(): Promise<void>;
}

/** L2-normalizes each row of a row-major matrix in place; zero rows stay zero. */
export function l2NormalizeRows(values: Float32Array, dims: number): Float32Array {
  for (let off = 0; off < values.length; off += dims) {
    let sum = 0;
    for (let j = 0; j < dims; j++) {
      const v = values[off + j] as number;
      sum += v * v;
    }
    if (sum === 0) continue;
    const inv = 1 / Math.sqrt(sum);
    for (let j = 0; j < dims; j++) values[off + j] = (values[off + j] as number) * inv;
  }
  return values;
}
