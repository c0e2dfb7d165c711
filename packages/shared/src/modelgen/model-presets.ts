import type { ModelPreset } from './make-model.js';

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

/**
 * The generated model shapes. `tiny` exists so tests and demos run in milliseconds while still
 * exercising every structural feature (several heads, several layers, a class token, patches);
 * `vit-b-32` has the exact tensor shapes of openai/clip-vit-base-patch32 so benchmarks measure
 * real-size compute and memory; `host-bench` takes CLIP's real 224-pixel input and 77-token context
 * but costs next to nothing, so a benchmark measures the host side alone (what a GPU node sees).
 */
export const MODEL_PRESETS: Readonly<Record<ModelPreset, ClipPresetShape>> = {
  tiny: {
    projectionDim: 32,
    layerNormEps: 1e-5,
    text: { hiddenSize: 32, intermediateSize: 128, numAttentionHeads: 2, numHiddenLayers: 2, maxPositionEmbeddings: 77 },
    vision: { hiddenSize: 64, intermediateSize: 256, numAttentionHeads: 4, numHiddenLayers: 2, imageSize: 32, patchSize: 8 },
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
