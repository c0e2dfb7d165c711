import { cropBytes, type PixelBatch } from './pixel-batch.js';
import { instantiateKernels, reserveKernelMemory, type WasmKernels } from './wasm-kernels.js';

/** Options of a ChwTensor; each has the default it documents. */
export interface ChwTensorOptions {
  /**
   * Largest tensor (plus one crop) kept in WebAssembly memory, in bytes. Default 2 GiB, well
   * inside a 32-bit memory's 4 GiB; a larger batch is converted in JavaScript into an array of
   * its own instead.
   */
  readonly maxWasmBytes?: number;
}

const tableBytes = 3 * 256 * Float32Array.BYTES_PER_ELEMENT;
/** The `chw` kernel reads four bytes per pixel, one past the crop. */
const slack = 16;

/**
 * The vision tower's float32 input, `[count, 3, height, width]`, made from a PixelBatch where the
 * model runs. The floats live in this object's own WebAssembly memory, reused batch after batch:
 * each crop is copied in once and the `chw` kernel writes its three planes straight into the
 * tensor, which onnxruntime-node reads where it lies (a WebAssembly memory's buffer is an ordinary
 * ArrayBuffer; shared memory it refuses). The values are `table`'s, bit for bit.
 */
export class ChwTensor {
  private readonly maxWasmBytes: number;
  private kernels: WasmKernels | undefined;
  private large = new Float32Array(0);

  constructor(options: ChwTensorOptions = {}) {
    this.maxWasmBytes = options.maxWasmBytes ?? 2 ** 31;
  }

  /** The batch as floats: a view of this object's memory, valid until the next call. */
  fill(batch: PixelBatch): Float32Array {
    const { count, height, width, crops, table } = batch;
    const per = cropBytes(height, width);
    if (crops.length < count * per || table.length !== 3 * 256) {
      throw new RangeError(`a batch of ${count} ${width}x${height} crops needs ${count * per} bytes and a 768-entry table, got ${crops.length} bytes and ${table.length} entries`);
    }
    const floats = count * per;
    const tensorAt = tableBytes;
    const cropAt = tensorAt + floats * Float32Array.BYTES_PER_ELEMENT;
    if (cropAt + per + slack > this.maxWasmBytes) return this.fillInJs(batch, floats);
    const k = (this.kernels ??= instantiateKernels());
    reserveKernelMemory(k, cropAt + per + slack);
    const heap = k.memory.buffer;
    new Float32Array(heap, 0, 3 * 256).set(table);
    const bytes = new Uint8Array(heap);
    for (let i = 0; i < count; i++) {
      bytes.set(crops.subarray(i * per, (i + 1) * per), cropAt);
      k.chw(cropAt, height * width, 0, tensorAt + i * per * Float32Array.BYTES_PER_ELEMENT);
    }
    return new Float32Array(heap, tensorAt, floats);
  }

  private fillInJs(batch: PixelBatch, floats: number): Float32Array {
    if (this.large.length < floats) this.large = new Float32Array(floats);
    const out = this.large.subarray(0, floats);
    chwInto(batch, out);
    return out;
  }
}

/**
 * The same conversion in JavaScript, into `out` (`count x 3 x height x width` floats): for a batch
 * too large for WebAssembly memory, and for callers that want an array of their own (`chwFloats`).
 */
export function chwInto(batch: PixelBatch, out: Float32Array): void {
  const { count, height, width, crops, table } = batch;
  const pixels = height * width;
  for (let i = 0; i < count; i++) {
    const base = i * 3 * pixels;
    let p = i * 3 * pixels;
    for (let j = 0; j < pixels; j++, p += 3) {
      out[base + j] = table[crops[p]!]!;
      out[base + pixels + j] = table[256 + crops[p + 1]!]!;
      out[base + 2 * pixels + j] = table[512 + crops[p + 2]!]!;
    }
  }
}

/** The batch as a fresh float32 array `[count, 3, height, width]` (queries, tests, tools). */
export function chwFloats(batch: PixelBatch): Float32Array {
  const out = new Float32Array(batch.count * cropBytes(batch.height, batch.width));
  chwInto(batch, out);
  return out;
}
