import { loadMakeModelConfig } from '@vecmill/shared/config';
import { makeModel } from '@vecmill/shared/modelgen/make-model';


/** Usage text for `vecmill --help`. */
export const help = `vecmill make-model [--family clip|chinese_clip|siglip] --preset PRESET --out DIR [--seed N] [--tokenizer tokenizer.json]
  Write a model folder of the family (Hugging Face ONNX layout) with seeded random weights (fp32, fp16 and q8 graphs).
  --preset tiny for every family; real size: vit-b-32, wide-text and host-bench (clip), vit-b-16 (chinese_clip), base-patch16-224 (siglip)`;

/** `vecmill make-model`: a model folder of a family (CLIP, Chinese-CLIP, SigLIP) with seeded random weights. */
export async function makeModelCommand(argv: readonly string[]): Promise<number> {
  const config = loadMakeModelConfig(argv);
  const result = await makeModel({
    family: config.family,
    preset: config.preset,
    outDir: config.out,
    seed: config.seed,
    ...(config.tokenizer !== undefined ? { tokenizerPath: config.tokenizer } : {}),
  });
  process.stdout.write(
    `wrote ${config.family} ${config.preset} model to ${result.outDir}: ${result.files.length} files, text ${(result.textParams / 1e6).toFixed(1)}M and vision ${(result.visionParams / 1e6).toFixed(1)}M parameters\n`,
  );
  return 0;
}
