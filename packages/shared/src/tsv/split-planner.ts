import { ConfigError, InputError } from '../errors.js';

/**
 * One unit of work: a byte range of one object. Splits are planned from sizes alone, so a
 * producer can plan terabytes without reading a byte; line boundaries are settled later by the
 * line reader's ownership rule (a split owns the lines whose first byte lies in `[start, end)`).
 */
export interface Split {
  /** Global position in the plan, in input order: stable ids for jobs and shards. */
  index: number;
  key: string;
  /** The object's ETag at planning time, so a worker can refuse data that changed since. */
  etag: string;
  start: number;
  /** Exclusive. */
  end: number;
  /** Size at planning time: the reader may read past `end` up to here to finish a straddling line. */
  objectSize: number;
}

/** What the planner needs to know about an object (an `ObjectInfo` fits). */
export interface SplitSource {
  readonly key: string;
  readonly size: number;
  readonly etag: string;
}

/**
 * Cuts every object into `ceil(size / splitSize)` ranges of nearly equal length (they differ by
 * at most one byte, none exceeds `splitSize`). Balanced parts avoid a tiny tail split per file,
 * whose job overhead would dwarf its work. Empty objects produce no splits.
 */
export function planSplits(objects: readonly SplitSource[], splitSize: number): Split[] {
  if (!Number.isSafeInteger(splitSize) || splitSize <= 0) {
    throw new ConfigError(`split size must be a positive whole number of bytes, got ${String(splitSize)}: pass e.g. --split-size 256MiB`, {
      splitSize: String(splitSize),
    });
  }
  const splits: Split[] = [];
  for (const object of objects) {
    if (!Number.isSafeInteger(object.size) || object.size < 0) {
      throw new InputError(`object ${object.key} reports an invalid size ${String(object.size)}: check the storage listing`, {
        key: object.key,
      });
    }
    if (object.size === 0) continue;
    const parts = Math.ceil(object.size / splitSize);
    const base = Math.floor(object.size / parts);
    const longer = object.size % parts;
    let start = 0;
    for (let part = 0; part < parts; part++) {
      const end = start + base + (part < longer ? 1 : 0);
      splits.push({ index: splits.length, key: object.key, etag: object.etag, start, end, objectSize: object.size });
      start = end;
    }
  }
  return splits;
}
