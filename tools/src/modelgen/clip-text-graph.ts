import { addClipEncoderLayer, addLayerNorm } from './clip-encoder-layer.js';
import type { ClipPresetShape } from './model-presets.js';
import { OnnxGraphBuilder, type GraphSpec } from './onnx-graph-builder.js';

/** What the text graph depends on besides the preset: the tokenizer's vocabulary and the seed. */
export interface ClipTextGraphOptions {
  readonly shape: ClipPresetShape;
  readonly vocabSize: number;
  readonly seed: number;
}

/**
 * The text tower as Hugging Face's CLIPTextModelWithProjection exports it: `input_ids` int64
 * [batch_size, sequence_length] to unnormalised `text_embeds` float32 [batch_size, projection_dim].
 *
 * Both input axes are dynamic: position embeddings are sliced to the actual length and the
 * causal mask is built from it in-graph. Pooling takes the hidden state at ArgMax(input_ids),
 * i.e. the first end-of-text token (CLIP's EOT is the largest id and padding repeats it), and with
 * causal attention nothing after that token can influence it: padding never changes an embedding.
 */
export function buildClipTextGraph(options: ClipTextGraphOptions): GraphSpec {
  const { shape, vocabSize, seed } = options;
  const { hiddenSize: width, numHiddenLayers: depth, maxPositionEmbeddings } = shape.text;
  const g = new OnnxGraphBuilder('clip_text_model', seed);
  const inputIds = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);

  const tokenEmbeds = g.op('Gather', [g.randomWeight('text_model.embeddings.token_embedding.weight', [vocabSize, width], 0.02), inputIds], { axis: { i: 0 } });
  const seqLen = g.op('Shape', [inputIds], { start: { i: 1 }, end: { i: 2 } });
  const positionTable = g.randomWeight('text_model.embeddings.position_embedding.weight', [maxPositionEmbeddings, width], 0.01);
  const positionEmbeds = g.op('Slice', [positionTable, g.int64([0]), seqLen, g.int64([0])]);
  let hidden = g.op('Add', [tokenEmbeds, positionEmbeds]);

  const positions = g.op('Range', [g.int64([0], []), g.op('Squeeze', [seqLen, g.int64([0])]), g.int64([1], [])]);
  const queryPositions = g.op('Unsqueeze', [positions, g.int64([1])]);
  const keyPositions = g.op('Unsqueeze', [positions, g.int64([0])]);
  const causalMask = g.op('LessOrEqual', [keyPositions, queryPositions]);

  for (let layer = 0; layer < depth; layer++) {
    hidden = addClipEncoderLayer(g, `text_model.encoder.layers.${layer}`, hidden, { shape: shape.text, layerNormEps: shape.layerNormEps, attendMask: causalMask });
  }
  const normed = addLayerNorm(g, 'text_model.final_layer_norm', hidden, width, shape.layerNormEps);
  const eotIndex = g.op('ArgMax', [inputIds], { axis: { i: 1 }, keepdims: { i: 1 }, select_last_index: { i: 0 } });
  const pooled = g.op('GatherND', [normed, eotIndex], { batch_dims: { i: 1 } });
  const projection = g.randomWeight('text_projection.weight', [width, shape.projectionDim], width ** -0.5);
  g.op('MatMul', [pooled, projection], {}, 'text_embeds');
  g.output('text_embeds', 'float32', ['batch_size', shape.projectionDim]);
  return g.build();
}
