import { setTimeout as sleep } from 'node:timers/promises';
import type { Readable } from 'node:stream';
import type { ObjectInfo, ObjectStore } from '@vecmill/shared/storage/object-store';

/**
 * An ObjectStore that adds `latencyMs` to every call of another one, and to every page of 1,000
 * keys of a listing, as S3 does: simulates request-bound paths (publishing 50,000 splits) on the
 * in-memory store without a server. Counts the requests it simulated.
 */
export class LatencyStore implements ObjectStore {
  requests = 0;

  constructor(
    private readonly inner: ObjectStore,
    private readonly latencyMs: number,
  ) {}

  get description(): string {
    return this.inner.description;
  }

  private async wait(): Promise<void> {
    this.requests++;
    await sleep(this.latencyMs);
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    let n = 0;
    await this.wait();
    for await (const info of this.inner.list(prefix)) {
      if (n > 0 && n % 1000 === 0) await this.wait();
      n++;
      yield info;
    }
  }

  async stat(key: string): Promise<ObjectInfo> {
    await this.wait();
    return this.inner.stat(key);
  }

  async exists(key: string): Promise<boolean> {
    await this.wait();
    return this.inner.exists(key);
  }

  readRange(key: string, start: number, end: number): Readable {
    this.requests++;
    return this.inner.readRange(key, start, end);
  }

  async read(key: string): Promise<Buffer> {
    await this.wait();
    return this.inner.read(key);
  }

  async put(key: string, body: Buffer | Uint8Array | Readable): Promise<void> {
    await this.wait();
    return this.inner.put(key, body);
  }

  async putIfAbsent(key: string, body: Buffer | Uint8Array): Promise<boolean> {
    await this.wait();
    return this.inner.putIfAbsent(key, body);
  }

  async copy(sourceKey: string, targetKey: string): Promise<void> {
    await this.wait();
    return this.inner.copy(sourceKey, targetKey);
  }

  async delete(key: string): Promise<void> {
    await this.wait();
    return this.inner.delete(key);
  }

  localPath(key: string): string | undefined {
    return this.inner.localPath(key);
  }
}
