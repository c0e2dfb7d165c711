import { addActivation, addAttention, addClipEncoderLayer, addLayerNorm, addLinear } from './clip-encoder-layer.js';
import type { ClipVisionGraphOptions } from './clip-vision-graph.js';
import { OnnxGraphBuilder, type GraphSpec } from './onnx-graph-builder.js';

/**
 * SigLIP's vision tower as Hugging Face's SiglipVisionModel exports it: `pixel_values` float32
 * [batch_size, 3, S, S] to `pooler_output` float32 [batch_size, hidden_size]. Patches come from a
 * strided Conv with bias, with no class token; pre-LayerNorm layers with tanh GELU, a post
 * LayerNorm, then the multihead attention pooling head (MAP): a learned probe attends over all
 * patches, followed by LayerNorm and a residual MLP, and the probe's state is the embedding.
 */
export function buildSiglipVisionGraph(options: ClipVisionGraphOptions): GraphSpec {
  const { shape, seed } = options;
  const { hiddenSize: width, numHiddenLayers: depth, imageSize, patchSize, intermediateSize } = shape.vision;
  const patchCount = (imageSize / patchSize) ** 2;
  const g = new OnnxGraphBuilder('siglip_vision_model', seed);
  const pixels = g.input('pixel_values', 'float32', ['batch_size', 3, imageSize, imageSize]);

  const patchWeight = g.randomWeight('vision_model.embeddings.patch_embedding.weight', [width, 3, patchSize, patchSize], 0.02);
  const patchBias = g.filledWeight('vision_model.embeddings.patch_embedding.bias', [width], 0);
  const patchGrid = g.op('Conv', [pixels, patchWeight, patchBias], { kernel_shape: { ints: [patchSize, patchSize] }, strides: { ints: [patchSize, patchSize] } });
  const patches = g.op('Transpose', [g.op('Reshape', [patchGrid, g.int64([0, 0, -1])])], { perm: { ints: [0, 2, 1] } });
  const positionTable = g.randomWeight('vision_model.embeddings.position_embedding.weight', [patchCount, width], 0.02);
  let hidden = g.op('Add', [patches, positionTable]);
  for (let layer = 0; layer < depth; layer++) {
    hidden = addClipEncoderLayer(g, `vision_model.encoder.layers.${layer}`, hidden, { shape: shape.vision, layerNormEps: shape.layerNormEps, activation: 'gelu_tanh' });
  }
  const normed = addLayerNorm(g, 'vision_model.post_layernorm', hidden, width, shape.layerNormEps);

  const batch = g.op('Shape', [pixels], { start: { i: 0 }, end: { i: 1 } });
  const probeShape = g.op('Concat', [batch, g.int64([1, width])], { axis: { i: 0 } });
  const probe = g.op('Expand', [g.randomWeight('vision_model.head.probe', [1, 1, width], 1), probeShape]);
  const attended = addAttention(g, 'vision_model.head.attention', probe, normed, shape.vision, undefined);
  const mlpIn = addLayerNorm(g, 'vision_model.head.layernorm', attended, width, shape.layerNormEps);
  const fc1 = addLinear(g, 'vision_model.head.mlp.fc1', mlpIn, width, intermediateSize, { std: (2 * width) ** -0.5, bias: true });
  const fc2 = addLinear(g, 'vision_model.head.mlp.fc2', addActivation(g, fc1, 'gelu_tanh'), intermediateSize, width, { std: intermediateSize ** -0.5, bias: true });
  const pooled = g.op('Gather', [g.op('Add', [attended, fc2]), g.int64([0], [])], { axis: { i: 1 } });
  g.op('Identity', [pooled], {}, 'pooler_output');
  g.output('pooler_output', 'float32', ['batch_size', width]);
  return g.build();
}
