import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import onnxProto from 'onnx-proto';
import { elementCount, type GraphSpec, type GraphValueSpec, type InitializerSpec, type NodeSpec, type TensorElementType } from './onnx-graph-builder.js';

const { onnx } = onnxProto;

/** Model-level fields of the written ModelProto. */
export interface OnnxModelHeader {
  /** Default opset of the standard domain; 17 is the first with LayerNormalization. */
  readonly opsetVersion: number;
  /** Free text stored in `doc_string`, shown by model viewers. */
  readonly docString: string;
}

const ELEMENT_TYPES: Readonly<Record<TensorElementType, { readonly onnxType: number; readonly bytes: number }>> = {
  float32: { onnxType: onnx.TensorProto.DataType.FLOAT, bytes: 4 },
  float16: { onnxType: onnx.TensorProto.DataType.FLOAT16, bytes: 2 },
  int64: { onnxType: onnx.TensorProto.DataType.INT64, bytes: 8 },
  int32: { onnxType: onnx.TensorProto.DataType.INT32, bytes: 4 },
  int8: { onnxType: onnx.TensorProto.DataType.INT8, bytes: 1 },
  uint8: { onnxType: onnx.TensorProto.DataType.UINT8, bytes: 1 },
  bool: { onnxType: onnx.TensorProto.DataType.BOOL, bytes: 1 },
};

/** The ONNX TensorProto.DataType number of an element type (Cast's `to` attribute takes it). */
export function onnxElementType(type: TensorElementType): number {
  return ELEMENT_TYPES[type].onnxType;
}

// Protobuf wire tags (field number << 3 | wire type 2) of the length-delimited fields streamed here.
const MODEL_GRAPH_TAG = (7 << 3) | 2;
const GRAPH_INITIALIZER_TAG = (5 << 3) | 2;
const TENSOR_RAW_DATA_TAG = (9 << 3) | 2;

/**
 * Writes a GraphSpec as a single-file ONNX model at `path`.
 *
 * protobufjs would need the whole model (600 MB for ViT-B/32 plus a copy) in memory to encode it,
 * so only the small parts go through onnx-proto; initializers are framed by hand and streamed one
 * at a time, which is valid protobuf because repeated fields may be written in any order and
 * concatenated. The file appears under its final name only once complete (write, then rename).
 */
export async function writeOnnxModel(path: string, graph: GraphSpec, header: OnnxModelHeader): Promise<void> {
  const modelHead = onnx.ModelProto.encode({
    irVersion: 8,
    producerName: 'vecmill',
    docString: header.docString,
    opsetImport: [{ domain: '', version: header.opsetVersion }],
  }).finish();
  const graphHead = onnx.GraphProto.encode({
    name: graph.name,
    node: graph.nodes.map(toNodeProto),
    input: graph.inputs.map(toValueInfo),
    output: graph.outputs.map(toValueInfo),
  }).finish();
  const tensors = graph.initializers.map((init) => ({ init, head: tensorHead(init) }));
  const graphLength = tensors.reduce((sum, t) => sum + lengthDelimitedSize(t.head.messageLength), graphHead.length);
  const tmpPath = `${path}.tmp-${process.pid}`;
  const file = await open(tmpPath, 'w');
  try {
    await writeAll(file, modelHead);
    await writeAll(file, Buffer.concat([Uint8Array.of(MODEL_GRAPH_TAG), varint(graphLength), graphHead]));
    for (const { init, head } of tensors) {
      const values = init.values();
      if (values.byteLength !== head.rawLength) {
        throw new Error(`internal: initializer ${init.name} produced ${values.byteLength} bytes, expected ${head.rawLength}`);
      }
      await writeAll(file, Buffer.concat([Uint8Array.of(GRAPH_INITIALIZER_TAG), varint(head.messageLength), head.bytes]));
      await writeAll(file, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    }
    await file.close();
    await rename(tmpPath, path);
  } catch (err) {
    await file.close().catch(() => undefined);
    await rm(tmpPath, { force: true });
    throw err;
  }
}

interface TensorHead {
  /** TensorProto fields before raw_data, plus raw_data's tag and length. */
  readonly bytes: Uint8Array;
  readonly rawLength: number;
  readonly messageLength: number;
}

function tensorHead(init: InitializerSpec): TensorHead {
  const fields = onnx.TensorProto.encode({ dims: [...init.dims], dataType: onnxElementType(init.type), name: init.name }).finish();
  const rawLength = elementCount(init.dims) * ELEMENT_TYPES[init.type].bytes;
  const bytes = Buffer.concat([fields, Uint8Array.of(TENSOR_RAW_DATA_TAG), varint(rawLength)]);
  return { bytes, rawLength, messageLength: bytes.length + rawLength };
}

function toNodeProto(node: NodeSpec): onnxProto.onnx.INodeProto {
  return {
    name: node.name,
    opType: node.opType,
    input: [...node.inputs],
    output: [...node.outputs],
    attribute: Object.entries(node.attributes).map(([name, value]) => {
      if ('i' in value) return { name, type: onnx.AttributeProto.AttributeType.INT, i: value.i };
      if ('f' in value) return { name, type: onnx.AttributeProto.AttributeType.FLOAT, f: value.f };
      return { name, type: onnx.AttributeProto.AttributeType.INTS, ints: [...value.ints] };
    }),
  };
}

function toValueInfo(value: GraphValueSpec): onnxProto.onnx.IValueInfoProto {
  return {
    name: value.name,
    type: {
      tensorType: {
        elemType: onnxElementType(value.type),
        shape: { dim: value.dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  };
}

function lengthDelimitedSize(messageLength: number): number {
  return 1 + varint(messageLength).length + messageLength;
}

function varint(value: number): Uint8Array {
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    bytes.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  bytes.push(rest);
  return Uint8Array.from(bytes);
}

async function writeAll(file: FileHandle, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await file.write(bytes, offset, bytes.length - offset);
    offset += bytesWritten;
  }
}
