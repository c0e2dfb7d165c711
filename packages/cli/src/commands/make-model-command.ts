import { loadMakeModelConfig } from '@vecmill/shared/config';
import { makeModel } from '@vecmill/shared/modelgen/make-model';


/** Usage text for `vecmill --help`. */
export const help = `vecmill make-model --preset tiny|vit-b-32|host-bench --out DIR [--seed N] [--tokenizer tokenizer.json]
  Write a CLIP-shaped ONNX model folder with seeded random weights (fp32, fp16 and q8 graphs).`;

/** `vecmill make-model`: a CLIP-shaped model folder with seeded random weights. */
export async function makeModelCommand(argv: readonly string[]): Promise<number> {
  const config = loadMakeModelConfig(argv);
  const result = await makeModel({
    preset: config.preset,
    outDir: config.out,
    seed: config.seed,
    ...(config.tokenizer !== undefined ? { tokenizerPath: config.tokenizer } : {}),
  });
  process.stdout.write(
    `wrote ${config.preset} model to ${result.outDir}: ${result.files.length} files, text ${(result.textParams / 1e6).toFixed(1)}M and vision ${(result.visionParams / 1e6).toFixed(1)}M parameters\n`,
  );
  return 0;
}
