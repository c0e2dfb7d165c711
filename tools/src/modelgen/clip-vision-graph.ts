import { addClipEncoderLayer, addLayerNorm } from './clip-encoder-layer.js';
import type { ClipPresetShape } from './model-presets.js';
import { OnnxGraphBuilder, type GraphSpec } from './onnx-graph-builder.js';

/** What the vision graph depends on: the preset's shape and the seed. */
export interface ClipVisionGraphOptions {
  readonly shape: ClipPresetShape;
  readonly seed: number;
}

/**
 * The vision tower as Hugging Face's CLIPVisionModelWithProjection exports it: `pixel_values`
 * float32 [batch_size, 3, S, S] (already resized, cropped and normalised) to unnormalised
 * `image_embeds` float32 [batch_size, projection_dim]. Patches come from a bias-free strided Conv,
 * a learned class token is prepended, and the class token's final state is the image embedding.
 */
export function buildClipVisionGraph(options: ClipVisionGraphOptions): GraphSpec {
  const { shape, seed } = options;
  const { hiddenSize: width, numHiddenLayers: depth, imageSize, patchSize } = shape.vision;
  const patchCount = (imageSize / patchSize) ** 2;
  const g = new OnnxGraphBuilder('clip_vision_model', seed);
  const pixels = g.input('pixel_values', 'float32', ['batch_size', 3, imageSize, imageSize]);

  const patchWeight = g.randomWeight('vision_model.embeddings.patch_embedding.weight', [width, 3, patchSize, patchSize], 0.02);
  const patchGrid = g.op('Conv', [pixels, patchWeight], { kernel_shape: { ints: [patchSize, patchSize] }, strides: { ints: [patchSize, patchSize] } });
  const patches = g.op('Transpose', [g.op('Reshape', [patchGrid, g.int64([0, 0, -1])])], { perm: { ints: [0, 2, 1] } });
  const batch = g.op('Shape', [pixels], { start: { i: 0 }, end: { i: 1 } });
  const classShape = g.op('Concat', [batch, g.int64([1, width])], { axis: { i: 0 } });
  const classToken = g.randomWeight('vision_model.embeddings.class_embedding', [1, 1, width], width ** -0.5);
  const tokens = g.op('Concat', [g.op('Expand', [classToken, classShape]), patches], { axis: { i: 1 } });
  const positionTable = g.randomWeight('vision_model.embeddings.position_embedding.weight', [patchCount + 1, width], 0.02);
  let hidden = addLayerNorm(g, 'vision_model.pre_layrnorm', g.op('Add', [tokens, positionTable]), width, shape.layerNormEps);

  for (let layer = 0; layer < depth; layer++) {
    hidden = addClipEncoderLayer(g, `vision_model.encoder.layers.${layer}`, hidden, { shape: shape.vision, layerNormEps: shape.layerNormEps });
  }
  const classState = g.op('Gather', [hidden, g.int64([0], [])], { axis: { i: 1 } });
  const pooled = addLayerNorm(g, 'vision_model.post_layernorm', classState, width, shape.layerNormEps);
  const projection = g.randomWeight('visual_projection.weight', [width, shape.projectionDim], width ** -0.5);
  g.op('MatMul', [pooled, projection], {}, 'image_embeds');
  g.output('image_embeds', 'float32', ['batch_size', shape.projectionDim]);
  return g.build();
}
