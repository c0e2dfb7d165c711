import { RowError } from '../errors.js';

/** Anything outside both alphabets (standard `+/` and URL-safe `-_`) and padding; `=` placement is checked apart. */
const INVALID_CHAR = /[^A-Za-z0-9+/_=-]/;
const DATA_URL_PREFIX = 'data:';
const DATA_URL_MARKER = ';base64,';
/** A data URL header longer than this is not a media type: treat the field as plain base64. */
const MAX_DATA_URL_HEADER = 256;

/**
 * Characters validated and decoded at a time, a multiple of 4 so that every piece decodes to
 * whole bytes. Each piece becomes a short-lived string in V8's young generation; a whole field
 * over 128 KiB as one string would be a fresh large object, page-faulted in and unmapped again
 * for every image.
 */
const PIECE_CHARS = 64 * 1024;

/**
 * Decodes an image field strictly. `Buffer.from(s, 'base64')` silently skips characters it does
 * not know, which would turn a corrupt field into a plausible but wrong image; this throws
 * RowError('bad_base64') naming the first offending character instead. Accepts both alphabets
 * (EasyNLP writes with `urlsafe_b64encode`, other tools with the standard one), optional trailing
 * padding and a `data:<type>;base64,` prefix.
 *
 * Validation costs no scan of its own: Node's decoder skips every character outside both
 * alphabets and stops at a `=`, and either leaves fewer bytes than the field's length promises
 * (one character fewer in any piece of whole quads loses at least one byte), so a field that
 * decodes to exactly `floor(3 * length / 4)` bytes held none. The one exception, a length of
 * `4n + 1` whose stray character would have made no byte anyway, is invalid whatever it holds.
 * Only those two are scanned again, to say where the field went wrong.
 *
 * The bytes are decoded into `into` when it can hold them (the result is then a view of it, valid
 * until the caller reuses it: a preprocessing thread decodes every image into the same few
 * buffers instead of fresh memory), else into a new Buffer.
 */
export function decodeBase64Strict(field: Buffer | string, into?: Uint8Array): Buffer {
  const piece = typeof field === 'string' ? (from: number, to: number): string => field.slice(from, to) : (from: number, to: number): string => field.toString('latin1', from, to);
  const length = field.length;
  let start = 0;
  if (piece(0, DATA_URL_PREFIX.length) === DATA_URL_PREFIX) {
    const marker = field.indexOf(DATA_URL_MARKER);
    if (marker === -1 || marker > MAX_DATA_URL_HEADER) {
      throw new RowError('bad_base64', 'image field is a data URL without a ";base64," marker: only base64 data URLs are supported');
    }
    start = marker + DATA_URL_MARKER.length;
  }
  const textLength = length - start;
  if (textLength === 0) throw new RowError('bad_base64', 'image field is empty: expected base64-encoded image bytes');

  const at = (i: number): number => (typeof field === 'string' ? field.charCodeAt(i) : field[i]!);
  let padding = 0;
  while (padding < 2 && padding < textLength && at(length - 1 - padding) === 0x3d) padding++;
  const bodyLength = textLength - padding;
  const capacity = Math.ceil(textLength / 4) * 3;
  const out = into !== undefined && into.length >= capacity ? Buffer.from(into.buffer, into.byteOffset, capacity) : Buffer.allocUnsafe(capacity);
  let written = 0;
  for (let from = start; from < length; from += PIECE_CHARS) written += out.write(piece(from, Math.min(length, from + PIECE_CHARS)), written, 'base64');
  if (written !== Math.floor((bodyLength * 3) / 4) || bodyLength % 4 === 1) {
    throw (
      firstFault(piece, start, length, bodyLength) ??
      new RowError('bad_base64', `image field is not valid base64: ${bodyLength} characters cannot encode whole bytes (truncated field?)`)
    );
  }
  if (bodyLength === 0) throw new RowError('bad_base64', 'image field holds only "=" padding: expected base64-encoded image bytes');
  if (padding > 0 && textLength % 4 !== 0) {
    throw new RowError('bad_base64', `image field is not valid base64: ${padding} "=" padding character(s) do not match its length ${bodyLength}`);
  }
  return out.subarray(0, written);
}

/**
 * Why a field decoded short: its first character outside both alphabets anywhere, else its first
 * `=` before the trailing padding; undefined when it holds neither. Scans pieces of the field from
 * `start` with a precompiled regex.
 */
function firstFault(piece: (from: number, to: number) => string, start: number, length: number, bodyLength: number): RowError | undefined {
  let earlyPadding = -1;
  for (let from = start; from < length; from += PIECE_CHARS) {
    const text = piece(from, Math.min(length, from + PIECE_CHARS));
    const bad = INVALID_CHAR.exec(text);
    if (bad !== null) return new RowError('bad_base64', `image field is not valid base64: invalid character ${describeChar(bad[0])} at offset ${from - start + bad.index}`);
    const eq = earlyPadding === -1 ? text.indexOf('=') : -1;
    if (eq !== -1) earlyPadding = from - start + eq;
  }
  if (earlyPadding !== -1 && earlyPadding < bodyLength) return new RowError('bad_base64', `image field is not valid base64: padding "=" before the end at offset ${earlyPadding}`);
  return undefined;
}

/** Printable characters quoted, others (whitespace, control, non-ASCII bytes) as a code, so a message stays one readable line. */
function describeChar(char: string): string {
  const code = char.charCodeAt(0);
  return code > 0x20 && code < 0x7f ? `"${char}"` : `0x${code.toString(16).padStart(2, '0').toUpperCase()}`;
}

/** Standard-alphabet, padded base64: what generators write and what any decoder accepts. */
export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}
