import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { PassThrough, Readable } from 'node:stream';
import { ConfigError, NotFoundError, StorageError, VecmillError } from '../errors.js';
import { describeKeyProblem } from './location.js';
import type { ObjectInfo, ObjectStore } from './object-store.js';
import { withRetry } from './retry.js';

/** How to reach S3 or an S3-compatible server (MinIO, s3rver). Taken as data so only the config loader reads the environment. */
export interface S3ClientOptions {
  readonly region: string;
  /** For S3-compatible servers, e.g. `http://127.0.0.1:9000`. Unset means AWS. */
  readonly endpoint?: string;
  /** Path-style URLs (`host/bucket/key`); most S3-compatible servers need it. */
  readonly forcePathStyle?: boolean;
  /** Unset means the SDK's default chain (environment, profile, instance role). */
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string; readonly sessionToken?: string };
  /** Tries per request in the SDK's standard retry mode (default 5). */
  readonly maxAttempts?: number;
}

/** Tuning for one S3Store; every field has a default suited to multi-GB TSV inputs. */
export interface S3StoreOptions {
  /** Keys per ListObjectsV2 page (default 1000, the S3 maximum). Tests lower it to exercise pagination. */
  readonly listPageSize?: number;
  /** Multipart part size for streamed puts (default 8 MiB): memory per upload is about partBytes × queueSize. */
  readonly partBytes?: number;
  /** Parts uploaded in parallel for one streamed put (default 2: the machine's cores are busy embedding). */
  readonly queueSize?: number;
}

export const DEFAULT_S3_STORE_OPTIONS = { listPageSize: 1000, partBytes: 8 * 1024 * 1024, queueSize: 2 } as const;

/** Chunk size of the pass-through a ranged read hands out. */
const READ_CHUNK_BYTES = 1 << 20;

/**
 * One S3 client per settings object, with the SDK's standard retry mode. Only the connect phase
 * has a timeout: a socket idle timeout would kill long ranged reads whose consumer is busy
 * embedding.
 */
export function createS3Client(options: S3ClientOptions): S3Client {
  return new S3Client({
    region: options.region,
    retryMode: 'standard',
    maxAttempts: options.maxAttempts ?? 5,
    requestHandler: { connectionTimeout: 10_000 },
    ...(options.endpoint !== undefined ? { endpoint: options.endpoint } : {}),
    ...(options.forcePathStyle !== undefined ? { forcePathStyle: options.forcePathStyle } : {}),
    ...(options.credentials !== undefined ? { credentials: options.credentials } : {}),
  });
}

/**
 * An ObjectStore over a bucket and a key prefix. Atomicity comes from S3 itself: a PUT or a
 * completed multipart upload is all-or-nothing, and a failed multipart upload is aborted so no
 * parts linger (and nothing ever appears at the key). `putIfAbsent` uses `If-None-Match: *`,
 * which S3 honours since 2024.
 */
export class S3Store implements ObjectStore {
  readonly client: S3Client;
  readonly bucket: string;
  /** '' or a prefix ending with '/'; store keys are relative to it. */
  readonly prefix: string;
  readonly description: string;
  private readonly options: Required<S3StoreOptions>;

  constructor(client: S3Client, bucket: string, prefix = '', options: S3StoreOptions = {}) {
    const root = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
    const problem = describeKeyProblem(root, true);
    if (problem !== undefined) throw new ConfigError(`invalid S3 prefix ${JSON.stringify(prefix)} for bucket ${bucket}: ${problem}`);
    this.client = client;
    this.bucket = bucket;
    this.prefix = root;
    this.description = `s3://${bucket}/${root}`;
    this.options = { ...DEFAULT_S3_STORE_OPTIONS, ...options };
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const full = this.fullKey(prefix, true);
    let token: string | undefined;
    do {
      const input = { Bucket: this.bucket, Prefix: full, MaxKeys: this.options.listPageSize, ContinuationToken: token };
      // A page is idempotent to fetch again; its answer can break mid-body after the SDK's own
      // retries are over (a cut XML body), which would otherwise fail a whole publish.
      const page = await withRetry(() =>
        this.client.send(new ListObjectsV2Command(input)).catch((err: unknown) => {
          throw s3Error(err, 'list', this.uri(full));
        }),
      );
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined) continue;
        yield {
          key: object.Key.slice(this.prefix.length),
          size: object.Size ?? 0,
          etag: unquote(object.ETag),
          modified: (object.LastModified ?? new Date(0)).toISOString(),
        };
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  async stat(key: string): Promise<ObjectInfo> {
    const full = this.fullKey(key, false);
    const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: full })).catch((err: unknown) => {
      throw s3Error(err, 'stat', this.uri(full));
    });
    return {
      key,
      size: head.ContentLength ?? 0,
      etag: unquote(head.ETag),
      modified: (head.LastModified ?? new Date(0)).toISOString(),
    };
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.stat(key);
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }

  readRange(key: string, start: number, end: number): Readable {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < 0) {
      throw new RangeError(`readRange needs non-negative integer offsets, got [${start}, ${end})`);
    }
    const full = this.fullKey(key, false);
    if (end <= start) return Readable.from([]);
    const uri = this.uri(full);
    const out = new PassThrough({ highWaterMark: READ_CHUNK_BYTES });
    const abort = new AbortController();
    // Only a consumer that stops early cancels the request; a fully read response keeps its socket for reuse.
    out.on('close', () => {
      if (!out.readableEnded) abort.abort();
    });
    this.client
      .send(new GetObjectCommand({ Bucket: this.bucket, Key: full, Range: `bytes=${start}-${end - 1}` }), { abortSignal: abort.signal })
      .then(
        (response) => {
          const body = response.Body as Readable;
          if (out.destroyed) {
            body.destroy();
            return;
          }
          const served = servedRangeStart(response.ContentRange);
          if (served !== undefined && served !== start) {
            body.destroy();
            out.destroy(new StorageError(`reading ${uri}: asked for bytes from ${start}, the server sent ${response.ContentRange ?? 'a different range'}`, { key: uri }));
            return;
          }
          out.on('close', () => body.destroy());
          pipeAtMost(body, out, end - start, (err) => s3Error(err, 'read', uri));
        },
        (err: unknown) => {
          if (out.destroyed) return;
          // A start at or past the end of the object: the clamped range is empty.
          if (statusOf(err) === 416) out.end();
          else out.destroy(s3Error(err, 'read', uri));
        },
      );
    return out;
  }

  async read(key: string): Promise<Buffer> {
    const full = this.fullKey(key, false);
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: full }));
      const bytes = await (response.Body as Readable & { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      throw s3Error(err, 'read', this.uri(full));
    }
  }

  async put(key: string, body: Buffer | Uint8Array | Readable): Promise<void> {
    const full = this.fullKey(key, false);
    if (!(body instanceof Readable)) {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: full, Body: body, ContentLength: body.byteLength })).catch((err: unknown) => {
        throw s3Error(err, 'write', this.uri(full));
      });
      return;
    }
    // Errors of the caller's stream are the caller's: rethrown as they are, not dressed up as S3 failures.
    let sourceError: unknown;
    body.once('error', (err) => {
      sourceError = err;
    });
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: full, Body: body },
      partSize: this.options.partBytes,
      queueSize: this.options.queueSize,
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (err) {
      if (err === sourceError) throw err;
      throw s3Error(err, 'write', this.uri(full));
    }
  }

  async putIfAbsent(key: string, body: Buffer | Uint8Array): Promise<boolean> {
    const full = this.fullKey(key, false);
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: full, Body: body, ContentLength: body.byteLength, IfNoneMatch: '*' }));
      return true;
    } catch (err) {
      const status = statusOf(err);
      // 412: the key exists. 409: a concurrent conditional write to the key is in flight, and it wins.
      if (status === 412 || status === 409) return false;
      throw s3Error(err, 'write', this.uri(full));
    }
  }

  async copy(sourceKey: string, targetKey: string): Promise<void> {
    const source = this.fullKey(sourceKey, false);
    const target = this.fullKey(targetKey, false);
    // CopyObject takes objects up to 5 GiB in one request, far above any file vecmill stages.
    const copySource = `${this.bucket}/${source.split('/').map(encodeURIComponent).join('/')}`;
    await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: target, CopySource: copySource })).catch((err: unknown) => {
      throw s3Error(err, statusOf(err) === 404 ? 'read' : 'write', this.uri(statusOf(err) === 404 ? source : target));
    });
  }

  async delete(key: string): Promise<void> {
    const full = this.fullKey(key, false);
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: full })).catch((err: unknown) => {
      if (statusOf(err) === 404 && nameOf(err) !== 'NoSuchBucket') return;
      throw s3Error(err, 'delete', this.uri(full));
    });
  }

  localPath(): undefined {
    return undefined;
  }

  private fullKey(key: string, asPrefix: boolean): string {
    const problem = describeKeyProblem(key, asPrefix);
    if (problem !== undefined) {
      throw new StorageError(
        `invalid object key ${JSON.stringify(key)} for ${this.description}: ${problem} — keys are /-separated relative paths without . or .. segments`,
        { key: JSON.stringify(key), store: this.description },
      );
    }
    return this.prefix + key;
  }

  private uri(fullKey: string): string {
    return `s3://${this.bucket}/${fullKey}`;
  }
}

interface SdkErrorShape {
  readonly name?: string;
  readonly code?: string;
  readonly message?: string;
  readonly $metadata?: { readonly httpStatusCode?: number };
  readonly $retryable?: unknown;
}

const TRANSIENT_NAMES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'RequestTimeout',
  'RequestTimeoutException',
  'InternalError',
  'ServiceUnavailable',
  'TimeoutError',
]);
const TRANSIENT_NETWORK_CODES = new Set(['ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ECONNABORTED', 'EAI_AGAIN', 'ERR_STREAM_PREMATURE_CLOSE']);
const CREDENTIAL_NAMES = new Set(['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken', 'CredentialsProviderError']);

function statusOf(err: unknown): number | undefined {
  return (err as SdkErrorShape | undefined)?.$metadata?.httpStatusCode;
}

function nameOf(err: unknown): string {
  return (err as SdkErrorShape | undefined)?.name ?? 'Error';
}

/**
 * One line saying which S3 operation failed on which object and what to do. Built only from the
 * error's name, HTTP status and network error code (plus the network message when there is no
 * HTTP answer), never from request details, so credentials cannot leak into it.
 */
function s3Error(err: unknown, op: 'list' | 'stat' | 'read' | 'write' | 'delete', uri: string): VecmillError {
  if (err instanceof VecmillError) return err;
  const e = (err ?? {}) as SdkErrorShape;
  const status = statusOf(err);
  const name = nameOf(err);
  const context = { uri, operation: op, status, errorName: name };
  if (name === 'NoSuchBucket') {
    return new NotFoundError(`S3 ${op} failed for ${uri}: the bucket does not exist — check the bucket name and the region`, context, { cause: err });
  }
  if (status === 404 || name === 'NoSuchKey' || name === 'NotFound') {
    return new NotFoundError(`not found: ${uri} — check the key`, context, { cause: err });
  }
  const networkCode = typeof e.code === 'string' && /^E[A-Z_]+$/.test(e.code) ? e.code : undefined;
  const transient =
    (status !== undefined && (status >= 500 || status === 429)) ||
    TRANSIENT_NAMES.has(name) ||
    (networkCode !== undefined && TRANSIENT_NETWORK_CODES.has(networkCode)) ||
    /socket hang up/i.test(e.message ?? '') ||
    e.$retryable !== undefined;
  // Bodiless answers (HEAD) leave the SDK guessing the name: 'Unknown' adds nothing to the status.
  const named = name === 'Unknown' || name === 'UnknownError' ? '' : `${name} `;
  const what = status !== undefined ? `${named}(HTTP ${status})` : `${networkCode ?? name}: ${(e.message ?? '').split('\n')[0] ?? ''}`;
  let advice: string;
  if (transient) advice = 'the service is busy or the connection dropped; retry later';
  else if (CREDENTIAL_NAMES.has(name) || status === 403) advice = 'check the S3 credentials and the bucket policy';
  else if (networkCode === 'ECONNREFUSED' || networkCode === 'ENOTFOUND') advice = 'check the S3 endpoint and that the server is reachable';
  else advice = 'check the bucket, the key and the S3 settings';
  return new StorageError(`S3 ${op} failed for ${uri}: ${what} — ${advice}`, context, { cause: err, transient });
}

function unquote(etag: string | undefined): string {
  return (etag ?? '').replace(/"/g, '');
}

/** First byte of a `Content-Range: bytes S-E/N` header, or undefined when the server sent none. */
function servedRangeStart(contentRange: string | undefined): number | undefined {
  const m = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(contentRange ?? '');
  return m === null ? undefined : Number(m[1]);
}

/**
 * Pipes at most `limit` bytes of `body` into `out`, then ends `out` and drops the rest. HTTP lets
 * a server send more than the range asked for (some S3-compatible servers answer `bytes=0-0` with
 * the whole object); a split reader must never see bytes past its range.
 */
function pipeAtMost(body: Readable, out: PassThrough, limit: number, wrap: (err: unknown) => Error): void {
  let left = limit;
  // Destroying the body once enough arrived may make it emit an error: that one is ours, not a failure.
  body.on('error', (err) => {
    if (left > 0) out.destroy(wrap(err));
  });
  body.on('data', (chunk: Buffer) => {
    if (left <= 0) return;
    const piece = chunk.byteLength <= left ? chunk : chunk.subarray(0, left);
    left -= piece.byteLength;
    if (!out.write(piece)) body.pause();
    if (left === 0) {
      out.end();
      body.destroy();
    }
  });
  out.on('drain', () => body.resume());
  body.on('end', () => {
    if (!out.writableEnded) out.end();
  });
}
