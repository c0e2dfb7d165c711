import type { GraphSpec, InitializerSpec, NodeSpec } from './onnx-graph-builder.js';
import { onnxElementType } from './onnx-model-writer.js';

/**
 * The dynamically quantized variant of a float32 graph, matching what onnxruntime's
 * `quantize_dynamic` writes for Hugging Face's `*_quantized.onnx` files:
 *
 * - every MatMul by a 2-D float weight becomes DynamicQuantizeLinear(activation) + MatMulInteger
 *   with int8 weights (symmetric, per tensor, zero point 0), then Cast to float and Mul by
 *   activation scale x weight scale. onnxruntime's CPU provider fuses this pattern into one
 *   DynamicQuantizeMatMul kernel; Q, K and V share one quantized activation, as in ORT's own
 *   output, and become MatMulIntegerToFloat kernels after that shared quantization.
 * - a Gather from a float embedding table becomes a Gather from the int8 table followed by
 *   DequantizeLinear of the gathered rows, so the 49408-row token table shrinks fourfold without
 *   dequantizing rows nobody looks up.
 *
 * Everything else (Conv patch embedding, LayerNorm, attention between activations) stays float32.
 */
export function toQ8Graph(graph: GraphSpec): GraphSpec {
  const floatWeights = new Map(graph.initializers.filter((i) => i.type === 'float32' && i.dims.length === 2).map((i) => [i.name, i]));
  const quantizedWeights = new Map<string, QuantizedNames>();
  const quantizedActivations = new Map<string, QuantizedNames>();
  const nodes: NodeSpec[] = [];

  const quantizeWeight = (name: string): QuantizedNames => {
    const existing = quantizedWeights.get(name);
    if (existing !== undefined) return existing;
    const names = quantizedNames(name);
    quantizedWeights.set(name, names);
    return names;
  };

  for (const node of graph.nodes) {
    const [first, second] = node.inputs;
    const output = node.outputs[0];
    if (node.opType === 'MatMul' && first !== undefined && second !== undefined && output !== undefined && floatWeights.has(second)) {
      let activation = quantizedActivations.get(first);
      if (activation === undefined) {
        activation = quantizedNames(first);
        quantizedActivations.set(first, activation);
        nodes.push(graphNode('DynamicQuantizeLinear', `${node.name}_DynamicQuantizeLinear`, [first], [activation.values, activation.scale, activation.zeroPoint]));
      }
      const weight = quantizeWeight(second);
      nodes.push(
        graphNode('MatMulInteger', `${node.name}_MatMulInteger`, [activation.values, weight.values, activation.zeroPoint, weight.zeroPoint], [`${output}_int32`]),
        graphNode('Mul', `${node.name}_scales_Mul`, [activation.scale, weight.scale], [`${output}_scale`]),
        graphNode('Cast', `${node.name}_Cast`, [`${output}_int32`], [`${output}_float`], { to: { i: onnxElementType('float32') } }),
        graphNode('Mul', `${node.name}_output_Mul`, [`${output}_float`, `${output}_scale`], [output]),
      );
    } else if (node.opType === 'Gather' && first !== undefined && second !== undefined && output !== undefined && floatWeights.has(first)) {
      const table = quantizeWeight(first);
      nodes.push(
        { ...node, inputs: [table.values, second], outputs: [`${output}_quantized`] },
        graphNode('DequantizeLinear', `${node.name}_DequantizeLinear`, [`${output}_quantized`, table.scale, table.zeroPoint], [output]),
      );
    } else {
      nodes.push(node);
    }
  }

  const initializers = graph.initializers.flatMap((init) => (quantizedWeights.has(init.name) ? quantizedInitializers(init) : [init]));
  return { ...graph, nodes, initializers };
}

interface QuantizedNames {
  readonly values: string;
  readonly scale: string;
  readonly zeroPoint: string;
}

function quantizedNames(name: string): QuantizedNames {
  return { values: `${name}_quantized`, scale: `${name}_scale`, zeroPoint: `${name}_zero_point` };
}

function graphNode(
  opType: string,
  name: string,
  inputs: readonly string[],
  outputs: readonly string[],
  attributes: NodeSpec['attributes'] = {},
): NodeSpec {
  return { name, opType, inputs, outputs, attributes };
}

/**
 * The int8 values, scale and zero point replacing one float weight. Values and scale come from
 * one pass over the weight; the writer asks for them one after the other, so the result is cached
 * only between those two reads rather than generating the weight twice.
 */
function quantizedInitializers(init: InitializerSpec): InitializerSpec[] {
  const names = quantizedNames(init.name);
  let pending: { values: Int8Array; scale: number } | undefined;
  const take = (): { values: Int8Array; scale: number } => {
    const result = pending ?? quantizeSymmetric(init);
    pending = pending === undefined ? result : undefined;
    return result;
  };
  return [
    { name: names.values, type: 'int8', dims: init.dims, values: () => take().values },
    { name: names.scale, type: 'float32', dims: [], values: () => Float32Array.of(take().scale) },
    { name: names.zeroPoint, type: 'int8', dims: [], values: () => Int8Array.of(0) },
  ];
}

/** Symmetric int8 quantization over the whole tensor: q = round(w / scale), scale = max|w| / 127. */
function quantizeSymmetric(init: InitializerSpec): { values: Int8Array; scale: number } {
  const weights = init.values();
  if (!(weights instanceof Float32Array)) throw new Error(`internal: float32 initializer ${init.name} produced ${weights.constructor.name}`);
  let maxAbs = 0;
  for (const w of weights) maxAbs = Math.max(maxAbs, Math.abs(w));
  const scale = Math.fround(maxAbs > 0 ? maxAbs / 127 : 1);
  const values = new Int8Array(weights.length);
  for (let i = 0; i < weights.length; i++) values[i] = Math.round((weights[i] ?? 0) / scale);
  return { values, scale };
}
