import type { ModelFamily } from '@vecmill/shared/model/model-family';

/** Shape of one transformer tower, in Hugging Face CLIPConfig terms. */
export interface ClipTowerShape {
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numAttentionHeads: number;
  readonly numHiddenLayers: number;
}

/** The text tower adds its context length; vocabulary and special ids come from the tokenizer. */
export interface ClipTextPresetShape extends ClipTowerShape {
  readonly maxPositionEmbeddings: number;
}

/** The vision tower adds its square input size and patch size. */
export interface ClipVisionShape extends ClipTowerShape {
  readonly imageSize: number;
  readonly patchSize: number;
}

/** Everything about a model's shape that does not depend on the tokenizer. */
export interface ClipPresetShape {
  readonly projectionDim: number;
  readonly layerNormEps: number;
  readonly text: ClipTextPresetShape;
  readonly vision: ClipVisionShape;
}

/** Model shapes: `tiny` for tests and demos (every family), and one real-size shape per family. */
export type ModelPreset = 'tiny' | 'wide-text' | 'host-bench' | 'vit-b-32' | 'vit-b-16' | 'base-patch16-224';

/**
 * The generated CLIP model shapes. `tiny` exists so tests and demos run in milliseconds while still
 * exercising every structural feature (several heads, several layers, a class token, patches);
 * `vit-b-32` has the exact tensor shapes of openai/clip-vit-base-patch32 so benchmarks measure
 * real-size compute and memory; `wide-text` has ViT-L/14's 768-dim output behind towers with no
 * transformer layers, so a run over millions of captions measures vecmill's own memory and
 * writers rather than the model;
 * `host-bench` takes CLIP's real 224-pixel input and 77-token context but costs next to nothing,
 * so a benchmark measures the host side alone (what a GPU node sees).
 */
export const MODEL_PRESETS: Readonly<Partial<Record<ModelPreset, ClipPresetShape>>> = {
  tiny: {
    projectionDim: 32,
    layerNormEps: 1e-5,
    text: { hiddenSize: 32, intermediateSize: 128, numAttentionHeads: 2, numHiddenLayers: 2, maxPositionEmbeddings: 77 },
    vision: { hiddenSize: 64, intermediateSize: 256, numAttentionHeads: 4, numHiddenLayers: 2, imageSize: 32, patchSize: 8 },
  },
  'wide-text': {
    projectionDim: 768,
    layerNormEps: 1e-5,
    text: { hiddenSize: 16, intermediateSize: 64, numAttentionHeads: 2, numHiddenLayers: 0, maxPositionEmbeddings: 77 },
    vision: { hiddenSize: 16, intermediateSize: 64, numAttentionHeads: 2, numHiddenLayers: 0, imageSize: 32, patchSize: 16 },
  },
  'vit-b-32': {
    projectionDim: 512,
    layerNormEps: 1e-5,
    text: { hiddenSize: 512, intermediateSize: 2048, numAttentionHeads: 8, numHiddenLayers: 12, maxPositionEmbeddings: 77 },
    vision: { hiddenSize: 768, intermediateSize: 3072, numAttentionHeads: 12, numHiddenLayers: 12, imageSize: 224, patchSize: 32 },
  },
  'host-bench': {
    projectionDim: 16,
    layerNormEps: 1e-5,
    text: { hiddenSize: 8, intermediateSize: 16, numAttentionHeads: 2, numHiddenLayers: 1, maxPositionEmbeddings: 77 },
    vision: { hiddenSize: 8, intermediateSize: 16, numAttentionHeads: 2, numHiddenLayers: 1, imageSize: 224, patchSize: 32 },
  },
};

/**
 * Chinese-CLIP shapes. `vit-b-16` is OFA-Sys/chinese-clip-vit-base-patch16: a Chinese RoBERTa-wwm
 * base text encoder (BERT layout, 512 positions) and a ViT-B/16 image tower, projected to 512.
 */
export const CHINESE_CLIP_PRESETS: Readonly<Partial<Record<ModelPreset, ClipPresetShape>>> = {
  tiny: {
    projectionDim: 32,
    layerNormEps: 1e-12,
    text: { hiddenSize: 32, intermediateSize: 128, numAttentionHeads: 2, numHiddenLayers: 2, maxPositionEmbeddings: 64 },
    vision: { hiddenSize: 64, intermediateSize: 256, numAttentionHeads: 4, numHiddenLayers: 2, imageSize: 32, patchSize: 8 },
  },
  'vit-b-16': {
    projectionDim: 512,
    layerNormEps: 1e-12,
    text: { hiddenSize: 768, intermediateSize: 3072, numAttentionHeads: 12, numHiddenLayers: 12, maxPositionEmbeddings: 512 },
    vision: { hiddenSize: 768, intermediateSize: 3072, numAttentionHeads: 12, numHiddenLayers: 12, imageSize: 224, patchSize: 16 },
  },
};

/**
 * SigLIP shapes. SigLIP has no projections: both towers end at their hidden size, so the text and
 * vision widths are equal and `projectionDim` is that width. `base-patch16-224` is
 * google/siglip-base-patch16-224 (64 text positions, 224px images in 16px patches).
 */
export const SIGLIP_PRESETS: Readonly<Partial<Record<ModelPreset, ClipPresetShape>>> = {
  tiny: {
    projectionDim: 32,
    layerNormEps: 1e-6,
    text: { hiddenSize: 32, intermediateSize: 128, numAttentionHeads: 2, numHiddenLayers: 2, maxPositionEmbeddings: 64 },
    vision: { hiddenSize: 32, intermediateSize: 128, numAttentionHeads: 2, numHiddenLayers: 2, imageSize: 32, patchSize: 8 },
  },
  'base-patch16-224': {
    projectionDim: 768,
    layerNormEps: 1e-6,
    text: { hiddenSize: 768, intermediateSize: 3072, numAttentionHeads: 12, numHiddenLayers: 12, maxPositionEmbeddings: 64 },
    vision: { hiddenSize: 768, intermediateSize: 3072, numAttentionHeads: 12, numHiddenLayers: 12, imageSize: 224, patchSize: 16 },
  },
};

/** The presets of each family. */
export const FAMILY_PRESETS: Readonly<Record<ModelFamily, Readonly<Partial<Record<ModelPreset, ClipPresetShape>>>>> = {
  clip: MODEL_PRESETS,
  chinese_clip: CHINESE_CLIP_PRESETS,
  siglip: SIGLIP_PRESETS,
};
