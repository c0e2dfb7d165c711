import { ConfigError, StorageError } from '../errors.js';
import type { ObjectStore, ReadRangeOptions } from '../storage/object-store.js';
import type { ReadBufferLease } from '../storage/read-buffer-pool.js';
import type { Split } from './split-planner.js';

/** One line of a split. */
export interface SplitLine {
  /** Byte offset of the line's first byte in the object: a stable row id across any split size. */
  offset: number;
  /**
   * The line without its `\n`, without one `\r` before it and, for the line at offset 0, without
   * a UTF-8 BOM. Zero-copy where the line sits in one chunk: it may share memory with its chunk.
   * Empty for blank lines and for lines marked `tooLong`.
   */
  bytes: Buffer;
  /** The line exceeded `maxLineBytes` and was skipped without being buffered. */
  tooLong?: true;
}

/** How the reader bounds memory and sizes its reads. */
export interface LineReaderOptions {
  /**
   * Longest line kept, in bytes (after stripping `\r` and the BOM). Longer lines are yielded as
   * `tooLong` with empty bytes, so one corrupt multi-gigabyte line cannot exhaust memory.
   * Default 64 MiB.
   */
  maxLineBytes?: number;
  /**
   * Size of each extra ranged read past the split's end, made only to finish the line that
   * straddles it. Default 1 MiB: a typical image line fits in one or two requests.
   */
  readAheadBytes?: number;
  /**
   * Most lines `readSplitLineGroups` puts in one group. Default 512: a group's line objects are
   * made when it is yielded, so this bounds how many exist ahead of their consumer (a 1 MiB chunk
   * of short captions holds tens of thousands of lines, which, made at once, outlive the young
   * generation and leave the collector megabytes of old garbage per chunk and split).
   */
  maxGroupLines?: number;
  /**
   * Read buffers to reuse (local files). Lines are views of them, so the caller must release a
   * buffer (by offset: `buffers.release(line.offset)` once every line before `line` is done
   * with) before it can be filled again. Default: none, every read fills a fresh buffer.
   */
  buffers?: ReadBufferLease;
}

export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_READ_AHEAD_BYTES = 1024 * 1024;
export const DEFAULT_MAX_GROUP_LINES = 512;

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/**
 * Yields exactly the lines whose first byte lies in `[split.start, split.end)`, so the splits of
 * a plan together yield every line once, whatever the split size. It reads from `start - 1`:
 * the first `\n` found there ends a line owned by the previous split (when byte `start - 1` is
 * itself `\n`, the line at `start` is ours). It then reads past `end`, in `readAheadBytes`
 * ranges, only as far as needed to finish the last owned line.
 *
 * Blank lines are yielded, not skipped: offsets stay exact and the row parser reports them, so
 * a blank line shows up as an error row instead of vanishing from the counts.
 *
 * Memory: at most one line plus one chunk; an over-long line is scanned with `indexOf` and
 * dropped chunk by chunk. Throws StorageError when the object is shorter than planned (it
 * changed after planning).
 */
export async function* readSplitLines(store: ObjectStore, split: Split, options: LineReaderOptions = {}): AsyncGenerator<SplitLine> {
  for await (const group of readSplitLineGroups(store, split, options)) yield* group;
}

/**
 * The lines of `readSplitLines`, in the same order, grouped by the chunk they end in, at most
 * `maxGroupLines` a group: one `await` per group instead of one per line, which for short
 * captions cost more than finding the lines. Groups are never empty.
 */
export async function* readSplitLineGroups(store: ObjectStore, split: Split, options: LineReaderOptions = {}): AsyncGenerator<SplitLine[]> {
  const maxLineBytes = positiveInteger(options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES, 'maxLineBytes');
  const readAheadBytes = positiveInteger(options.readAheadBytes ?? DEFAULT_READ_AHEAD_BYTES, 'readAheadBytes');
  const maxGroupLines = positiveInteger(options.maxGroupLines ?? DEFAULT_MAX_GROUP_LINES, 'maxGroupLines', 'lines');
  const { start, end } = split;
  if (start >= end) return;

  /** Still looking for the first line start at or after `start`. */
  let seeking = start > 0;
  /** The current line is longer than allowed: its bytes are being dropped. */
  let overflowing = false;
  let lineStart = start;
  let parts: Buffer[] = [];
  let partsLength = 0;
  let position = seeking ? start - 1 : 0;
  /**
   * Gives back read buffers no line will ever be a view of: chunks wholly inside the line being
   * dropped or joined (copied), or before the split's first line. Without it a line of hundreds of
   * megabytes would pin its chunks in the lease until the caller releases past it.
   */
  const giveBack = (chunks: readonly Buffer[]): void => {
    for (const c of chunks) options.buffers?.reuse(c);
  };
  /** The chunks of `parts` that are whole chunks (every one after the first, and the first when the line began a chunk). */
  let wholeParts: Buffer[] = [];

  const read: ReadRangeOptions = options.buffers === undefined ? {} : { buffers: options.buffers };
  for await (const chunk of rangeChunks(store, split, position, readAheadBytes, read)) {
    let from = 0;
    let group: SplitLine[] = [];
    while (from < chunk.length) {
      const newline = chunk.indexOf(NEWLINE, from);
      if (seeking) {
        if (newline === -1) {
          giveBack([chunk]);
          break;
        }
        seeking = false;
        lineStart = position + newline + 1;
        if (lineStart >= end) break;
        from = newline + 1;
        continue;
      }
      if (newline === -1) {
        if (overflowing) {
          if (from === 0) giveBack([chunk]);
        } else {
          const piece = from === 0 ? chunk : chunk.subarray(from);
          if (partsLength + piece.length > maxLineBytes + BOM.length + 1) {
            overflowing = true;
            giveBack(from === 0 ? [...wholeParts, chunk] : wholeParts);
            parts = [];
            wholeParts = [];
            partsLength = 0;
          } else {
            parts.push(piece);
            if (from === 0) wholeParts.push(chunk);
            partsLength += piece.length;
          }
        }
        break;
      }
      group.push(overflowing ? tooLongLine(lineStart) : finishLine(lineStart, joinLine(parts, partsLength, chunk.subarray(from, newline), lineStart, options.buffers), maxLineBytes));
      // The line's bytes are copied out of its whole chunks now (a line is never a view of two chunks).
      giveBack(wholeParts);
      overflowing = false;
      parts = [];
      wholeParts = [];
      partsLength = 0;
      lineStart = position + newline + 1;
      if (lineStart >= end) break;
      from = newline + 1;
      if (group.length === maxGroupLines) {
        yield group;
        group = [];
      }
    }
    if (group.length > 0) yield group;
    if (lineStart >= end) return;
    position += chunk.length;
    if (seeking && position >= end) return;
  }
  if (seeking || lineStart >= split.objectSize) return;
  yield [overflowing ? tooLongLine(lineStart) : finishLine(lineStart, joinLine(parts, partsLength, undefined, lineStart, options.buffers), maxLineBytes)];
}

/**
 * The object's bytes from `from` as Buffers: one ranged read up to the split's end, then
 * `readAheadBytes` ranges up to the planned size. Lazy, so a consumer that stops early stops
 * the reads (breaking out of `for await` destroys the current stream).
 */
async function* rangeChunks(store: ObjectStore, split: Split, from: number, readAheadBytes: number, read: ReadRangeOptions): AsyncGenerator<Buffer> {
  let position = from;
  let rangeEnd = Math.min(split.end, split.objectSize);
  while (position < rangeEnd) {
    const rangeStart = position;
    for await (const chunk of store.readRange(split.key, rangeStart, rangeEnd, read) as AsyncIterable<Uint8Array>) {
      const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      position += buffer.length;
      yield buffer;
    }
    if (position !== rangeEnd) {
      throw new StorageError(
        `object ${split.key} returned ${position - rangeStart} bytes for range ${rangeStart}-${rangeEnd}, expected ${rangeEnd - rangeStart}: it changed after planning, re-run the plan`,
        { key: split.key, split: split.index, start: rangeStart, end: rangeEnd },
      );
    }
    rangeEnd = Math.min(position + readAheadBytes, split.objectSize);
  }
}

/**
 * A line whose bytes span chunks, copied into one buffer: a leased read buffer when it fits (held
 * like the chunks, from the line's offset), else a new one.
 */
function joinLine(parts: readonly Buffer[], partsLength: number, last: Buffer | undefined, offset: number, buffers: ReadBufferLease | undefined): Buffer {
  if (parts.length === 0) return last ?? Buffer.alloc(0);
  if (last === undefined && parts.length === 1) return parts[0] as Buffer;
  const pieces = last === undefined ? parts : [...parts, last];
  const length = partsLength + (last?.length ?? 0);
  if (buffers === undefined || length > buffers.bufferBytes) return Buffer.concat(pieces, length);
  const line = buffers.take(offset, length);
  let at = 0;
  for (const piece of pieces) at += piece.copy(line, at);
  return line;
}

function finishLine(offset: number, raw: Buffer, maxLineBytes: number): SplitLine {
  let bytes = raw;
  if (offset === 0 && bytes.length >= BOM.length && bytes[0] === BOM[0] && bytes[1] === BOM[1] && bytes[2] === BOM[2]) {
    bytes = bytes.subarray(BOM.length);
  }
  if (bytes.length > 0 && bytes[bytes.length - 1] === CARRIAGE_RETURN) bytes = bytes.subarray(0, bytes.length - 1);
  return bytes.length > maxLineBytes ? tooLongLine(offset) : { offset, bytes };
}

function tooLongLine(offset: number): SplitLine {
  return { offset, bytes: Buffer.alloc(0), tooLong: true };
}

function positiveInteger(value: number, name: string, unit = 'bytes'): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new ConfigError(`line reader option ${name} must be a positive whole number of ${unit}, got ${String(value)}`, { [name]: String(value) });
  }
  return value;
}
