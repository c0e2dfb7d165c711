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
   * causal mask; the vision tower attends everywhere and passes nothing.
   */
  readonly attendMask?: string;
}

/**
 * One pre-LayerNorm CLIP encoder layer: x + Attention(LN1(x)), then x + MLP(LN2(x)) with
 * QuickGELU. Weights follow Hugging Face's CLIP initialisation (projection std scaled by width and
 * depth) so that activations stay in range through 12 layers of random weights and the residual
 * stream is driven by the input rather than by the bias of one layer.
 */
export function addClipEncoderLayer(g: OnnxGraphBuilder, prefix: string, x: string, options: ClipEncoderLayerOptions): string {
  const { hiddenSize: width, intermediateSize, numAttentionHeads: heads, numHiddenLayers: depth } = options.shape;
  const headDim = width / heads;
  const inProjStd = width ** -0.5 * (2 * depth) ** -0.5;
  const outProjStd = width ** -0.5;
  const fcStd = (2 * width) ** -0.5;

  const attnIn = addLayerNorm(g, `${prefix}.layer_norm1`, x, width, options.layerNormEps);
  const query = g.op('Mul', [addLinear(g, `${prefix}.self_attn.q_proj`, attnIn, width, width, { std: inProjStd, bias: true }), g.float32Scalar(headDim ** -0.5)]);
  const key = addLinear(g, `${prefix}.self_attn.k_proj`, attnIn, width, width, { std: inProjStd, bias: true });
  const value = addLinear(g, `${prefix}.self_attn.v_proj`, attnIn, width, width, { std: inProjStd, bias: true });
  const headsShape = g.int64([0, 0, heads, headDim]);
  const splitHeads = (t: string, perm: readonly number[]): string => g.op('Transpose', [g.op('Reshape', [t, headsShape])], { perm: { ints: perm } });
  const scores = g.op('MatMul', [splitHeads(query, [0, 2, 1, 3]), splitHeads(key, [0, 2, 3, 1])]);
  const masked = options.attendMask === undefined ? scores : g.op('Where', [options.attendMask, scores, g.float32Scalar(-3.4028234663852886e38)]);
  const probs = g.op('Softmax', [masked], { axis: { i: -1 } });
  const context = g.op('MatMul', [probs, splitHeads(value, [0, 2, 1, 3])]);
  const merged = g.op('Reshape', [g.op('Transpose', [context], { perm: { ints: [0, 2, 1, 3] } }), g.int64([0, 0, width])]);
  const attnOut = addLinear(g, `${prefix}.self_attn.out_proj`, merged, width, width, { std: outProjStd, bias: true });
  const afterAttn = g.op('Add', [x, attnOut]);

  const mlpIn = addLayerNorm(g, `${prefix}.layer_norm2`, afterAttn, width, options.layerNormEps);
  const hidden = addLinear(g, `${prefix}.mlp.fc1`, mlpIn, width, intermediateSize, { std: fcStd, bias: true });
  const activated = g.op('Mul', [hidden, g.op('Sigmoid', [g.op('Mul', [hidden, g.float32Scalar(1.702)])])]);
  const mlpOut = addLinear(g, `${prefix}.mlp.fc2`, activated, intermediateSize, width, { std: inProjStd, bias: true });
  return g.op('Add', [afterAttn, mlpOut]);
}
