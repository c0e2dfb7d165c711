import type { ClipTowerShape } from './model-presets.js';

/**
 * The sizes every family's `text_config` / `vision_config` declares for a transformer tower, in
 * the order Hugging Face writes them; each family's config file adds its own activation, norm and
 * head keys after these.
 */
export function towerSizes(t: ClipTowerShape): Record<string, number> {
  return {
    hidden_size: t.hiddenSize,
    intermediate_size: t.intermediateSize,
    num_attention_heads: t.numAttentionHeads,
    num_hidden_layers: t.numHiddenLayers,
  };
}

/** A vision tower's input geometry as every family's `vision_config` declares it (RGB input). */
export function visionGeometry(v: { readonly imageSize: number; readonly patchSize: number }): Record<string, number> {
  return { image_size: v.imageSize, patch_size: v.patchSize, num_channels: 3 };
}
