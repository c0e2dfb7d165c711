import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffDelay } from '../backoff.js';
import { failurePolicy } from '../failure-policy.js';
import type { ObjectInfo, ObjectStore, ReadRangeOptions } from './object-store.js';
import { DEFAULT_RETRY_OPTIONS, withRetry, type RetryOptions } from './retry.js';

/**
 * How resilient reads retry. `attempts` counts consecutive failures without a single new byte
 * delivered, so a long read that loses its connection now and then never runs out of tries,
 * while a dead endpoint still fails after `attempts` tries. Defaults: `DEFAULT_RETRY_OPTIONS`.
 */
export type ResilientReadOptions = RetryOptions;

/**
 * Bytes `[start, end)` of an object, resumed from the last byte delivered when the stream fails
 * with a transient error (a dropped connection, a 5xx in the middle of a body). The SDK retries a
 * request only until its answer starts; a ranged GET that dies after that would otherwise fail
 * the whole split, and every byte already read and embedded would be read and embedded again.
 * Only `retry-now` failures are resumed, after `backoffDelay`, as in `withRetry`. Final errors (not found, access
 * denied) and the last transient one are rethrown unchanged. A stream that ends early without
 * an error is passed on as it is: the caller decides what a short object means.
 */
export function resilientReadRange(store: ObjectStore, key: string, start: number, end: number, options: ResilientReadOptions = {}, read: ReadRangeOptions = {}): Readable {
  const attempts = Math.max(1, Math.floor(options.attempts ?? DEFAULT_RETRY_OPTIONS.attempts));
  const base = options.baseDelayMs ?? DEFAULT_RETRY_OPTIONS.baseDelayMs;
  const max = options.maxDelayMs ?? DEFAULT_RETRY_OPTIONS.maxDelayMs;
  async function* resumed(): AsyncGenerator<Buffer> {
    let position = start;
    let failures = 0;
    while (position < end) {
      const from = position;
      try {
        for await (const chunk of store.readRange(key, from, end, read) as AsyncIterable<Uint8Array | string>) {
          const buffer = Buffer.isBuffer(chunk) ? chunk : typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
          if (buffer.length === 0) continue;
          position += buffer.length;
          failures = 0;
          yield buffer;
        }
        return;
      } catch (err) {
        failures++;
        if (failures >= attempts || failurePolicy(err) !== 'retry-now') throw err;
        const delayMs = backoffDelay(failures, { baseDelayMs: base, maxDelayMs: max });
        options.onRetry?.(err, failures, delayMs);
        await sleep(delayMs);
      }
    }
  }
  return Readable.from(resumed(), { objectMode: false });
}

/**
 * The same store with reads that survive dropped connections: `readRange` resumes where it broke
 * off (see `resilientReadRange`) and `read` re-requests the object on a transient failure, since
 * its body can also break after the SDK has stopped retrying. Writes, listings and stats pass
 * through: the SDK already retries those whole. Wrap the stores a worker reads splits, markers
 * and shard data from.
 */
export function withResilientReads(store: ObjectStore, options: ResilientReadOptions = {}): ObjectStore {
  return {
    description: store.description,
    list: (prefix: string): AsyncIterable<ObjectInfo> => store.list(prefix),
    stat: (key: string) => store.stat(key),
    exists: (key: string) => store.exists(key),
    readRange: (key: string, start: number, end: number, read?: ReadRangeOptions) => resilientReadRange(store, key, start, end, options, read),
    read: (key: string) => withRetry(() => store.read(key), options),
    put: (key, body) => store.put(key, body),
    putIfAbsent: (key, body) => store.putIfAbsent(key, body),
    copy: (sourceKey, targetKey) => store.copy(sourceKey, targetKey),
    delete: (key: string) => store.delete(key),
    localPath: (key: string) => store.localPath(key),
  };
}
