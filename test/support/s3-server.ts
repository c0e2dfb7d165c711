import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, type Dirent } from 'node:fs';
import { copyFile, mkdir, readdir, rename, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { S3ClientOptions } from '@vecmill/shared/storage/s3-store';
import { makeTempDir } from './tmp.js';

/**
 * A real S3 server for integration tests: s3rver (a Koa app storing objects in a temp folder),
 * started in-process on 127.0.0.1 port 0, driven by the real @aws-sdk/client-s3.
 *
 * s3rver 3.7 falls short of S3 in ways vecmill depends on, so this helper adds, in front of its
 * router and store:
 *  - `PUT` with `If-None-Match: *` answers 412 PreconditionFailed when the key exists (s3rver
 *    ignores the header). Conditional PUTs to one key are serialised, so of two racing writers
 *    exactly one wins, as on S3.
 *  - ListObjectsV2 is answered here: s3rver's continuation tokens use DES, which OpenSSL 3 (Node
 *    17+) no longer offers, so any truncated listing failed with 500; its walk also did not return
 *    keys in S3's byte order (`a/x` before `a-b`). Keys come back in UTF-8 byte order with working
 *    pagination, `start-after` and `delimiter`.
 *  - AbortMultipartUpload (`DELETE ?uploadId=`) is implemented (s3rver answers 405), so
 *    lib-storage's abort after a failed upload succeeds and the original error surfaces.
 *  - Object writes are atomic (temp file + rename) and complete before the PUT is answered;
 *    s3rver answered before the bytes reached its file and exposed partial objects. CopyObject
 *    (s3rver copies straight onto the target file) goes through the same temp file + rename.
 * Signatures are not verified (s3rver skips SigV4 checks), but the access key id must be the
 * one this server was started with. Clients must use path-style requests (`clientOptions` does).
 */
export interface S3TestServer {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** Ready-made settings for `createS3Client` / `openStore` / `resolveInputs`. */
  readonly clientOptions: S3ClientOptions;
  /** The folder s3rver keeps buckets in (removed by `close`). */
  readonly directory: string;
  /** Stops the server, drops open connections and deletes the data folder. Safe to call twice. */
  close(): Promise<void>;
}

/** Options for `startS3Server`. */
export interface S3TestServerOptions {
  /** Buckets created before the server accepts requests. Default: `['vecmill-test']`. */
  readonly buckets?: readonly string[];
  /** Default: a fresh random id per server. */
  readonly accessKeyId?: string;
  /** Default: a fresh random secret per server (tests may pass a sentinel to check it never leaks). */
  readonly secretAccessKey?: string;
}

interface KoaContext {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  headers: Record<string, string | string[] | undefined>;
  status: number;
  body: unknown;
  get(header: string): string;
}
type Middleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;

interface S3rverObject {
  bucket: string;
  key: string;
  content: Readable | Buffer;
  metadata: Record<string, string>;
}

interface S3rverStore {
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  getBucketPath(bucket: string): string;
  getBucket(bucket: string): Promise<unknown>;
  existsObject(bucket: string, key: string): Promise<boolean>;
  getMetadata(bucket: string, key: string): Promise<Record<string, string | number>>;
  putMetadata(bucket: string, key: string, metadata: Record<string, string>, md5: string): Promise<void>;
  putObject(object: S3rverObject): Promise<{ size: number; md5: string }>;
  copyObject(srcBucket: string, srcKey: string, destBucket: string, destKey: string, replacementMetadata: Record<string, string> | null): Promise<Record<string, string | number>>;
}

interface S3rverApp {
  store: S3rverStore;
  middleware: Middleware[];
  httpServer?: Server;
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}

type S3ErrorClass = new (code: string, message: string, detail?: Record<string, string | number>) => Error;

const require = createRequire(import.meta.url);
const S3rver = require('s3rver') as new (options: Record<string, unknown>) => S3rverApp;
const S3Error = require('s3rver/lib/models/error.js') as S3ErrorClass;
const accounts = require('s3rver/lib/models/account.js') as {
  DUMMY_ACCOUNT: { createKeyPair(accessKeyId: string, secretAccessKey: string): void };
  registry: Map<string, unknown>;
};

const OBJECT_SUFFIX = '._S3rver_object';

/** Starts a fresh server with empty buckets; call `close()` in `after`. */
export async function startS3Server(options: S3TestServerOptions = {}): Promise<S3TestServer> {
  const buckets = options.buckets ?? ['vecmill-test'];
  const accessKeyId = options.accessKeyId ?? `VECMILLTEST${randomBytes(6).toString('hex').toUpperCase()}`;
  const secretAccessKey = options.secretAccessKey ?? randomBytes(20).toString('hex');
  const region = 'us-east-1';
  const tmp = await makeTempDir('s3rver');
  const app = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: tmp.dir,
    vhostBuckets: false,
    configureBuckets: buckets.map((name) => ({ name })),
  });
  accounts.DUMMY_ACCOUNT.createKeyPair(accessKeyId, secretAccessKey);
  const store = app.store;
  store.putObject = (object) => putObjectAtomically(store, object);
  store.copyObject = (srcBucket, srcKey, destBucket, destKey, replacement) => copyObjectAtomically(store, srcBucket, srcKey, destBucket, destKey, replacement);
  // Koa runs middleware in array order; the router is last, after vhost path rewriting.
  app.middleware.splice(app.middleware.length - 1, 0, s3Fixes(store));
  let address: AddressInfo;
  try {
    address = await app.run();
  } catch (err) {
    await tmp.cleanup();
    throw err;
  }
  const endpoint = `http://127.0.0.1:${address.port}`;
  let closed: Promise<void> | undefined;
  return {
    endpoint,
    region,
    accessKeyId,
    secretAccessKey,
    directory: tmp.dir,
    clientOptions: { region, endpoint, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey }, maxAttempts: 2 },
    close() {
      closed ??= (async () => {
        const stopping = app.close();
        app.httpServer?.closeAllConnections();
        await stopping;
        await tmp.cleanup();
      })();
      return closed;
    },
  };
}

/** The middleware described on `S3TestServer`: conditional PUT, ListObjectsV2, AbortMultipartUpload. */
function s3Fixes(store: S3rverStore): Middleware {
  const keyLocks = new Map<string, Promise<void>>();
  return async (ctx, next) => {
    const slash = ctx.path.indexOf('/', 1);
    const bucket = decodeURIComponent(slash === -1 ? ctx.path.slice(1) : ctx.path.slice(1, slash));
    const key = slash === -1 ? '' : decodeURIComponent(ctx.path.slice(slash + 1));
    if (bucket === '') return next();
    if (ctx.method === 'GET' && key === '' && ctx.query['list-type'] === '2') {
      checkAccessKey(ctx);
      await listObjectsV2(ctx, store, bucket);
      return;
    }
    if (ctx.method === 'DELETE' && key !== '' && typeof ctx.query['uploadId'] === 'string') {
      checkAccessKey(ctx);
      await abortMultipartUpload(ctx, store, bucket, ctx.query['uploadId']);
      return;
    }
    if (ctx.method === 'PUT' && key !== '' && ctx.get('if-none-match') === '*' && isPlainObjectPut(ctx)) {
      checkAccessKey(ctx);
      const lockKey = `${bucket}/${key}`;
      const previous = keyLocks.get(lockKey) ?? Promise.resolve();
      const current = previous.then(async () => {
        if (await store.existsObject(bucket, key)) {
          throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', { Condition: 'If-None-Match' });
        }
        await next();
      });
      const settled = current.then(
        () => undefined,
        () => undefined,
      );
      keyLocks.set(lockKey, settled);
      try {
        await current;
      } finally {
        if (keyLocks.get(lockKey) === settled) keyLocks.delete(lockKey);
      }
      return;
    }
    return next();
  };
}

/** A PutObject, not an UploadPart or a subresource PUT (the SDK adds `?x-id=PutObject`). */
function isPlainObjectPut(ctx: KoaContext): boolean {
  return ['uploadId', 'partNumber', 'tagging', 'acl', 'retention', 'legal-hold'].every((name) => ctx.query[name] === undefined);
}

/** Mirrors s3rver's SigV4 handling: the signature is not checked, the access key id must be known. */
function checkAccessKey(ctx: KoaContext): void {
  const authorization = ctx.get('authorization');
  if (authorization === '') return;
  const accessKeyId = /Credential=([^/,\s]+)\//.exec(authorization)?.[1];
  if (accessKeyId === undefined || !accounts.registry.has(accessKeyId)) {
    throw new S3Error('InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.');
  }
}

async function listObjectsV2(ctx: KoaContext, store: S3rverStore, bucket: string): Promise<void> {
  if ((await store.getBucket(bucket)) === null) {
    throw new S3Error('NoSuchBucket', 'The specified bucket does not exist', { BucketName: bucket });
  }
  const text = (name: string): string => {
    const value = ctx.query[name];
    return typeof value === 'string' ? value : '';
  };
  const prefix = text('prefix');
  const delimiter = text('delimiter');
  const maxKeys = text('max-keys') === '' ? 1000 : Math.min(1000, Number(text('max-keys')));
  if (!Number.isInteger(maxKeys) || maxKeys < 0) {
    throw new S3Error('InvalidArgument', 'Argument maxKeys must be an integer between 0 and 2147483647', { ArgumentName: 'maxKeys' });
  }
  const token = text('continuation-token');
  const startAfter = token !== '' ? Buffer.from(token, 'base64url').toString('utf8') : text('start-after');
  // Only the folder the prefix names is walked: a listing of `embeddings/` never reads `shards/`.
  const folder = prefix.slice(0, prefix.lastIndexOf('/') + 1);
  const keys = (await allKeys(join(store.getBucketPath(bucket), ...folder.split('/').filter((p) => p !== '')), folder))
    .filter((k) => k.startsWith(prefix) && Buffer.compare(Buffer.from(k), Buffer.from(startAfter)) > 0)
    .filter((k) => !(delimiter !== '' && startAfter.endsWith(delimiter) && k.startsWith(startAfter)))
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const contents: string[] = [];
  const commonPrefixes: string[] = [];
  let last = '';
  let truncated = false;
  for (const key of keys) {
    const cut = delimiter === '' ? -1 : key.indexOf(delimiter, prefix.length);
    const common = cut === -1 ? undefined : key.slice(0, cut + delimiter.length);
    if (common !== undefined && common === commonPrefixes[commonPrefixes.length - 1]) continue;
    if (contents.length + commonPrefixes.length >= maxKeys) {
      truncated = true;
      break;
    }
    if (common !== undefined) commonPrefixes.push(common);
    else contents.push(key);
    last = common ?? key;
  }
  const objects = await Promise.all(
    contents.map(async (key) => {
      const metadata = await store.getMetadata(bucket, key);
      return {
        Key: key,
        LastModified: new Date(String(metadata['last-modified'])).toISOString(),
        ETag: metadata['etag'],
        Size: metadata['content-length'],
        StorageClass: 'STANDARD',
      };
    }),
  );
  ctx.body = {
    ListBucketResult: {
      '@': { xmlns: 'http://s3.amazonaws.com/doc/2006-03-01/' },
      Name: bucket,
      Prefix: prefix,
      ...(token !== '' ? { ContinuationToken: token } : {}),
      ...(text('start-after') !== '' ? { StartAfter: text('start-after') } : {}),
      KeyCount: objects.length + commonPrefixes.length,
      MaxKeys: maxKeys,
      ...(delimiter !== '' ? { Delimiter: delimiter } : {}),
      IsTruncated: truncated,
      ...(truncated ? { NextContinuationToken: Buffer.from(last).toString('base64url') } : {}),
      Contents: objects,
      CommonPrefixes: commonPrefixes.map((p) => ({ Prefix: p })),
    },
  };
}

/** Every object key in a bucket folder (s3rver keeps `key._S3rver_object` files; uploads live in `._S3rver_uploads`). */
async function allKeys(folder: string, keyPrefix: string): Promise<string[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(folder, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const keys: string[] = [];
  for (const entry of entries) {
    if (entry.isDirectory()) {
      if (keyPrefix === '' && entry.name === '._S3rver_uploads') continue;
      keys.push(...(await allKeys(join(folder, entry.name), `${keyPrefix}${entry.name}/`)));
    } else if (entry.isFile() && entry.name.endsWith(OBJECT_SUFFIX)) {
      keys.push(keyPrefix + entry.name.slice(0, -OBJECT_SUFFIX.length));
    }
  }
  return keys;
}

async function abortMultipartUpload(ctx: KoaContext, store: S3rverStore, bucket: string, uploadId: string): Promise<void> {
  if (!/^[0-9a-f]+$/.test(uploadId)) throw new S3Error('NoSuchUpload', 'The specified upload does not exist.', { UploadId: uploadId });
  const folder = join(store.getResourcePath(bucket, undefined, 'uploads'), uploadId);
  const existed = await readdir(folder).then(
    () => true,
    () => false,
  );
  if (!existed) throw new S3Error('NoSuchUpload', 'The specified upload does not exist.', { UploadId: uploadId });
  await rm(folder, { recursive: true, force: true });
  ctx.status = 204;
  ctx.body = '';
}

/** Replaces s3rver's putObject: bytes go to a temp file, metadata is written, then one rename publishes the object. */
async function putObjectAtomically(store: S3rverStore, object: S3rverObject): Promise<{ size: number; md5: string }> {
  const objectPath = store.getResourcePath(object.bucket, object.key, 'object');
  await mkdir(dirname(objectPath), { recursive: true });
  const temp = join(dirname(objectPath), `.${randomBytes(8).toString('hex')}.partial`);
  const hash = createHash('md5');
  let size = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
  });
  try {
    const source = Buffer.isBuffer(object.content) ? Readable.from([object.content]) : object.content;
    await pipeline(source, counter, createWriteStream(temp));
    const md5 = hash.digest('hex');
    await putMetadataAtomically(store, object.bucket, object.key, object.metadata, md5);
    await rename(temp, objectPath);
    return { size, md5 };
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/**
 * s3rver's putMetadata rewrites the md5 and metadata files of a key in place, so a listing or
 * HEAD racing an overwrite reads an empty ETag. They are written under a scratch key beside it,
 * then each renamed over the key's own: a reader sees the old or the new file, never a truncated one.
 */
async function putMetadataAtomically(store: S3rverStore, bucket: string, key: string, metadata: Record<string, string>, md5: string): Promise<void> {
  const slash = key.lastIndexOf('/');
  const scratch = `${key.slice(0, slash + 1)}.${randomBytes(8).toString('hex')}.partial-metadata`;
  await store.putMetadata(bucket, scratch, metadata, md5);
  for (const kind of ['object.md5', 'metadata.json']) {
    await rename(store.getResourcePath(bucket, scratch, kind), store.getResourcePath(bucket, key, kind));
  }
}

/** Replaces s3rver's copyObject (which copies onto the target in place): a temp copy, its metadata, then one rename. */
async function copyObjectAtomically(
  store: S3rverStore,
  srcBucket: string,
  srcKey: string,
  destBucket: string,
  destKey: string,
  replacement: Record<string, string> | null,
): Promise<Record<string, string | number>> {
  const srcPath = store.getResourcePath(srcBucket, srcKey, 'object');
  const destPath = store.getResourcePath(destBucket, destKey, 'object');
  const metadata = await store.getMetadata(srcBucket, srcKey);
  const userMetadata = Object.fromEntries(Object.entries(replacement ?? metadata).map(([k, v]) => [k, String(v)]));
  if (srcPath !== destPath) {
    await mkdir(dirname(destPath), { recursive: true });
    const temp = join(dirname(destPath), `.${randomBytes(8).toString('hex')}.partial`);
    try {
      await copyFile(srcPath, temp);
      await putMetadataAtomically(store, destBucket, destKey, userMetadata, String(metadata['etag']).replace(/"/g, ''));
      await rename(temp, destPath);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  } else if (replacement !== null) {
    await putMetadataAtomically(store, destBucket, destKey, userMetadata, String(metadata['etag']).replace(/"/g, ''));
  }
  return store.getMetadata(destBucket, destKey);
}
