import { ConfigError } from '@vecmill/shared/errors';

/** Usage text for `vecmill --help`. */
export const help = `vecmill make-model [--family clip|chinese_clip|siglip] --preset PRESET --out DIR [--seed N] [--tokenizer tokenizer.json]
  Write a model folder of the family (Hugging Face ONNX layout) with seeded random weights (fp32, fp16 and q8 graphs).
  --preset tiny for every family; real size: vit-b-32, wide-text and host-bench (clip), vit-b-16 (chinese_clip), base-patch16-224 (siglip)
  Development tooling: runs from a source checkout (tools/), which production images do not carry.`;

/** The generator's command, as tools/ exports it. */
interface DevCommand {
  makeModelCommand(argv: readonly string[]): Promise<number>;
}

/**
 * `vecmill make-model`: the random-weight model generator lives in tools/, development code that
 * production images leave out; the CLI reaches it at run time so it does not depend on it.
 */
export async function makeModelCommand(argv: readonly string[]): Promise<number> {
  const specifier = '@vecmill/tools/make-model-command';
  let tool: DevCommand;
  try {
    tool = (await import(specifier)) as DevCommand;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    throw new ConfigError('vecmill make-model is development tooling that this installation does not carry: run it from a source checkout (npm ci, then npx vecmill make-model …)');
  }
  return tool.makeModelCommand(argv);
}
