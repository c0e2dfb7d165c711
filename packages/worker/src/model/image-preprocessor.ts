import { createHash } from 'node:crypto';
import { decodeBase64Strict } from '@vecmill/shared/tsv/base64';
import { preprocessImageInto, type DecodeOptions, type PreprocessSpec } from './image-preprocess.js';

/**
 * The image port of the embed processor: turn encoded bytes into CHW floats at a place in a
 * batch buffer, throwing RowError for a bad image. The pool runs it on worker threads; the inline
 * version runs it here (tests, tools).
 */
export interface ImagePreprocessor {
  readonly spec: PreprocessSpec;
  preprocessInto(bytes: Buffer, out: Float32Array, offset: number): Promise<void>;
  /**
   * Decodes a strict base64 field first (RowError `bad_base64` when invalid), then preprocesses
   * the image; resolves with the sha256 of the decoded image bytes, the row's content hash.
   */
  preprocessBase64Into(field: Buffer, out: Float32Array, offset: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** Preprocesses on the calling thread: simple, but the bicubic resize then runs on the event loop. */
export class InlinePreprocessor implements ImagePreprocessor {
  constructor(
    readonly spec: PreprocessSpec,
    private readonly options: DecodeOptions,
  ) {}

  preprocessInto(bytes: Buffer, out: Float32Array, offset: number): Promise<void> {
    return preprocessImageInto(bytes, this.spec, this.options, out, offset);
  }

  async preprocessBase64Into(field: Buffer, out: Float32Array, offset: number): Promise<Uint8Array> {
    const bytes = decodeBase64Strict(field);
    await preprocessImageInto(bytes, this.spec, this.options, out, offset);
    return createHash('sha256').update(bytes).digest();
  }

  async close(): Promise<void> {}
}
