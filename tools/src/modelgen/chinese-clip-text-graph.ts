import { addClipEncoderLayer, addLayerNorm } from './clip-encoder-layer.js';
import type { ClipTextGraphOptions } from './clip-text-graph.js';
import { OnnxGraphBuilder, type GraphSpec } from './onnx-graph-builder.js';

/** ONNX TensorProto code of bool, for the Cast of the attention mask. */
const ONNX_BOOL = 9;

/**
 * Chinese-CLIP's text tower as Hugging Face's ChineseCLIPModel computes text features: a BERT
 * encoder over `input_ids`, `attention_mask` and `token_type_ids` (int64 [batch_size,
 * sequence_length]) to unnormalised `text_embeds` float32 [batch_size, projection_dim].
 *
 * Embeddings are word + position + token type, then LayerNorm; layers are post-LayerNorm with
 * exact GELU; attention is bidirectional, so a padded key would change every state unless the
 * mask hides it: keys where `attention_mask` is 0 get no weight. The hidden state at position 0
 * (`[CLS]`) is projected without bias (`text_projection`), as `get_text_features` does. With the
 * mask fed, padding never changes an embedding; without it, it would.
 */
export function buildChineseClipTextGraph(options: ClipTextGraphOptions): GraphSpec {
  const { shape, vocabSize, seed } = options;
  const { hiddenSize: width, numHiddenLayers: depth, maxPositionEmbeddings } = shape.text;
  const g = new OnnxGraphBuilder('chinese_clip_text_model', seed);
  const inputIds = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  const attentionMask = g.input('attention_mask', 'int64', ['batch_size', 'sequence_length']);
  const tokenTypeIds = g.input('token_type_ids', 'int64', ['batch_size', 'sequence_length']);

  const wordEmbeds = g.op('Gather', [g.randomWeight('text_model.embeddings.word_embeddings.weight', [vocabSize, width], 0.02), inputIds], { axis: { i: 0 } });
  const typeEmbeds = g.op('Gather', [g.randomWeight('text_model.embeddings.token_type_embeddings.weight', [2, width], 0.02), tokenTypeIds], { axis: { i: 0 } });
  const seqLen = g.op('Shape', [inputIds], { start: { i: 1 }, end: { i: 2 } });
  const positionTable = g.randomWeight('text_model.embeddings.position_embeddings.weight', [maxPositionEmbeddings, width], 0.02);
  const positionEmbeds = g.op('Slice', [positionTable, g.int64([0]), seqLen, g.int64([0])]);
  const summed = g.op('Add', [g.op('Add', [wordEmbeds, typeEmbeds]), positionEmbeds]);
  let hidden = addLayerNorm(g, 'text_model.embeddings.LayerNorm', summed, width, shape.layerNormEps);

  const keep = g.op('Unsqueeze', [g.op('Cast', [attentionMask], { to: { i: ONNX_BOOL } }), g.int64([1, 2])]);
  for (let layer = 0; layer < depth; layer++) {
    hidden = addClipEncoderLayer(g, `text_model.encoder.layer.${layer}`, hidden, {
      shape: shape.text,
      layerNormEps: shape.layerNormEps,
      attendMask: keep,
      activation: 'gelu',
      postNorm: true,
    });
  }
  const pooled = g.op('Gather', [hidden, g.int64([0], [])], { axis: { i: 1 } });
  const projection = g.randomWeight('text_projection.weight', [width, shape.projectionDim], width ** -0.5);
  g.op('MatMul', [pooled, projection], {}, 'text_embeds');
  g.output('text_embeds', 'float32', ['batch_size', shape.projectionDim]);
  return g.build();
}
