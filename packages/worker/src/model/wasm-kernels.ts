import { resizeKernelsWasmBase64 } from './resize-kernels-wasm.js';

/** The few WebAssembly declarations used here (the project's TypeScript libs do not include them). */
declare const WebAssembly: {
  Memory: new (descriptor: { initial: number }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: { env: { memory: WasmMemory } }) => { exports: Record<string, unknown> };
};

/** A WebAssembly memory: its buffer is an ordinary ArrayBuffer, which onnxruntime-node accepts. */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}

/**
 * The exports of the kernels built from packages/worker/assembly/resize-kernels.ts; pointers are
 * byte offsets into `memory`. `horizontal` and `vertical` are the two bicubic passes (see
 * resize-bicubic.ts), `chw` the table lookup that turns an RGB crop into float planes (see
 * chw-tensor.ts).
 */
export interface WasmKernels {
  readonly memory: WasmMemory;
  readonly horizontal: (src: number, inStride: number, rows: number, bounds: number, weights: number, pairs: number, width: number, dst: number) => void;
  readonly vertical: (src: number, stride: number, height: number, bounds: number, weights: number, ksize: number, dst: number) => void;
  readonly chw: (src: number, pixels: number, table: number, dst: number) => void;
}

const wasmPage = 65536;
let compiled: object | undefined;

/**
 * A new instance of the kernels over a memory of its own, one page to start. The module is compiled
 * once per thread; each user (the resize of a preprocessing thread, the tensor of an inference
 * thread) has its own instance, so their memories grow and are laid out independently.
 */
export function instantiateKernels(): WasmKernels {
  compiled ??= new WebAssembly.Module(Buffer.from(resizeKernelsWasmBase64, 'base64'));
  const memory = new WebAssembly.Memory({ initial: 1 });
  const instance = new WebAssembly.Instance(compiled, { env: { memory } });
  return { memory, ...(instance.exports as unknown as Omit<WasmKernels, 'memory'>) };
}

/** Grows kernel memory to at least `total` bytes (growing detaches earlier views of it). */
export function reserveKernelMemory(k: WasmKernels, total: number): void {
  const have = k.memory.buffer.byteLength;
  if (total > have) k.memory.grow(Math.ceil((total - have) / wasmPage));
}
