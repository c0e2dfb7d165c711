import { Readable } from 'node:stream';
import { NotFoundError } from '@vecmill/shared/errors';
import type { ObjectInfo, ObjectStore } from '@vecmill/shared/storage/object-store';

/** A run of one repeated byte, produced on demand: lets a test read a huge object without allocating it. */
export interface FillSegment {
  readonly fill: number;
  readonly length: number;
}

/** An object's content: real bytes and lazily produced fills, in order. */
export type Segment = Buffer | FillSegment;

/** Options for the in-memory store. */
export interface MemoryStoreOptions {
  /** Largest chunk `readRange` emits. Small chunks exercise every chunk-boundary case. Default 7 bytes. */
  chunkSize?: number;
}

interface StoredObject {
  readonly segments: readonly Segment[];
  readonly size: number;
  readonly version: number;
}

/**
 * An ObjectStore held in memory, for unit tests that need real stream behaviour (many small
 * chunks, ranged reads) without a disk or a server. Fill segments are generated chunk by chunk,
 * each chunk a fresh buffer, so a reader that wrongly buffers them shows up in memory use.
 */
export class MemoryStore implements ObjectStore {
  readonly description = 'memory://';
  /** Every `readRange` call, in order: lets tests check how far a reader read. */
  readonly rangeReads: { key: string; start: number; end: number }[] = [];
  chunkSize: number;
  private readonly objects = new Map<string, StoredObject>();
  private version = 0;

  constructor(options: MemoryStoreOptions = {}) {
    this.chunkSize = options.chunkSize ?? 7;
  }

  /** Stores an object made of segments (bytes and fills). */
  putSegments(key: string, segments: readonly Segment[]): void {
    const size = segments.reduce((sum, s) => sum + s.length, 0);
    this.objects.set(key, { segments, size, version: ++this.version });
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    for (const key of [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort()) yield this.info(key);
  }

  async stat(key: string): Promise<ObjectInfo> {
    return this.info(key);
  }

  async exists(key: string): Promise<boolean> {
    return this.objects.has(key);
  }

  readRange(key: string, start: number, end: number): Readable {
    this.rangeReads.push({ key, start, end });
    // Lazily, like the real stores: a missing key fails the stream, not the call.
    const chunks = function* (store: MemoryStore): Generator<Buffer> {
      const object = store.get(key);
      yield* store.chunks(object, start, Math.min(end, object.size));
    };
    return Readable.from(chunks(this));
  }

  async read(key: string): Promise<Buffer> {
    const object = this.get(key);
    return Buffer.concat([...this.chunks(object, 0, object.size)]);
  }

  async put(key: string, body: Buffer | Uint8Array | Readable): Promise<void> {
    const parts: Buffer[] = [];
    if (body instanceof Readable) {
      for await (const chunk of body as AsyncIterable<Uint8Array>) parts.push(Buffer.from(chunk));
    } else {
      parts.push(Buffer.from(body));
    }
    this.putSegments(key, [Buffer.concat(parts)]);
  }

  async putIfAbsent(key: string, body: Buffer | Uint8Array): Promise<boolean> {
    if (this.objects.has(key)) return false;
    this.putSegments(key, [Buffer.from(body)]);
    return true;
  }

  async copy(sourceKey: string, targetKey: string): Promise<void> {
    const object = this.get(sourceKey);
    this.objects.set(targetKey, { segments: object.segments, size: object.size, version: ++this.version });
  }

  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }

  localPath(): string | undefined {
    return undefined;
  }

  private get(key: string): StoredObject {
    const object = this.objects.get(key);
    if (object === undefined) throw new NotFoundError(`object ${key} does not exist in ${this.description}`, { key });
    return object;
  }

  private info(key: string): ObjectInfo {
    const object = this.get(key);
    return { key, size: object.size, etag: `v${object.version}-${object.size}`, modified: new Date(0).toISOString() };
  }

  private *chunks(object: StoredObject, start: number, end: number): Generator<Buffer> {
    let segmentStart = 0;
    for (const segment of object.segments) {
      const segmentEnd = segmentStart + segment.length;
      let position = Math.max(start, segmentStart);
      while (position < Math.min(end, segmentEnd)) {
        const chunkEnd = Math.min(position + this.chunkSize, end, segmentEnd);
        yield Buffer.isBuffer(segment)
          ? Buffer.from(segment.subarray(position - segmentStart, chunkEnd - segmentStart))
          : Buffer.alloc(chunkEnd - position, segment.fill);
        position = chunkEnd;
      }
      segmentStart = segmentEnd;
    }
  }
}
