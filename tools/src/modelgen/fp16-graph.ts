import { toFloat16Bits } from './float16-bits.js';
import type { GraphSpec, GraphValueSpec, InitializerSpec, NodeSpec } from './onnx-graph-builder.js';
import { onnxElementType } from './onnx-model-writer.js';

/**
 * The float16 variant of a float32 graph, like the `*_fp16.onnx` files of Hugging Face exports
 * converted with keep_io_types: every float weight and constant becomes float16 (half the file
 * size), so the whole graph computes in half precision, while float32 graph inputs and outputs
 * are kept and converted by Cast nodes at the edges: callers feed and read the same tensors as
 * for the float32 model. Where onnxruntime's CPU provider lacks an fp16 kernel it runs that op in
 * float32 behind Casts of its own, so the file stays portable to providers that have them all.
 *
 * The source graphs contain no Cast-to-float nodes, so no node attribute needs rewriting.
 */
export function toFp16Graph(graph: GraphSpec): GraphSpec {
  const initializers = graph.initializers.map((init): InitializerSpec => {
    if (init.type !== 'float32') return init;
    return { ...init, type: 'float16', values: () => toFloat16Bits(asFloat32(init)) };
  });
  const inputCasts = new Map<string, string>();
  const inputNodes: NodeSpec[] = [];
  for (const input of floatValues(graph.inputs)) {
    const half = `${input.name}_fp16`;
    inputCasts.set(input.name, half);
    inputNodes.push(castNode(`/Cast_${input.name}_to_fp16`, input.name, half, 'float16'));
  }
  const outputCasts = new Map<string, string>();
  const outputNodes: NodeSpec[] = [];
  for (const output of floatValues(graph.outputs)) {
    const half = `${output.name}_fp16`;
    outputCasts.set(output.name, half);
    outputNodes.push(castNode(`/Cast_${output.name}_to_fp32`, half, output.name, 'float32'));
  }
  const body = graph.nodes.map((node) => ({
    ...node,
    inputs: node.inputs.map((name) => inputCasts.get(name) ?? name),
    outputs: node.outputs.map((name) => outputCasts.get(name) ?? name),
  }));
  return { ...graph, initializers, nodes: [...inputNodes, ...body, ...outputNodes] };
}

function floatValues(values: readonly GraphValueSpec[]): GraphValueSpec[] {
  return values.filter((v) => v.type === 'float32');
}

function castNode(name: string, input: string, output: string, to: 'float16' | 'float32'): NodeSpec {
  return { name, opType: 'Cast', inputs: [input], outputs: [output], attributes: { to: { i: onnxElementType(to) } } };
}

function asFloat32(init: InitializerSpec): Float32Array {
  const values = init.values();
  if (!(values instanceof Float32Array)) throw new Error(`internal: float32 initializer ${init.name} produced ${values.constructor.name}`);
  return values;
}
