import { InputError } from '../errors.js';
import type { EmbeddingTable, Modality } from './embedding-table.js';
import { float16ToFloat32 } from './float16.js';

/**
 * EasyNLP's CLIP feature files (`easynlp --mode predict --output_schema=text_feat|image_feat`):
 * one line per input row holding only the embedding, its values joined by tabs, each printed like
 * numpy's `str(np.float32)` (the shortest decimal that reads back as the same float32). Its
 * predictor writes nothing else on the line, so neither do we.
 *
 * EasyNLP has no notion of a failed row (its predictor stops on one); vecmill writes an empty
 * line instead so that line i is always input row i and a file lines up with its inputs.
 */

/**
 * Exactly what numpy's `str(np.float32(value))` prints, which is what EasyNLP writes: the shortest
 * decimal that reads back as the same float32, positional for 1e-4 ≤ |value| < 1e6 (always with a
 * fractional part, `1.0`) and scientific otherwise (`1e-05`, `1.234567e+06`). The digit search
 * starts at 8 significant digits, where most float32 values land, so a value costs about two
 * `toExponential` calls rather than nine.
 */
export function formatFloat32(value: number): string {
  if (!Number.isFinite(value)) return Number.isNaN(value) ? 'nan' : value > 0 ? 'inf' : '-inf';
  if (value === 0) return Object.is(value, -0) ? '-0.0' : '0.0';
  const attempt = (digits: number): string | undefined => {
    const text = value.toExponential(digits - 1);
    return Math.fround(Number(text)) === value ? text : undefined;
  };
  // Nine significant digits always identify a float32, so the search cannot fail.
  let best = attempt(8);
  if (best === undefined) return numpyLayout(value, evenTie(value, value.toExponential(8), 9));
  let digits = 8;
  while (digits > 1) {
    const shorter = attempt(digits - 1);
    if (shorter === undefined) break;
    best = shorter;
    digits--;
  }
  return numpyLayout(value, evenTie(value, best, digits));
}

/** Exact powers of ten (literals, unlike a computed `10 ** k`) for the tie pre-check. */
const POW10 = Array.from({ length: 23 }, (_, k) => Number(`1e${k}`));

/**
 * toExponential rounds an exact tie away from zero; numpy's Dragon4 rounds it to an even last
 * digit. Both read back as the same float32, but matching numpy keeps files byte-identical. A
 * tie means the value is exactly its `digits` shortest digits plus a trailing 5, which only an
 * odd rounded digit can hide (the even alternative is the truncation, one lower). Ties are rare,
 * so a cheap float64 test (scaling by an exact power of ten gives an integer ending in 5) rules
 * out almost every value before any string work.
 */
function evenTie(value: number, rounded: string, digits: number): string {
  const e = rounded.indexOf('e');
  if ((rounded.charCodeAt(e - 1) - 48) % 2 === 0) return rounded;
  // Beyond 10^±22 a float32 has far more than nine exact decimal digits, so it cannot be a tie.
  const scale = digits - Number(rounded.slice(e + 1));
  if (scale > 22 || scale < -22) return rounded;
  const scaled = scale >= 0 ? Math.abs(value) * POW10[scale]! : Math.abs(value) / POW10[-scale]!;
  if (!Number.isInteger(scaled) || scaled % 10 !== 5) return rounded;
  const precise = value.toExponential(digits);
  const pe = precise.indexOf('e');
  if (precise[pe - 1] !== '5' || Number(precise) !== value) return rounded;
  const kept = precise.slice(0, pe - 1);
  const truncated = (kept.endsWith('.') ? kept.slice(0, -1) : kept) + precise.slice(pe);
  return Math.fround(Number(truncated)) === value ? truncated : rounded;
}

/** Lays out `d.ddde±x` (from toExponential) the way numpy prints a float32 scalar. */
function numpyLayout(value: number, exponential: string): string {
  const negative = value < 0;
  const e = exponential.indexOf('e');
  const digits = exponential.slice(negative ? 1 : 0, e).replace('.', '');
  const exponent = Number(exponential.slice(e + 1));
  const sign = negative ? '-' : '';
  const abs = Math.abs(value);
  if (abs >= 1e-4 && abs < 1e6) {
    if (exponent < 0) return `${sign}0.${'0'.repeat(-exponent - 1)}${digits}`;
    const whole = digits.slice(0, exponent + 1).padEnd(exponent + 1, '0');
    return `${sign}${whole}.${digits.slice(exponent + 1) || '0'}`;
  }
  const mantissa = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  return `${sign}${mantissa}e${exponent < 0 ? '-' : '+'}${String(Math.abs(exponent)).padStart(2, '0')}`;
}

/**
 * The feature file of one modality, as text chunks of `rowsPerChunk` lines each (about 3 MB at
 * D = 512 with the default), so that a shard of any size streams with flat memory. Every row of
 * the table yields one line, ending in `\n`: its tab-joined values, or nothing when the row has
 * no embedding of this modality.
 */
export function* featureTsvLines(table: EmbeddingTable, modality: Modality, rowsPerChunk = 512): Generator<string> {
  const d = table.dims;
  for (let start = 0; start < table.numRows; start += rowsPerChunk) {
    const end = Math.min(table.numRows, start + rowsPerChunk);
    const raw = table.embeddings(modality, start, end);
    const values = raw instanceof Uint16Array ? float16ToFloat32(raw) : raw;
    const present = table.present(modality, start, end);
    let text = '';
    for (let r = 0; r < end - start; r++) {
      if (present[r] === 1) {
        const base = r * d;
        let line = formatFloat32(values[base]!);
        for (let j = 1; j < d; j++) line += '\t' + formatFloat32(values[base + j]!);
        text += line;
      }
      text += '\n';
    }
    yield text;
  }
}

/**
 * Parses one line of a feature file (without its newline): the embedding, or null for the empty
 * line of a row without one. For tests and `vecmill inspect`; throws InputError on a non-number.
 */
export function parseFeatureLine(line: string, name = 'feature TSV'): Float32Array | null {
  if (line === '') return null;
  const fields = line.split('\t');
  const out = new Float32Array(fields.length);
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i]!;
    const value = field === 'nan' ? NaN : field === 'inf' ? Infinity : field === '-inf' ? -Infinity : Number(field);
    if (field.trim() === '' || (Number.isNaN(value) && field !== 'nan')) {
      throw new InputError(`${name}: field ${i + 1} (${JSON.stringify(field.slice(0, 40))}) is not a number`, { name });
    }
    out[i] = value;
  }
  return out;
}
