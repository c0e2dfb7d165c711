import { createHash } from 'node:crypto';
import { RowError } from '@vecmill/shared/errors';
import { decodeBase64Strict } from '@vecmill/shared/tsv/base64';
import { preprocessImageInto, type DecodeOptions, type PreprocessSpec } from './image-preprocess.js';
import { cropBytes } from './pixel-batch.js';

/** One image of a batch: its content hash when it came as a base64 field, or why it cannot be embedded. */
export type BatchImageResult = { readonly sha256: Uint8Array | undefined } | { readonly error: RowError };

/**
 * The image port of the embed processor: turn a batch of encoded images into crops (see
 * PixelBatch), image `i` at byte `i * 3 * outHeight * outWidth` of `out`. A bad image is a result (its RowError),
 * never a rejection: the promise rejects only for failures of ours (a dead thread, a closed pool),
 * and only once nothing writes into `out` any more. The pool runs it on worker threads; the inline
 * version runs it here (tests, tools, queries).
 */
export interface ImagePreprocessor {
  readonly spec: PreprocessSpec;
  /**
   * `base64`: each field is strict base64 (RowError `bad_base64` when invalid), decoded and then
   * hashed (sha256 of the image bytes, the row's content hash) before it is preprocessed.
   * The pool needs `out` over a SharedArrayBuffer, so its threads write there directly.
   */
  preprocessBatch(fields: readonly Buffer[], base64: boolean, out: Uint8Array): Promise<BatchImageResult[]>;
  close(): Promise<void>;
}

/** Preprocesses on the calling thread: simple, but the bicubic resize then runs on the event loop. */
export class InlinePreprocessor implements ImagePreprocessor {
  constructor(
    readonly spec: PreprocessSpec,
    private readonly options: DecodeOptions,
  ) {}

  /** One image's crop at `offset` (bytes) of `out`; throws RowError for a bad image. */
  preprocessInto(bytes: Buffer, out: Uint8Array, offset: number): Promise<void> {
    return preprocessImageInto(bytes, this.spec, this.options, out, offset);
  }

  async preprocessBatch(fields: readonly Buffer[], base64: boolean, out: Uint8Array): Promise<BatchImageResult[]> {
    const per = cropBytes(this.spec.outHeight, this.spec.outWidth);
    const results: BatchImageResult[] = [];
    for (const [i, field] of fields.entries()) {
      try {
        const bytes = base64 ? decodeBase64Strict(field) : field;
        await preprocessImageInto(bytes, this.spec, this.options, out, i * per);
        results.push({ sha256: base64 ? createHash('sha256').update(bytes).digest() : undefined });
      } catch (err) {
        if (!(err instanceof RowError)) throw err;
        results.push({ error: err });
      }
    }
    return results;
  }

  async close(): Promise<void> {}
}
