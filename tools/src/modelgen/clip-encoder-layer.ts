import type { OnnxGraphBuilder } from './onnx-graph-builder.js';
import type { ClipTowerShape } from './model-presets.js';

/** Initialisation and shape details of one linear layer. */
export interface LinearOptions {
  /** Standard deviation of the random weight. */
  readonly std: number;
  /** Whether an Add of a (zero-initialised) bias follows; CLIP's projections have none. */
  readonly bias: boolean;
}

/** A linear layer as exporters write it: MatMul by a [in, out] weight, then Add of the bias. */
export function addLinear(g: OnnxGraphBuilder, prefix: string, x: string, inFeatures: number, outFeatures: number, options: LinearOptions): string {
  const weight = g.randomWeight(`${prefix}.weight`, [inFeatures, outFeatures], options.std);
  const product = g.op('MatMul', [x, weight]);
  if (!options.bias) return product;
  return g.op('Add', [product, g.filledWeight(`${prefix}.bias`, [outFeatures], 0)]);
}

/** LayerNormalization over the last axis, initialised like PyTorch (gamma 1, beta 0). */
export function addLayerNorm(g: OnnxGraphBuilder, prefix: string, x: string, width: number, epsilon: number): string {
  const gamma = g.filledWeight(`${prefix}.weight`, [width], 1);
  const beta = g.filledWeight(`${prefix}.bias`, [width], 0);
  return g.op('LayerNormalization', [x, gamma, beta], { axis: { i: -1 }, epsilon: { f: epsilon } });
}

/** How one encoder layer is wired into its tower. */
export interface ClipEncoderLayerOptions {
  readonly shape: ClipTowerShape;
  readonly layerNormEps: number;
  /**
   * Boolean [seq, seq] tensor, true where a query may attend to a key. The text tower passes a
   * causal mask; the vision tower attends everywhere and passes nothing. Any tensor that
   * broadcasts against the [batch, heads, seq, seq] scores works, e.g. a [batch, 1, 1, seq]
   * padding mask for BERT.
   */
  readonly attendMask?: string;
  /** The MLP's activation: CLIP's QuickGELU (default), BERT's exact GELU, or SigLIP's tanh GELU. */
  readonly activation?: Activation;
  /** BERT's post-LayerNorm order, LN(x + Attention(x)) then LN(x + MLP(x)); default pre-LayerNorm as in CLIP and SigLIP. */
  readonly postNorm?: boolean;
}

/** The MLP activations of the generated families (Hugging Face `hidden_act` names: quick_gelu, gelu, gelu_pytorch_tanh). */
export type Activation = 'quick_gelu' | 'gelu' | 'gelu_tanh';

/** Applies an activation with ops every opset-17 runtime has (ONNX's Gelu op arrived in opset 20). */
export function addActivation(g: OnnxGraphBuilder, x: string, activation: Activation): string {
  if (activation === 'quick_gelu') return g.op('Mul', [x, g.op('Sigmoid', [g.op('Mul', [x, g.float32Scalar(1.702)])])]);
  if (activation === 'gelu') {
    const erf = g.op('Erf', [g.op('Mul', [x, g.float32Scalar(Math.SQRT1_2)])]);
    return g.op('Mul', [g.op('Mul', [x, g.float32Scalar(0.5)]), g.op('Add', [erf, g.float32Scalar(1)])]);
  }
  const cubic = g.op('Mul', [g.op('Mul', [g.op('Mul', [x, x]), x]), g.float32Scalar(0.044715)]);
  const tanh = g.op('Tanh', [g.op('Mul', [g.op('Add', [x, cubic]), g.float32Scalar(Math.sqrt(2 / Math.PI))])]);
  return g.op('Mul', [g.op('Mul', [x, g.float32Scalar(0.5)]), g.op('Add', [tanh, g.float32Scalar(1)])]);
}

/**
 * Multi-head attention of `queryIn` over `keyValueIn` (the same value for self-attention), with
 * q/k/v/out projections named under `prefix` and an optional boolean mask of where to attend.
 */
export function addAttention(g: OnnxGraphBuilder, prefix: string, queryIn: string, keyValueIn: string, shape: ClipTowerShape, attendMask: string | undefined): string {
  const { hiddenSize: width, numAttentionHeads: heads, numHiddenLayers: depth } = shape;
  const headDim = width / heads;
  const inProjStd = width ** -0.5 * (2 * depth) ** -0.5;
  const outProjStd = width ** -0.5;
  const query = g.op('Mul', [addLinear(g, `${prefix}.q_proj`, queryIn, width, width, { std: inProjStd, bias: true }), g.float32Scalar(headDim ** -0.5)]);
  const key = addLinear(g, `${prefix}.k_proj`, keyValueIn, width, width, { std: inProjStd, bias: true });
  const value = addLinear(g, `${prefix}.v_proj`, keyValueIn, width, width, { std: inProjStd, bias: true });
  const headsShape = g.int64([0, 0, heads, headDim]);
  const splitHeads = (t: string, perm: readonly number[]): string => g.op('Transpose', [g.op('Reshape', [t, headsShape])], { perm: { ints: perm } });
  const scores = g.op('MatMul', [splitHeads(query, [0, 2, 1, 3]), splitHeads(key, [0, 2, 3, 1])]);
  const masked = attendMask === undefined ? scores : g.op('Where', [attendMask, scores, g.float32Scalar(-3.4028234663852886e38)]);
  const probs = g.op('Softmax', [masked], { axis: { i: -1 } });
  const context = g.op('MatMul', [probs, splitHeads(value, [0, 2, 1, 3])]);
  const merged = g.op('Reshape', [g.op('Transpose', [context], { perm: { ints: [0, 2, 1, 3] } }), g.int64([0, 0, width])]);
  return addLinear(g, `${prefix}.out_proj`, merged, width, width, { std: outProjStd, bias: true });
}

/**
 * One CLIP encoder layer: x + Attention(LN1(x)), then x + MLP(LN2(x)) with QuickGELU (SigLIP's is
 * the same with tanh GELU; BERT's applies the LayerNorms after each residual instead). Weights
 * follow Hugging Face's CLIP initialisation (projection std scaled by width and depth) so that
 * activations stay in range through 12 layers of random weights and the residual stream is
 * driven by the input rather than by the bias of one layer.
 */
export function addClipEncoderLayer(g: OnnxGraphBuilder, prefix: string, x: string, options: ClipEncoderLayerOptions): string {
  const { hiddenSize: width, intermediateSize, numHiddenLayers: depth } = options.shape;
  const inProjStd = width ** -0.5 * (2 * depth) ** -0.5;
  const fcStd = (2 * width) ** -0.5;
  const eps = options.layerNormEps;
  const mlp = (input: string): string => {
    const hidden = addLinear(g, `${prefix}.mlp.fc1`, input, width, intermediateSize, { std: fcStd, bias: true });
    return addLinear(g, `${prefix}.mlp.fc2`, addActivation(g, hidden, options.activation ?? 'quick_gelu'), intermediateSize, width, { std: inProjStd, bias: true });
  };
  if (options.postNorm === true) {
    const attended = addLayerNorm(g, `${prefix}.layer_norm1`, g.op('Add', [x, addAttention(g, `${prefix}.self_attn`, x, x, options.shape, options.attendMask)]), width, eps);
    return addLayerNorm(g, `${prefix}.layer_norm2`, g.op('Add', [attended, mlp(attended)]), width, eps);
  }
  const attnIn = addLayerNorm(g, `${prefix}.layer_norm1`, x, width, eps);
  const afterAttn = g.op('Add', [x, addAttention(g, `${prefix}.self_attn`, attnIn, attnIn, options.shape, options.attendMask)]);
  return g.op('Add', [afterAttn, mlp(addLayerNorm(g, `${prefix}.layer_norm2`, afterAttn, width, eps))]);
}
