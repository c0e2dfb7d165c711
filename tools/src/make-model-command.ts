import { nonNegativeInt, oneOf, required } from '@vecmill/shared/config';
import { MODEL_FAMILIES, type ModelFamily } from '@vecmill/shared/model/model-family';
import { parseCommandLine } from '@vecmill/shared/parse-command-line';
import { FAMILY_PRESETS, type ModelPreset } from './modelgen/model-presets.js';
import { makeModel } from './modelgen/make-model.js';

/** `vecmill make-model` flags. */
export interface MakeModelConfig {
  readonly family: ModelFamily;
  readonly preset: ModelPreset;
  readonly out: string;
  readonly seed: number;
  readonly tokenizer: string | undefined;
}

/** Parses `vecmill make-model` flags. */
export function loadMakeModelConfig(argv: readonly string[]): MakeModelConfig {
  const v = parseCommandLine(argv, { family: { type: 'string' }, preset: { type: 'string' }, out: { type: 'string' }, seed: { type: 'string' }, tokenizer: { type: 'string' } }).values;
  const family = v.family === undefined ? 'clip' : oneOf(v.family, MODEL_FAMILIES, '--family');
  return {
    family,
    preset: v.preset === undefined ? 'tiny' : oneOf(v.preset, Object.keys(FAMILY_PRESETS[family]) as ModelPreset[], '--preset'),
    out: required(v.out, '--out', 'the folder to write the model into'),
    seed: v.seed === undefined ? 42 : nonNegativeInt(v.seed, '--seed'),
    tokenizer: v.tokenizer,
  };
}

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
