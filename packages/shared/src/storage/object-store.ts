import type { Readable } from 'node:stream';
import type { ReadBufferLease } from './read-buffer-pool.js';

/** What a listing or a stat returns about one object. */
export interface ObjectInfo {
  /** Key relative to the store's root (S3 key, or path relative to the local root, `/`-separated). */
  readonly key: string;
  readonly size: number;
  /** S3 ETag (quotes removed), or `mtimeMs-size` for local files: changes when content changes. */
  readonly etag: string;
  /** Last modification time, ISO 8601. */
  readonly modified: string;
}

/** How `ObjectStore.readRange` may read. */
export interface ReadRangeOptions {
  /**
   * Buffers to read into, reused once the caller releases them (see `ReadBufferPool`): the local
   * store fills them; S3 bodies arrive in the HTTP client's own small chunks, so it ignores them.
   */
  readonly buffers?: ReadBufferLease;
}

/**
 * The storage port. Every backend (local disk, S3) implements it, so planning, embedding,
 * committing and merging never know where bytes live. Keys are `/`-separated and relative to the
 * store's root; a key never starts with `/` and never contains `..` segments.
 */
export interface ObjectStore {
  /** Human-readable location of the root, for messages (`s3://bucket/prefix/`, `/data/out/`). Never holds credentials. */
  readonly description: string;
  /** Objects whose key starts with `prefix`, in ascending key order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Throws NotFoundError when the key does not exist. */
  stat(key: string): Promise<ObjectInfo>;
  /** True when the key exists. */
  exists(key: string): Promise<boolean>;
  /**
   * Bytes `[start, end)` of an object as a stream (S3: one ranged GET). `end` is clamped to the
   * object's size. Reading never loads the whole range into memory.
   */
  readRange(key: string, start: number, end: number, options?: ReadRangeOptions): Readable;
  /** A whole (small) object: configs, markers, plan.json. */
  read(key: string): Promise<Buffer>;
  /**
   * Writes an object atomically: readers see either nothing or the complete bytes, never a prefix
   * (local: temp file + rename; S3: a single PUT or a completed multipart upload). Overwrites.
   */
  put(key: string, body: Buffer | Uint8Array | Readable): Promise<void>;
  /**
   * Creates the object only if it does not exist yet (local: exclusive create via link; S3:
   * `If-None-Match: *`). Returns false, without writing, when it already exists. This is the
   * commit primitive: the first committer wins.
   */
  putIfAbsent(key: string, body: Buffer | Uint8Array): Promise<boolean>;
  /**
   * Copies an object to another key of the same store, atomically like `put` (the target shows
   * either nothing, its previous bytes or the complete copy) and without the bytes passing through
   * this process where the backend allows (S3: server-side CopyObject; local: a hard link to a
   * temp name, then rename). Overwrites; copying again gives the same bytes. The promotion
   * primitive: a committed attempt's staged files become final files this way.
   * Throws NotFoundError when the source does not exist.
   */
  copy(sourceKey: string, targetKey: string): Promise<void>;
  /** Deletes an object; deleting a missing key is not an error. */
  delete(key: string): Promise<void>;
  /** Local stores return the absolute file path for a key (for tools that want a path); S3 returns undefined. */
  localPath(key: string): string | undefined;
}
