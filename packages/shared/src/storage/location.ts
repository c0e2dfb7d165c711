import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../errors.js';

/**
 * Where data lives, parsed once from a command-line string so the rest of vecmill branches on
 * `kind` instead of re-parsing URIs. Local paths are always absolute, so a location means the same
 * thing whichever folder a worker was started from.
 */
export type Location =
  | { readonly kind: 'local'; readonly path: string }
  /** `key` is '' for a whole bucket, ends with '/' for a prefix, otherwise names one object. */
  | { readonly kind: 's3'; readonly bucket: string; readonly key: string };

const ACCEPTED_FORMS = 'use a local path, file:///absolute/path, s3://bucket/key or s3://bucket/prefix/';

/**
 * Parses `s3://bucket/key`, `s3://bucket/prefix/`, `s3://bucket`, `file:///abs/path` and local
 * paths (relative ones resolved against `cwd`). Other URL schemes (`http://`, `gs://`) are
 * rejected rather than taken as odd local folder names, since that is always a typo or a
 * misunderstanding.
 */
export function parseLocation(uri: string, cwd: string = process.cwd()): Location {
  if (uri.trim() === '') throw new ConfigError(`empty location: ${ACCEPTED_FORMS}`);
  if (uri.includes('\0')) throw new ConfigError(`location ${JSON.stringify(uri)} contains a NUL byte: ${ACCEPTED_FORMS}`);
  if (/^s3:\/\//i.test(uri)) return parseS3(uri);
  if (/^file:/i.test(uri)) return parseFileUrl(uri);
  if (/^[a-z][a-z0-9+.-]+:\/\//i.test(uri)) {
    const scheme = uri.slice(0, uri.indexOf(':') + 1);
    throw new ConfigError(`unsupported location scheme "${scheme}" in ${redactUserInfo(uri)}: ${ACCEPTED_FORMS}`, {
      location: redactUserInfo(uri),
    });
  }
  return { kind: 'local', path: isAbsolute(uri) ? resolve(uri) : resolve(cwd, uri) };
}

/** Text for messages and manifests. Locations never carry credentials, so this never prints any. */
export function formatLocation(location: Location): string {
  return location.kind === 'local' ? location.path : `s3://${location.bucket}/${location.key}`;
}

/** Joins a prefix and a name with exactly one `/`; an empty prefix leaves the name unchanged. */
export function joinKey(prefix: string, name: string): string {
  const head = prefix.replace(/\/+$/, '');
  const tail = name.replace(/^\/+/, '');
  if (head === '') return tail;
  if (tail === '') return `${head}/`;
  return `${head}/${tail}`;
}

/**
 * Why `key` is not a valid object key, or undefined when it is. Keys are `/`-separated relative
 * paths with no empty, `.` or `..` segments, no backslashes and no NUL: this is what keeps a local
 * store's keys inside its root folder and makes a key mean the same object on disk and in S3.
 * With `asPrefix`, '' and a trailing `/` are allowed (listing prefixes).
 */
export function describeKeyProblem(key: string, asPrefix = false): string | undefined {
  if (key === '') return asPrefix ? undefined : 'it is empty';
  if (key.includes('\0')) return 'it contains a NUL byte';
  if (key.includes('\\')) return 'it contains a backslash';
  if (key.startsWith('/')) return 'it starts with /';
  const segments = key.split('/');
  if (asPrefix && key.endsWith('/')) segments.pop();
  if (segments.some((s) => s === '')) return 'it has an empty segment (//) or ends with /';
  if (segments.some((s) => s === '.' || s === '..')) return 'it has a . or .. segment';
  return undefined;
}

function parseS3(uri: string): Location {
  const rest = uri.slice('s3://'.length);
  const slash = rest.indexOf('/');
  const bucket = slash === -1 ? rest : rest.slice(0, slash);
  const key = slash === -1 ? '' : rest.slice(slash + 1);
  if (bucket.includes('@') || bucket.includes(':')) {
    throw new ConfigError('an S3 location cannot carry credentials or a port: write s3://bucket/key and pass credentials and endpoint through the S3 settings');
  }
  if (!/^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/i.test(bucket)) {
    throw new ConfigError(`invalid S3 bucket name "${bucket}" in ${uri}: bucket names are 3-63 letters, digits, dots and hyphens (${ACCEPTED_FORMS})`, {
      location: uri,
    });
  }
  const problem = describeKeyProblem(key, true);
  if (problem !== undefined) {
    throw new ConfigError(`invalid S3 key in ${JSON.stringify(uri)}: ${problem} (${ACCEPTED_FORMS})`, { location: uri });
  }
  return { kind: 's3', bucket, key };
}

function parseFileUrl(uri: string): Location {
  let path: string;
  try {
    path = fileURLToPath(uri);
  } catch (err) {
    throw new ConfigError(`invalid file URL ${redactUserInfo(uri)}: ${ACCEPTED_FORMS}`, { location: redactUserInfo(uri) }, { cause: err });
  }
  return { kind: 'local', path: resolve(path) };
}

/** `scheme://user:secret@host/...` → `scheme://***@host/...`, so a rejected URL never echoes a password. */
function redactUserInfo(uri: string): string {
  return uri.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1***@');
}
