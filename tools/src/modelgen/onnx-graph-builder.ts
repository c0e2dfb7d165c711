import { SeededRandom } from './seeded-random.js';

/** Element types the generated graphs use (a subset of ONNX TensorProto.DataType). */
export type TensorElementType = 'float32' | 'float16' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool';

/** Raw tensor contents as written to `raw_data`; float16 is carried as its IEEE bits. */
export type TensorValues = Float32Array | Uint16Array | BigInt64Array | Int32Array | Int8Array | Uint8Array;

/**
 * A weight or constant. `values` is a producer rather than data so that writing a model holds at
 * most one tensor in memory, and so that variant passes (fp16, int8) can wrap it lazily.
 */
export interface InitializerSpec {
  readonly name: string;
  readonly type: TensorElementType;
  readonly dims: readonly number[];
  readonly values: () => TensorValues;
}

/** An ONNX attribute value, named after the AttributeProto field it is written to. */
export type AttributeValue =
  | { readonly i: number }
  | { readonly f: number }
  | { readonly ints: readonly number[] };

/** One graph node. The standard ONNX domain is used throughout. */
export interface NodeSpec {
  readonly name: string;
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes: Readonly<Record<string, AttributeValue>>;
}

/** A graph input or output; string dims are symbolic (dynamic) axes such as `batch_size`. */
export interface GraphValueSpec {
  readonly name: string;
  readonly type: TensorElementType;
  readonly dims: readonly (number | string)[];
}

/** A whole graph, kept as plain data so variant passes can rewrite it before it is written. */
export interface GraphSpec {
  readonly name: string;
  readonly nodes: readonly NodeSpec[];
  readonly initializers: readonly InitializerSpec[];
  readonly inputs: readonly GraphValueSpec[];
  readonly outputs: readonly GraphValueSpec[];
  /** Learned parameters (weights, biases, embeddings), excluding shape and scalar constants. */
  readonly parameterCount: number;
}

/** Number of elements of a tensor with these dims. */
export function elementCount(dims: readonly number[]): number {
  return dims.reduce((product, d) => product * d, 1);
}

/**
 * Builds a GraphSpec node by node. Random weights are seeded per tensor name, so the same seed
 * and structure always give the same bytes; small int64/float constants are shared by value so
 * that twelve layers do not carry twelve copies of the same reshape target.
 */
export class OnnxGraphBuilder {
  private readonly nodes: NodeSpec[] = [];
  private readonly initializers: InitializerSpec[] = [];
  private readonly inputs: GraphValueSpec[] = [];
  private readonly outputs: GraphValueSpec[] = [];
  private readonly constants = new Map<string, string>();
  private readonly opCounts = new Map<string, number>();
  private parameterCount = 0;

  constructor(
    private readonly name: string,
    private readonly seed: number,
  ) {}

  /** Declares a graph input and returns its value name. */
  input(name: string, type: TensorElementType, dims: readonly (number | string)[]): string {
    this.inputs.push({ name, type, dims });
    return name;
  }

  /** Declares a graph output; `name` must be the output of a node added with that name. */
  output(name: string, type: TensorElementType, dims: readonly (number | string)[]): void {
    this.outputs.push({ name, type, dims });
  }

  /**
   * Adds a node with one output and returns the output's name. Pass `outputName` for values that
   * must have a fixed name (graph outputs); other names are generated from the op type.
   */
  op(
    opType: string,
    inputs: readonly string[],
    attributes: Readonly<Record<string, AttributeValue>> = {},
    outputName?: string,
  ): string {
    const count = (this.opCounts.get(opType) ?? 0) + 1;
    this.opCounts.set(opType, count);
    const nodeName = `/${opType}_${count}`;
    const output = outputName ?? `${nodeName}_output`;
    this.nodes.push({ name: nodeName, opType, inputs, outputs: [output], attributes });
    return output;
  }

  /** A float32 weight drawn from N(0, std^2), seeded by the model seed and the weight's name. */
  randomWeight(name: string, dims: readonly number[], std: number): string {
    const seed = this.seed;
    this.parameterCount += elementCount(dims);
    this.initializers.push({
      name,
      type: 'float32',
      dims,
      values: () => {
        const out = new Float32Array(elementCount(dims));
        SeededRandom.forTensor(seed, name).fillNormal(out, std);
        return out;
      },
    });
    return name;
  }

  /** A float32 weight with every element equal to `value` (LayerNorm gamma/beta, biases). */
  filledWeight(name: string, dims: readonly number[], value: number): string {
    this.parameterCount += elementCount(dims);
    this.initializers.push({ name, type: 'float32', dims, values: () => new Float32Array(elementCount(dims)).fill(value) });
    return name;
  }

  /** A shared int64 constant (shapes, axes, indices); `dims` defaults to a 1-D tensor. */
  int64(values: readonly number[], dims: readonly number[] = [values.length]): string {
    return this.constant(`int64[${dims.join(',')}]:${values.join(',')}`, 'int64', dims, () => BigInt64Array.from(values, (v) => BigInt(v)));
  }

  /** A shared float32 scalar constant. */
  float32Scalar(value: number): string {
    return this.constant(`float32[]:${value}`, 'float32', [], () => Float32Array.of(value));
  }

  /** The finished graph. */
  build(): GraphSpec {
    return {
      name: this.name,
      nodes: [...this.nodes],
      initializers: [...this.initializers],
      inputs: [...this.inputs],
      outputs: [...this.outputs],
      parameterCount: this.parameterCount,
    };
  }

  private constant(key: string, type: TensorElementType, dims: readonly number[], values: () => TensorValues): string {
    const existing = this.constants.get(key);
    if (existing !== undefined) return existing;
    const name = `/Constant_${this.constants.size + 1}`;
    this.constants.set(key, name);
    this.initializers.push({ name, type, dims, values });
    return name;
  }
}
