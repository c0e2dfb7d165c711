import * as arrow from 'apache-arrow';

/**
 * Reused memory for the Arrow IPC stream of a table, which is the only form parquet-wasm takes a
 * table in (it copies the stream into WebAssembly memory at once). `tableToIPC` allocates a new
 * buffer of the table's size for every call; with a scratch, the stream's pieces are copied into
 * one buffer that is kept: encoding a chunk then leaves no chunk-sized garbage behind, which the
 * collector would free only in bursts. The buffer grows to the largest stream written through it,
 * so its owner bounds it: the embed path has one per run, and its tables are chunks, bounded by
 * the chunk options. Encodes are synchronous, so one scratch serves every split of a run.
 */
export class IpcScratch {
  private buffer = new Uint8Array(0);
  private length = 0;

  /**
   * The table's IPC stream, byte for byte what `arrow.tableToIPC(table, 'stream')` returns, as a
   * view of this scratch's memory: valid until the next call.
   */
  streamOf(table: arrow.Table): Uint8Array {
    this.length = 0;
    const writer = new arrow.RecordBatchStreamWriter();
    writer.reset(new ScratchSink(this));
    writer.writeAll(table);
    return this.buffer.subarray(0, this.length);
  }

  /** Appends bytes, growing the buffer (to twice its size at least) when they do not fit. */
  append(bytes: Uint8Array): void {
    const end = this.length + bytes.byteLength;
    if (end > this.buffer.byteLength) {
      const grown = new Uint8Array(Math.max(end, 2 * this.buffer.byteLength));
      grown.set(this.buffer.subarray(0, this.length));
      this.buffer = grown;
    }
    this.buffer.set(bytes, this.length);
    this.length = end;
  }
}

/**
 * The writer's sink: Arrow's stream writer takes any `AsyncByteQueue` as its sink and hands it
 * every piece of the stream through `write`, in order; this one copies them into the scratch
 * instead of queueing them.
 */
class ScratchSink extends arrow.AsyncByteQueue {
  constructor(private readonly scratch: IpcScratch) {
    super();
  }

  override write(value: Uint8Array): void {
    if (value.byteLength > 0) this.scratch.append(value);
  }
}
