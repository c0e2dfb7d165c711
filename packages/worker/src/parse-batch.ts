import type { RowFailure } from '@vecmill/shared/formats/embedding-table';
import type { InputKind } from '@vecmill/shared/tsv/input-kind';
import type { SplitLine } from '@vecmill/shared/tsv/line-reader';
import { parseRow } from '@vecmill/shared/tsv/row-parser';

/**
 * A batch of lines split into fields, the first step of the embed path. Row `r` of the batch is
 * line `lineIndex[r]` of the split. The later steps fill in what they learn: content hashes,
 * `--reuse` hits, and errors of rows whose image or caption turns out bad.
 */
export interface ParsedBatch {
  readonly lineIndex: number[];
  readonly offset: number[];
  readonly text: (string | null)[];
  readonly errors: (RowFailure | null)[];
  readonly textSha256: (Uint8Array | null)[];
  readonly imageSha256: (Uint8Array | null)[];
  /** Embeddings found in the `--reuse` output, by batch row: these rows skip that tower. */
  readonly reusedText: Map<number, Float32Array>;
  readonly reusedImage: Map<number, Float32Array>;
  /** The image fields still to preprocess, in row order. */
  readonly images: BatchImages;
}

/**
 * Image fields of a batch: `bytes[k]` belongs to row `rows[k]`. Decoded images when `decoded`
 * (the `--reuse` path, which hashes before deciding to decode), else the raw base64 fields for
 * the preprocessing threads to decode.
 */
export interface BatchImages {
  readonly rows: number[];
  readonly bytes: Buffer[];
  readonly decoded: boolean;
}

/** What parsing a batch depends on. */
export interface ParseBatchOptions {
  readonly kind: InputKind;
  /** Reported in the error row of a line that was too long to read. */
  readonly maxLineBytes: number;
  /** Decode base64 image fields here rather than in the preprocessing threads. */
  readonly decodeImages: boolean;
}

/**
 * Splits each line of a batch into its fields. A line that cannot be a row (too long, bad UTF-8,
 * wrong columns, bad base64 when decoded here) becomes that row's error; the others carry their
 * caption and image field on to the next steps.
 */
export function parseBatch(lines: readonly SplitLine[], firstLine: number, options: ParseBatchOptions): ParsedBatch {
  const b: ParsedBatch = {
    lineIndex: [],
    offset: [],
    text: [],
    errors: [],
    textSha256: [],
    imageSha256: [],
    reusedText: new Map(),
    reusedImage: new Map(),
    images: { rows: [], bytes: [], decoded: options.decodeImages },
  };
  lines.forEach((line, r) => {
    b.lineIndex.push(firstLine + r);
    b.offset.push(line.offset);
    b.textSha256.push(null);
    b.imageSha256.push(null);
    if (line.tooLong === true) {
      b.text.push(null);
      b.errors.push({ reason: 'line_too_long', message: `line is longer than --max-line-bytes ${options.maxLineBytes}` });
      return;
    }
    const parsed = parseRow(line.bytes, options.kind, { decodeImage: options.decodeImages });
    b.text.push(parsed.text ?? null);
    if (!parsed.ok) {
      b.errors.push({ reason: parsed.reason, message: parsed.message });
      return;
    }
    b.errors.push(null);
    const image = parsed.image ?? parsed.imageBase64;
    if (image !== undefined) {
      b.images.rows.push(r);
      b.images.bytes.push(image);
    }
  });
  return b;
}
