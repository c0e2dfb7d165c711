import { InputError } from './errors.js';

/** The JSON type a field must have; a trailing `?` lets the field be absent. */
export type JsonFieldType = `${'string' | 'number' | 'integer' | 'boolean' | 'object' | 'array'}${'' | '?'}`;

/**
 * A JSON file vecmill writes and reads back (plan.json, shard markers, manifest.json). `T` is
 * the type a file that passes the checks is read as.
 */
export interface VersionedJsonFormat<T> {
  /** The newest format version this vecmill reads; files from a newer vecmill carry a higher one. */
  readonly version: number;
  /**
   * The fields readers rely on, as paths: `rows.in` is the `in` field of the `rows` object,
   * `files[].key` the `key` of every element of the `files` array. A parent is listed before
   * its children. Fields not listed are not checked, so a reader never trips on an addition.
   */
  readonly fields: Readonly<Record<string, JsonFieldType>>;
  /** What to do about a damaged file, e.g. "delete it to recompute the split". */
  readonly remedy: string;
  /** Carries `T`, so a format and the type read through it cannot drift apart. */
  readonly _type?: T;
}

/**
 * Parses a file written in `format`: valid JSON, a `version` this vecmill knows, every listed
 * field present with its type. Anything else is refused with one line naming `file` (e.g.
 * "manifest.json in /data/out/") and saying what to do: upgrade vecmill for a file from a newer
 * one, the format's remedy for a damaged one. The error is an InputError: the file is what the
 * reading command was given, and reading it again will not help.
 */
export function parseVersionedJson<T>(raw: Uint8Array, format: VersionedJsonFormat<T>, file: string): T {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8'));
  } catch (err) {
    throw damaged(file, 'it is not valid JSON', format, err);
  }
  if (!isObject(value)) throw damaged(file, 'it is not a JSON object', format);
  const version = value['version'];
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) throw damaged(file, 'its version is missing or not a whole number', format);
  if (version > format.version) {
    throw new InputError(
      `${file} was written by a newer vecmill (format version ${version}; this one reads up to ${format.version}): upgrade vecmill to read it`,
      { file, version },
    );
  }
  for (const [path, type] of Object.entries(format.fields)) {
    const problem = checkField(value, path.split('.'), type, '');
    if (problem !== undefined) throw damaged(file, problem, format);
  }
  return value as T;
}

function damaged(file: string, problem: string, format: VersionedJsonFormat<unknown>, cause?: unknown): InputError {
  return new InputError(`${file} is damaged (${problem}); ${format.remedy}`, { file }, cause === undefined ? {} : { cause });
}

/** Checks the field at `path` below `value` (`shown` is the path walked so far); returns what is wrong, if anything. */
function checkField(value: Record<string, unknown>, path: readonly string[], type: JsonFieldType, shown: string): string | undefined {
  const [head, ...rest] = path as [string, ...string[]];
  const each = head.endsWith('[]');
  const name = each ? head.slice(0, -2) : head;
  const here = shown === '' ? name : `${shown}.${name}`;
  const field = Object.hasOwn(value, name) ? value[name] : undefined;
  if (rest.length === 0 && !each) {
    if (field === undefined) return type.endsWith('?') ? undefined : `field ${here} is missing`;
    return hasType(field, type) ? undefined : `field ${here} is not ${article(type)}`;
  }
  if (field === undefined && type.endsWith('?')) return undefined;
  if (each) {
    if (!Array.isArray(field)) return `field ${here} is missing or not an array`;
    for (let i = 0; i < field.length; i++) {
      const element: unknown = field[i];
      if (rest.length === 0) {
        if (!hasType(element, type)) return `field ${here}[${i}] is not ${article(type)}`;
        continue;
      }
      if (!isObject(element)) return `field ${here}[${i}] is not an object`;
      const problem = checkField(element, rest, type, `${here}[${i}]`);
      if (problem !== undefined) return problem;
    }
    return undefined;
  }
  if (!isObject(field)) return `field ${here} is missing or not an object`;
  return checkField(field, rest, type, here);
}

function hasType(v: unknown, type: JsonFieldType): boolean {
  switch (type.replace('?', '')) {
    case 'string':
      return typeof v === 'string';
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'integer':
      return typeof v === 'number' && Number.isSafeInteger(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'array':
      return Array.isArray(v);
    default:
      return isObject(v);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function article(type: JsonFieldType): string {
  const t = type.replace('?', '');
  return t === 'integer' ? 'a whole number' : t === 'array' || t === 'object' ? `an ${t}` : `a ${t}`;
}
