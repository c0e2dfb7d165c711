import { RowError } from '../errors.js';

/** Anything outside both alphabets (standard `+/` and URL-safe `-_`) and padding; `=` placement is checked apart. */
const INVALID_CHAR = /[^A-Za-z0-9+/_=-]/;
const DATA_URL_PREFIX = 'data:';
const DATA_URL_MARKER = ';base64,';
/** A data URL header longer than this is not a media type: treat the field as plain base64. */
const MAX_DATA_URL_HEADER = 256;

/**
 * Decodes an image field strictly. `Buffer.from(s, 'base64')` silently skips characters it does
 * not know, which would turn a corrupt field into a plausible but wrong image; this validates
 * first (one latin1 string copy, one precompiled regex scan) and throws RowError('bad_base64')
 * naming the first offending character. Accepts both alphabets (EasyNLP writes with
 * `urlsafe_b64encode`, other tools with the standard one), optional trailing padding and a
 * `data:<type>;base64,` prefix.
 */
export function decodeBase64Strict(field: Buffer | string): Buffer {
  let text = typeof field === 'string' ? field : field.toString('latin1');
  if (text.startsWith(DATA_URL_PREFIX)) {
    const marker = text.indexOf(DATA_URL_MARKER);
    if (marker === -1 || marker > MAX_DATA_URL_HEADER) {
      throw new RowError('bad_base64', 'image field is a data URL without a ";base64," marker: only base64 data URLs are supported');
    }
    text = text.slice(marker + DATA_URL_MARKER.length);
  }
  if (text.length === 0) throw new RowError('bad_base64', 'image field is empty: expected base64-encoded image bytes');

  let padding = 0;
  while (padding < 2 && text.charCodeAt(text.length - 1 - padding) === 0x3d) padding++;
  const bodyLength = text.length - padding;
  const bad = INVALID_CHAR.exec(text);
  if (bad !== null) {
    throw new RowError('bad_base64', `image field is not valid base64: invalid character ${describeChar(bad[0])} at offset ${bad.index}`);
  }
  const earlyPadding = text.indexOf('=');
  if (earlyPadding !== -1 && earlyPadding < bodyLength) {
    throw new RowError('bad_base64', `image field is not valid base64: padding "=" before the end at offset ${earlyPadding}`);
  }
  if (bodyLength === 0) throw new RowError('bad_base64', 'image field holds only "=" padding: expected base64-encoded image bytes');
  if (bodyLength % 4 === 1) {
    throw new RowError('bad_base64', `image field is not valid base64: ${bodyLength} characters cannot encode whole bytes (truncated field?)`);
  }
  if (padding > 0 && text.length % 4 !== 0) {
    throw new RowError('bad_base64', `image field is not valid base64: ${padding} "=" padding character(s) do not match its length ${bodyLength}`);
  }
  return Buffer.from(text, 'base64');
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
