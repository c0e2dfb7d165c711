import { endianness } from 'node:os';
import { PassThrough, type Readable } from 'node:stream';
import { ConfigError, InputError, MergeError, StorageError, VecmillError } from '../errors.js';
import { float16ToFloat32, float32ToFloat16 } from './float16.js';

/** Little-endian float32 or float16: the two element types vecmill writes. */
export type NpyDtype = '<f4' | '<f2';

/** What `parseNpyHeader` reads from the start of a .npy file. */
export interface NpyHeader {
  /** Format version, `major.minor` (vecmill writes 1.0). */
  readonly version: string;
  /** numpy's dtype string, e.g. `<f4`. */
  readonly descr: string;
  readonly fortranOrder: boolean;
  readonly shape: readonly number[];
  /** Byte offset of the first data byte (= total header length, a multiple of 64). */
  readonly dataOffset: number;
}

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
/** numpy aligns the data start to this many bytes so files can be memory-mapped. */
const ARRAY_ALIGN = 64;
/** numpy leaves room in the header for the first axis to grow to this many digits. */
const GROWTH_AXIS_MAX_DIGITS = 21;

/**
 * The header numpy itself writes for a C-order 2-D array (format 1.0), byte for byte: the same
 * dict text, the spare spaces numpy reserves for the row count to grow, and space + newline
 * padding to a multiple of 64 bytes. Matching numpy exactly lets clip-retrieval's embedding-reader
 * (which reads headers itself to shard files by byte range) treat vecmill files like numpy's.
 */
export function npyHeader(shape: readonly [rows: number, dims: number], dtype: NpyDtype): Buffer {
  const [rows, dims] = shape;
  for (const n of shape) {
    if (!Number.isSafeInteger(n) || n < 0) throw new VecmillError('E_INTERNAL', `npy shape must hold non-negative integers, got (${rows}, ${dims})`);
  }
  let dict = `{'descr': '${dtype}', 'fortran_order': False, 'shape': (${rows}, ${dims}), }`;
  dict += ' '.repeat(GROWTH_AXIS_MAX_DIGITS - String(rows).length);
  const prefix = MAGIC.length + 2 + 2; // magic, version, u16 header length
  const unpadded = prefix + dict.length + 1; // + final newline
  const padding = ARRAY_ALIGN - (unpadded % ARRAY_ALIGN);
  const headerLength = dict.length + padding + 1;
  const out = Buffer.alloc(prefix + headerLength, 0x20);
  MAGIC.copy(out, 0);
  out[6] = 1;
  out[7] = 0;
  out.writeUInt16LE(headerLength, 8);
  out.write(dict, prefix, 'latin1');
  out[out.length - 1] = 0x0a;
  return out;
}

/**
 * Reads the header of a .npy file (versions 1, 2 and 3) from its first bytes: for tests and
 * `vecmill inspect`. Throws InputError when `bytes` does not start with a valid header.
 */
export function parseNpyHeader(bytes: Uint8Array, name = 'npy data'): NpyHeader {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const invalid = (detail: string): InputError => new InputError(`${name} is not a .npy file: ${detail}`, { name });
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) throw invalid('the \\x93NUMPY magic is missing');
  const major = buf[6]!;
  const minor = buf[7]!;
  let start: number;
  let length: number;
  if (major === 1) {
    start = 10;
    length = buf.readUInt16LE(8);
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) throw invalid('the header is truncated');
    start = 12;
    length = buf.readUInt32LE(8);
  } else {
    throw invalid(`format version ${major}.${minor} is unknown`);
  }
  if (buf.length < start + length) throw invalid(`the header needs ${start + length} bytes, only ${buf.length} given`);
  const text = buf.toString(major === 3 ? 'utf8' : 'latin1', start, start + length);
  const descr = /'descr':\s*'([^']*)'/.exec(text)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(text)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw invalid(`the header dict is malformed: ${text.trim()}`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  if (shape.some((n) => !Number.isSafeInteger(n) || n < 0)) throw invalid(`the shape (${shapeText}) is malformed`);
  return { version: `${major}.${minor}`, descr, fortranOrder: fortran === 'True', shape, dataOffset: start + length };
}

/**
 * Streams one 2-D .npy file whose row count is known before the first row (the merger knows it
 * from the shard markers), so the header goes out first and nothing is patched or buffered. Hand
 * `stream` to `ObjectStore.put`, then `write` row blocks in order and `end`; awaiting `write`
 * applies the upload's backpressure, so a file of any size never sits in memory, and the merger
 * can feed several outputs from one pass over its shards.
 *
 * Rows are written in the machine's byte order, which must be little-endian (every platform
 * Node ships for today): the constructor refuses to run elsewhere rather than write a file whose
 * header lies about its byte order.
 */
export class NpyWriter {
  private readonly out = new PassThrough();
  private written = 0;

  /** `name` (the object key) appears in error messages. */
  constructor(
    readonly rows: number,
    readonly dims: number,
    readonly dtype: NpyDtype,
    private readonly name = 'embeddings.npy',
  ) {
    if (endianness() !== 'LE') throw new ConfigError('vecmill writes .npy files only on little-endian machines; run the merger on x86-64 or arm64');
    if (!Number.isInteger(dims) || dims <= 0) throw new VecmillError('E_INTERNAL', `npy dims must be a positive integer, got ${dims}`);
    this.out.write(npyHeader([rows, dims], dtype));
    // An abort before the upload attached its listeners must not crash the process; the upload
    // still sees the error through the stream's errored state.
    this.out.on('error', () => undefined);
  }

  /** The bytes to upload. */
  get stream(): Readable {
    return this.out;
  }

  /** Total file size: header plus rows × dims elements (lets S3 uploads pick part sizes). */
  get byteLength(): number {
    return npyHeader([this.rows, this.dims], this.dtype).length + this.rows * this.dims * (this.dtype === '<f4' ? 4 : 2);
  }

  /**
   * Appends whole rows, row-major: float32 values or float16 bit patterns, converted when they
   * differ from the file's dtype. Chunks already in the file's dtype are queued without copying:
   * do not modify them afterwards. Rejects with MergeError past the declared row count and with
   * StorageError when the upload has stopped.
   */
  async write(values: Float32Array | Uint16Array): Promise<void> {
    if (values.length % this.dims !== 0) {
      throw new VecmillError('E_INTERNAL', `npy chunk of ${values.length} values is not a whole number of ${this.dims}-wide rows`);
    }
    const rows = values.length / this.dims;
    if (this.written + rows > this.rows) {
      throw this.fail(new MergeError(`${this.name} was declared with ${this.rows} rows but more arrived: the shard row counts disagree with the markers`, { key: this.name }));
    }
    if (this.out.destroyed || this.out.writableEnded) throw this.stoppedError();
    this.written += rows;
    let data: Float32Array | Uint16Array = values;
    if (this.dtype === '<f2' && values instanceof Float32Array) data = float32ToFloat16(values);
    else if (this.dtype === '<f4' && values instanceof Uint16Array) data = float16ToFloat32(values);
    if (this.out.write(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))) return;
    await new Promise<void>((resolve, reject) => {
      const settle = (err?: Error): void => {
        this.out.off('drain', onDrain).off('close', onClose).off('error', onError);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onDrain = (): void => settle();
      const onClose = (): void => settle(this.stoppedError());
      const onError = (err: Error): void => settle(err);
      this.out.on('drain', onDrain).on('close', onClose).on('error', onError);
    });
  }

  /** Ends the file; throws MergeError (and fails the upload) when fewer rows than declared arrived. */
  end(): void {
    if (this.written !== this.rows) {
      throw this.fail(new MergeError(`${this.name} was declared with ${this.rows} rows but only ${this.written} arrived: the shard row counts disagree with the markers`, { key: this.name }));
    }
    this.out.end();
  }

  /** Fails the upload so it stores nothing, e.g. when reading a shard failed midway. */
  abort(err: Error): void {
    this.out.destroy(err);
  }

  private fail(err: Error): Error {
    this.abort(err);
    return err;
  }

  private stoppedError(): StorageError {
    return new StorageError(`the upload of ${this.name} stopped before all rows were written: see the upload's own error for the cause`, { key: this.name });
  }
}
