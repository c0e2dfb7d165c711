import type { S3Client } from '@aws-sdk/client-s3';
import { statSync, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { ConfigError, InputError, NotFoundError } from '../errors.js';
import { LocalStore } from './local-store.js';
import { parseLocation, type Location } from './location.js';
import type { ObjectInfo, ObjectStore } from './object-store.js';
import { createS3Client, S3Store, type S3ClientOptions, type S3StoreOptions } from './s3-store.js';

/** One input object found by `resolveInputs`, with the store to read it through. */
export interface ResolvedInput {
  /** Canonical location of the object: an absolute path or `s3://bucket/key`. */
  readonly uri: string;
  readonly store: ObjectStore;
  /** `info.key` is relative to `store`. */
  readonly info: ObjectInfo;
}

/**
 * Clients are shared per settings object: every store opened with the same `S3ClientOptions`
 * reuses one connection pool instead of opening sockets per input file.
 */
const clients = new WeakMap<S3ClientOptions, S3Client>();

function clientFor(s3: S3ClientOptions | undefined, what: string): S3Client {
  if (s3 === undefined) {
    throw new ConfigError(`S3 settings are missing for ${what}: set the S3 region (and the endpoint and credentials for a non-AWS server)`);
  }
  let client = clients.get(s3);
  if (client === undefined) {
    client = createS3Client(s3);
    clients.set(s3, client);
  }
  return client;
}

/**
 * A store rooted at `location`, for outputs and other folders. A local path naming an existing
 * file roots at its folder. An S3 key is always taken as a prefix (`s3://b/out` = `s3://b/out/`),
 * since S3 cannot say synchronously whether an object is meant; use `resolveInputs` for objects.
 */
export function openStore(location: Location, s3: S3ClientOptions | undefined, options: S3StoreOptions = {}): ObjectStore {
  if (location.kind === 'local') {
    let stats: Stats | undefined;
    try {
      stats = statSync(location.path);
    } catch {
      stats = undefined;
    }
    return new LocalStore(stats?.isFile() === true ? dirname(location.path) : location.path);
  }
  const prefix = location.key === '' || location.key.endsWith('/') ? location.key : `${location.key}/`;
  return new S3Store(clientFor(s3, `s3://${location.bucket}/${location.key}`), location.bucket, prefix, options);
}

/**
 * Expands input specs into the objects to read, in a stable order: specs in the order given, each
 * expanded in ascending key order, duplicates dropped (first occurrence wins). A spec is a local
 * file, a local folder (every regular file below it, hidden ones skipped), a glob whose wildcard
 * segments (`*`, `?`, `**`) come after a literal folder or prefix, `s3://bucket/key` (one object)
 * or `s3://bucket/prefix/` (every object below, zero-byte folder markers skipped). `s3://b/dir`
 * without a slash falls back to the prefix `dir/` when no object `dir` exists, like a local folder.
 */
export async function resolveInputs(
  uris: readonly string[],
  s3: S3ClientOptions | undefined,
  cwd: string,
  options: S3StoreOptions = {},
): Promise<ResolvedInput[]> {
  const seen = new Set<string>();
  const resolved: ResolvedInput[] = [];
  for (const uri of uris) {
    const location = parseLocation(uri, cwd);
    const found = location.kind === 'local' ? await resolveLocal(uri, location.path) : await resolveS3(uri, location, s3, options);
    for (const input of found) {
      if (seen.has(input.uri)) continue;
      seen.add(input.uri);
      resolved.push(input);
    }
  }
  return resolved;
}

async function resolveLocal(uri: string, path: string): Promise<ResolvedInput[]> {
  const stats = await stat(path).catch((err: unknown) => {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new InputError(`cannot read input ${uri}: ${code ?? String(err)} — check the path and its permissions`, { uri }, { cause: err });
  });
  if (stats?.isFile() === true) {
    const store = new LocalStore(dirname(path));
    return [entry(store, await store.stat(basename(path)))];
  }
  if (stats?.isDirectory() === true) {
    const found = await collect(new LocalStore(path), undefined, true);
    if (found.length === 0) throw new InputError(`input folder has no files: ${uri} — check the path`, { uri });
    return found;
  }
  const glob = splitGlob(path.split('/'));
  if (stats === undefined && glob !== undefined) {
    const found = await collect(new LocalStore(glob.base.join('/') || '/'), glob.pattern, true);
    if (found.length === 0) throw new InputError(`no files match ${uri} — check the pattern`, { uri });
    return found;
  }
  throw new InputError(`input not found: ${uri} — check the path or bucket`, { uri });
}

async function resolveS3(
  uri: string,
  location: Extract<Location, { kind: 's3' }>,
  s3: S3ClientOptions | undefined,
  options: S3StoreOptions,
): Promise<ResolvedInput[]> {
  const client = clientFor(s3, uri);
  const { bucket, key } = location;
  const glob = splitGlob(key.split('/'));
  if (glob !== undefined) {
    const base = glob.base.length === 0 ? '' : `${glob.base.join('/')}/`;
    const found = await collect(new S3Store(client, bucket, base, options), glob.pattern, false);
    if (found.length === 0) throw new InputError(`no objects match ${uri} — check the pattern`, { uri });
    return found;
  }
  if (key === '' || key.endsWith('/')) {
    const found = await collect(new S3Store(client, bucket, key, options), undefined, false);
    if (found.length === 0) throw new InputError(`no objects under ${uri} — check the prefix`, { uri });
    return found;
  }
  const slash = key.lastIndexOf('/');
  const store = new S3Store(client, bucket, key.slice(0, slash + 1), options);
  try {
    return [entry(store, await store.stat(key.slice(slash + 1)))];
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
  }
  const asFolder = await collect(new S3Store(client, bucket, `${key}/`, options), undefined, false).catch((err: unknown) => {
    if (err instanceof NotFoundError) return [];
    throw err;
  });
  if (asFolder.length === 0) throw new InputError(`input not found: ${uri} — check the path or bucket`, { uri });
  return asFolder;
}

/** Lists all of `store`, keeping objects that match `pattern` (all when undefined). */
async function collect(store: ObjectStore, pattern: readonly string[] | undefined, local: boolean): Promise<ResolvedInput[]> {
  const found: ResolvedInput[] = [];
  for await (const info of store.list('')) {
    const parts = info.key.split('/');
    if (local && parts.some((p) => p.startsWith('.'))) continue;
    if (!local && info.size === 0 && (info.key === '' || info.key.endsWith('/'))) continue;
    if (pattern !== undefined && !matchSegments(pattern, parts)) continue;
    found.push(entry(store, info));
  }
  return found;
}

function entry(store: ObjectStore, info: ObjectInfo): ResolvedInput {
  return { uri: store.localPath(info.key) ?? `${store.description}${info.key}`, store, info };
}

function hasWildcard(segment: string): boolean {
  return segment.includes('*') || segment.includes('?');
}

/** Splits path segments at the first one holding a wildcard; undefined when there is none. */
function splitGlob(segments: readonly string[]): { base: string[]; pattern: string[] } | undefined {
  const first = segments.findIndex(hasWildcard);
  if (first === -1) return undefined;
  return { base: segments.slice(0, first), pattern: segments.slice(first) };
}

/** `**` matches any number of whole segments (including none); `*` and `?` stay within one segment. */
function matchSegments(pattern: readonly string[], parts: readonly string[]): boolean {
  const [head, ...rest] = pattern;
  if (head === undefined) return parts.length === 0;
  if (head === '**') {
    for (let skip = 0; skip <= parts.length; skip++) {
      if (matchSegments(rest, parts.slice(skip))) return true;
    }
    return false;
  }
  const [part, ...remaining] = parts;
  return part !== undefined && segmentRegExp(head).test(part) && matchSegments(rest, remaining);
}

function segmentRegExp(segment: string): RegExp {
  const source = segment.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${source}$`, 's');
}
