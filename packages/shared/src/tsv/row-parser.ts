import { RowError, type RowErrorReason } from '../errors.js';
import { decodeBase64Strict } from './base64.js';
import type { InputKind } from './input-kind.js';

/**
 * A row's fields, or why it cannot be embedded. Failures are data, not exceptions: one bad row
 * becomes an error row and never fails its batch. A failure keeps the caption when it decoded,
 * so error rows can still show which sample they were.
 */
export type ParsedRow =
  | { ok: true; text?: string; image?: Buffer; imageBase64?: Buffer }
  | { ok: false; reason: RowErrorReason; message: string; text?: string };

/** How much of a row `parseRow` decodes. */
export interface ParseRowOptions {
  /**
   * Decode the base64 image field here (default true). With false the row carries the raw field
   * as `imageBase64`, for a preprocessing thread to decode (and reject as `bad_base64`) off the
   * event loop.
   */
  readonly decodeImage?: boolean;
}

const TAB = 0x09;
/** Fatal, so invalid UTF-8 becomes a `bad_utf8` row instead of U+FFFD silently fed to the tokenizer. */
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Splits one line (as yielded by the line reader) into the fields its kind expects. Captions are
 * kept byte-for-byte, control characters included: the tokenizer normalizes them. An empty
 * caption in a pairs row is valid; an empty line is not a row of any kind (`missing_field` for
 * pairs and image, `empty_text` for text).
 */
export function parseRow(line: Buffer, kind: InputKind, options: ParseRowOptions = {}): ParsedRow {
  const tab = line.indexOf(TAB);
  const decodeImage = options.decodeImage === false ? keepImageField : decodeImageField;
  switch (kind) {
    case 'pairs': {
      if (tab === -1) {
        const what = line.length === 0 ? 'empty line' : 'no tab in line';
        return failure('missing_field', `${what}: expected text<TAB>base64-image`);
      }
      const text = decodeText(line.subarray(0, tab));
      if (typeof text !== 'string') return text;
      if (line.indexOf(TAB, tab + 1) !== -1) {
        return failure('extra_field', `line has ${countColumns(line)} tab-separated columns, expected 2 (text<TAB>base64-image)`, text);
      }
      if (tab === line.length - 1) return failure('missing_field', 'image field is empty: expected text<TAB>base64-image', text);
      return decodeImage(line.subarray(tab + 1), text);
    }
    case 'text': {
      const text = decodeText(line);
      if (typeof text !== 'string') return text;
      if (tab !== -1) {
        return failure('extra_field', `line has ${countColumns(line)} tab-separated columns, expected 1 for --kind text (a caption cannot contain a tab)`, text);
      }
      if (text.length === 0) return failure('empty_text', 'empty line: expected a caption');
      return { ok: true, text };
    }
    case 'image': {
      if (line.length === 0) return failure('missing_field', 'empty line: expected a base64-encoded image');
      if (tab !== -1) return failure('extra_field', `line has ${countColumns(line)} tab-separated columns, expected 1 for --kind image`);
      return decodeImage(line, undefined);
    }
  }
}

function decodeText(bytes: Buffer): string | ParsedRow {
  try {
    return utf8.decode(bytes);
  } catch {
    return failure('bad_utf8', 'caption is not valid UTF-8: re-encode the file as UTF-8');
  }
}

function keepImageField(field: Buffer, text: string | undefined): ParsedRow {
  return text === undefined ? { ok: true, imageBase64: field } : { ok: true, text, imageBase64: field };
}

function decodeImageField(field: Buffer, text: string | undefined): ParsedRow {
  let image: Buffer;
  try {
    image = decodeBase64Strict(field);
  } catch (err) {
    if (err instanceof RowError) return failure(err.reason, err.message, text);
    throw err;
  }
  return text === undefined ? { ok: true, image } : { ok: true, text, image };
}

function failure(reason: RowErrorReason, message: string, text?: string): ParsedRow {
  return text === undefined ? { ok: false, reason, message } : { ok: false, reason, message, text };
}

function countColumns(line: Buffer): number {
  let columns = 1;
  for (let tab = line.indexOf(TAB); tab !== -1; tab = line.indexOf(TAB, tab + 1)) columns++;
  return columns;
}
