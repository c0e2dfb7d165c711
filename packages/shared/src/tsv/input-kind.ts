import { InputError, RowError } from '../errors.js';
import { decodeBase64Strict } from './base64.js';

/**
 * The EasyNLP CLIP TSV layouts: `pairs` is `text<TAB>base64-image`, `text` and `image` are one
 * column each. The kind decides which encoders run and which columns a shard has.
 */
export type InputKind = 'pairs' | 'text' | 'image';

/** Lines looked at: enough to catch a mixed file early, few enough to stay cheap on image lines. */
const SAMPLE_LINES = 8;
const TAB = 0x09;
/** Bytes needed to see every signature below (the ftyp brand ends at byte 12). */
const SIGNATURE_BYTES = 16;
const HEIF_BRANDS = new Set(['avif', 'avis', 'heic', 'heix', 'heim', 'heis', 'hevc', 'hevx', 'mif1', 'msf1']);

/**
 * Guesses the kind from the first non-empty lines, so users rarely need `--kind`. Two columns
 * mean pairs; one column is `image` when it is strict base64 of a known image signature, else
 * `text`. A guess from disagreeing lines would silently embed the wrong column, so that throws
 * InputError asking for `--kind` instead.
 */
export function detectInputKind(sampleLines: readonly Buffer[]): InputKind {
  const lines = sampleLines.filter((line) => line.length > 0).slice(0, SAMPLE_LINES);
  const first = lines[0];
  if (first === undefined) {
    throw new InputError('cannot detect the input kind: the sample has no non-empty lines; check the input or pass --kind pairs|text|image');
  }
  const firstKind = classifyLine(first);
  lines.forEach((line, index) => {
    const kind = index === 0 ? firstKind : classifyLine(line);
    if (kind !== firstKind) {
      throw new InputError(
        `cannot detect the input kind: the first non-empty sample line looks like ${describe(firstKind)} but non-empty sample line ${index + 1} looks like ${describe(kind)}; pass --kind pairs|text|image`,
        { firstKind, lineKind: kind, sampleLine: index + 1 },
      );
    }
  });
  if (typeof firstKind === 'number') {
    throw new InputError(`cannot detect the input kind: sample lines have ${firstKind} tab-separated columns, expected 1 or 2; pass --kind pairs|text|image`, {
      columns: firstKind,
    });
  }
  return firstKind;
}

/** A kind, or the column count when it fits no kind. */
function classifyLine(line: Buffer): InputKind | number {
  let columns = 1;
  for (let tab = line.indexOf(TAB); tab !== -1; tab = line.indexOf(TAB, tab + 1)) columns++;
  if (columns === 2) return 'pairs';
  if (columns > 2) return columns;
  return looksLikeBase64Image(line) ? 'image' : 'text';
}

function looksLikeBase64Image(line: Buffer): boolean {
  let bytes: Buffer;
  try {
    bytes = decodeBase64Strict(line);
  } catch (err) {
    if (err instanceof RowError) return false;
    throw err;
  }
  return hasImageSignature(bytes.subarray(0, SIGNATURE_BYTES));
}

function hasImageSignature(b: Buffer): boolean {
  const ascii = (from: number, to: number): string => b.toString('latin1', from, to);
  return (
    (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) ||
    b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) ||
    ascii(0, 6) === 'GIF87a' ||
    ascii(0, 6) === 'GIF89a' ||
    (ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WEBP') ||
    ascii(0, 4) === 'II*\u0000' ||
    ascii(0, 4) === 'MM\u0000*' ||
    ascii(0, 2) === 'BM' ||
    (ascii(4, 8) === 'ftyp' && HEIF_BRANDS.has(ascii(8, 12)))
  );
}

function describe(kind: InputKind | number): string {
  return typeof kind === 'number' ? `${kind} columns` : kind;
}
