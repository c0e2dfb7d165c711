import { preprocessImageInto, type DecodeOptions, type PreprocessSpec } from './image-preprocess.js';

/**
 * The image port of the embed processor: turn encoded bytes into CHW floats at a place in a
 * batch buffer, throwing RowError for a bad image. The pool runs it on worker threads; the inline
 * version runs it here (tests, tools).
 */
export interface ImagePreprocessor {
  readonly spec: PreprocessSpec;
  preprocessInto(bytes: Buffer, out: Float32Array, offset: number): Promise<void>;
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

  async close(): Promise<void> {}
}
