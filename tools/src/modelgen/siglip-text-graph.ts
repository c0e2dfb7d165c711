import { addClipEncoderLayer, addLayerNorm, addLinear } from './clip-encoder-layer.js';
import type { ClipTextGraphOptions } from './clip-text-graph.js';
import { OnnxGraphBuilder, type GraphSpec } from './onnx-graph-builder.js';

/**
 * SigLIP's text tower as Hugging Face's SiglipTextModel exports it: `input_ids` int64
 * [batch_size, sequence_length] only (no attention mask: SigLIP was trained on captions padded to
 * 64 tokens, attending to the padding) to `pooler_output` float32 [batch_size, hidden_size].
 *
 * Token + position embeddings, pre-LayerNorm layers with tanh GELU and no mask of any kind, a
 * final LayerNorm, then the state at the LAST position goes through the `head` linear layer. Since
 * the last position is padding for every caption shorter than the context, the padded length
 * changes every embedding: padding must never be trimmed for this family.
 */
export function buildSiglipTextGraph(options: ClipTextGraphOptions): GraphSpec {
  const { shape, vocabSize, seed } = options;
  const { hiddenSize: width, numHiddenLayers: depth, maxPositionEmbeddings } = shape.text;
  const g = new OnnxGraphBuilder('siglip_text_model', seed);
  const inputIds = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);

  const tokenEmbeds = g.op('Gather', [g.randomWeight('text_model.embeddings.token_embedding.weight', [vocabSize, width], 0.02), inputIds], { axis: { i: 0 } });
  const seqLen = g.op('Shape', [inputIds], { start: { i: 1 }, end: { i: 2 } });
  const positionTable = g.randomWeight('text_model.embeddings.position_embedding.weight', [maxPositionEmbeddings, width], 0.02);
  let hidden = g.op('Add', [tokenEmbeds, g.op('Slice', [positionTable, g.int64([0]), seqLen, g.int64([0])])]);
  for (let layer = 0; layer < depth; layer++) {
    hidden = addClipEncoderLayer(g, `text_model.encoder.layers.${layer}`, hidden, { shape: shape.text, layerNormEps: shape.layerNormEps, activation: 'gelu_tanh' });
  }
  const normed = addLayerNorm(g, 'text_model.final_layer_norm', hidden, width, shape.layerNormEps);
  const last = g.op('Gather', [normed, g.int64([-1], [])], { axis: { i: 1 } });
  const head = addLinear(g, 'text_model.head', last, width, width, { std: width ** -0.5, bias: true });
  g.op('Identity', [head], {}, 'pooler_output');
  g.output('pooler_output', 'float32', ['batch_size', width]);
  return g.build();
}
