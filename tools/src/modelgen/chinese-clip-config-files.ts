import type { ModelPreset, ClipPresetShape, ClipTowerShape } from './model-presets.js';
import type { FamilyTokenizerInfo } from './family-tokenizer-info.js';
import { BERT_CLS_TOKEN, BERT_MASK_TOKEN, BERT_PAD_TOKEN, BERT_SEP_TOKEN, BERT_UNK_TOKEN } from './small-wordpiece-tokenizer.js';
import { towerSizes, visionGeometry } from './tower-config.js';

/** Inputs of the JSON files that accompany a Chinese-CLIP folder's ONNX graphs. */
export interface FamilyConfigFilesOptions {
  readonly preset: ModelPreset;
  readonly seed: number;
  readonly shape: ClipPresetShape;
  readonly tokenizer: FamilyTokenizerInfo;
}

/** Chinese-CLIP's context: OFA-Sys trains and ships its models with 52 tokens. */
export const CHINESE_CLIP_CONTEXT = 52;

/**
 * config.json, preprocessor_config.json and tokenizer_config.json as Chinese-CLIP exports ship
 * them (ChineseCLIPConfig with a BERT text config; ChineseCLIPImageProcessor resizing to an exact
 * square with no crop; BertTokenizer with `model_max_length` 52), keyed by file name.
 */
export function chineseClipConfigFiles(options: FamilyConfigFilesOptions): Record<string, unknown> {
  const { preset, seed, shape, tokenizer } = options;
  const tower = (t: ClipTowerShape) => ({
    ...towerSizes(t),
  });
  const imageSize = shape.vision.imageSize;
  return {
    'config.json': {
      architectures: ['ChineseCLIPModel'],
      model_type: 'chinese_clip',
      projection_dim: shape.projectionDim,
      logit_scale_init_value: 2.6592,
      text_config: {
        model_type: 'chinese_clip_text_model',
        ...tower(shape.text),
        hidden_act: 'gelu',
        layer_norm_eps: shape.layerNormEps,
        max_position_embeddings: shape.text.maxPositionEmbeddings,
        type_vocab_size: 2,
        vocab_size: tokenizer.vocabSize,
        pad_token_id: tokenizer.ids.get(BERT_PAD_TOKEN),
      },
      vision_config: {
        model_type: 'chinese_clip_vision_model',
        ...tower(shape.vision),
        hidden_act: 'quick_gelu',
        layer_norm_eps: shape.layerNormEps,
        ...visionGeometry(shape.vision),
        projection_dim: shape.projectionDim,
      },
      torch_dtype: 'float32',
      vecmill: { preset, seed },
    },
    'preprocessor_config.json': {
      crop_size: { height: imageSize, width: imageSize },
      do_center_crop: false,
      do_convert_rgb: true,
      do_normalize: true,
      do_rescale: true,
      do_resize: true,
      image_mean: [0.48145466, 0.4578275, 0.40821073],
      image_std: [0.26862954, 0.26130258, 0.27577711],
      image_processor_type: 'ChineseCLIPImageProcessor',
      processor_class: 'ChineseCLIPProcessor',
      resample: 3,
      rescale_factor: 0.00392156862745098,
      size: { height: imageSize, width: imageSize },
    },
    'tokenizer_config.json': {
      cls_token: BERT_CLS_TOKEN,
      do_basic_tokenize: true,
      do_lower_case: true,
      mask_token: BERT_MASK_TOKEN,
      model_max_length: Math.min(CHINESE_CLIP_CONTEXT, shape.text.maxPositionEmbeddings),
      pad_token: BERT_PAD_TOKEN,
      sep_token: BERT_SEP_TOKEN,
      strip_accents: null,
      tokenize_chinese_chars: true,
      tokenizer_class: 'BertTokenizer',
      unk_token: BERT_UNK_TOKEN,
    },
  };
}
