import type { ClipTokenizerInfo } from './clip-tokenizer-info.js';
import type { ModelPreset } from './make-model.js';
import type { ClipPresetShape, ClipTowerShape } from './model-presets.js';
import { CLIP_END_TOKEN, CLIP_START_TOKEN } from './small-tokenizer.js';
import { towerSizes, visionGeometry } from './tower-config.js';

/** Inputs of the JSON files that accompany the ONNX graphs. */
export interface ClipConfigFilesOptions {
  readonly preset: ModelPreset;
  readonly seed: number;
  readonly shape: ClipPresetShape;
  readonly tokenizer: ClipTokenizerInfo;
}

/**
 * config.json, preprocessor_config.json and tokenizer_config.json in the form Hugging Face's
 * CLIP exports ship them, keyed by file name. Loaders written against real model folders
 * (transformers.js, optimum, vecmill's own) read these, so the generated folder must not need
 * special cases. The `vecmill` field records how the weights were made; other tools ignore it.
 */
export function clipConfigFiles(options: ClipConfigFilesOptions): Record<string, unknown> {
  const { preset, seed, shape, tokenizer } = options;
  const tower = (t: ClipTowerShape) => ({
    ...towerSizes(t),
    hidden_act: 'quick_gelu',
    layer_norm_eps: shape.layerNormEps,
    projection_dim: shape.projectionDim,
  });
  const imageSize = shape.vision.imageSize;
  return {
    'config.json': {
      architectures: ['CLIPModel'],
      model_type: 'clip',
      projection_dim: shape.projectionDim,
      logit_scale_init_value: 2.6592,
      initializer_factor: 1.0,
      text_config: {
        model_type: 'clip_text_model',
        ...tower(shape.text),
        max_position_embeddings: shape.text.maxPositionEmbeddings,
        vocab_size: tokenizer.vocabSize,
        bos_token_id: tokenizer.bosTokenId,
        eos_token_id: tokenizer.eosTokenId,
        pad_token_id: tokenizer.padTokenId,
      },
      vision_config: {
        model_type: 'clip_vision_model',
        ...tower(shape.vision),
        ...visionGeometry(shape.vision),
      },
      torch_dtype: 'float32',
      vecmill: { preset, seed },
    },
    'preprocessor_config.json': {
      do_resize: true,
      size: { shortest_edge: imageSize },
      resample: 3,
      do_center_crop: true,
      crop_size: { height: imageSize, width: imageSize },
      do_rescale: true,
      rescale_factor: 0.00392156862745098,
      do_normalize: true,
      image_mean: [0.48145466, 0.4578275, 0.40821073],
      image_std: [0.26862954, 0.26130258, 0.27577711],
      do_convert_rgb: true,
      image_processor_type: 'CLIPImageProcessor',
    },
    'tokenizer_config.json': {
      add_prefix_space: false,
      bos_token: CLIP_START_TOKEN,
      clean_up_tokenization_spaces: true,
      do_lower_case: true,
      eos_token: CLIP_END_TOKEN,
      errors: 'replace',
      model_max_length: shape.text.maxPositionEmbeddings,
      pad_token: CLIP_END_TOKEN,
      tokenizer_class: 'CLIPTokenizer',
      unk_token: CLIP_END_TOKEN,
    },
  };
}
