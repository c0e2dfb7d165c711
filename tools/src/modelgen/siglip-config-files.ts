import type { ClipTowerShape } from './model-presets.js';
import type { FamilyConfigFilesOptions } from './chinese-clip-config-files.js';
import { SIGLIP_EOS_TOKEN, SIGLIP_UNK_TOKEN } from './small-unigram-tokenizer.js';
import { towerSizes, visionGeometry } from './tower-config.js';

/**
 * config.json, preprocessor_config.json and tokenizer_config.json as SigLIP exports ship them
 * (SiglipConfig with no projections; SiglipImageProcessor resizing to 224x224-style exact size
 * with mean and std 0.5 and no crop; SiglipTokenizer padding with `</s>` to `model_max_length`
 * 64), keyed by file name.
 */
export function siglipConfigFiles(options: FamilyConfigFilesOptions): Record<string, unknown> {
  const { preset, seed, shape, tokenizer } = options;
  const tower = (t: ClipTowerShape) => ({
    ...towerSizes(t),
    hidden_act: 'gelu_pytorch_tanh',
    layer_norm_eps: shape.layerNormEps,
  });
  const imageSize = shape.vision.imageSize;
  const eos = tokenizer.ids.get(SIGLIP_EOS_TOKEN);
  return {
    'config.json': {
      architectures: ['SiglipModel'],
      model_type: 'siglip',
      text_config: {
        model_type: 'siglip_text_model',
        ...tower(shape.text),
        max_position_embeddings: shape.text.maxPositionEmbeddings,
        vocab_size: tokenizer.vocabSize,
        pad_token_id: eos,
        eos_token_id: eos,
      },
      vision_config: {
        model_type: 'siglip_vision_model',
        ...tower(shape.vision),
        ...visionGeometry(shape.vision),
      },
      torch_dtype: 'float32',
      vecmill: { preset, seed },
    },
    'preprocessor_config.json': {
      do_normalize: true,
      do_rescale: true,
      do_resize: true,
      image_mean: [0.5, 0.5, 0.5],
      image_std: [0.5, 0.5, 0.5],
      image_processor_type: 'SiglipImageProcessor',
      processor_class: 'SiglipProcessor',
      resample: 3,
      rescale_factor: 0.00392156862745098,
      size: { height: imageSize, width: imageSize },
    },
    'tokenizer_config.json': {
      do_lower_case: true,
      eos_token: SIGLIP_EOS_TOKEN,
      model_input_names: ['input_ids'],
      model_max_length: shape.text.maxPositionEmbeddings,
      pad_token: SIGLIP_EOS_TOKEN,
      processor_class: 'SiglipProcessor',
      tokenizer_class: 'SiglipTokenizer',
      unk_token: SIGLIP_UNK_TOKEN,
    },
  };
}
