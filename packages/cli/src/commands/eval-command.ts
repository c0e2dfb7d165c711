import { readFile } from 'node:fs/promises';
import { loadEnvSettings } from '@vecmill/shared/config';
import { InputError, UsageError } from '@vecmill/shared/errors';
import { parseCommandLine } from '@vecmill/shared/parse-command-line';
import { openPublishedOutput } from '@vecmill/retrieval/output-reader';
import { QueryEmbedder } from '@vecmill/retrieval/query-embedder';
import { DEFAULT_PROMPT_TEMPLATE, evaluateOutput, type AtK, type OutputEval } from '@vecmill/retrieval/recall-eval';

/** Usage of `vecmill eval`, for the command table. */
export const help = `vecmill eval OUTPUT [--labels FILE [--template "${DEFAULT_PROMPT_TEMPLATE}"]] [--json]
  Pairs: image→text and text→image recall@1/5/10 (Flickr30k/COCO protocol; rows with identical
  images count as one image with several captions).
  --labels     one class name per line: zero-shot accuracy instead, each row's caption being its class
  --template   prompt around each label, {} marks the label (default "${DEFAULT_PROMPT_TEMPLATE}")
  --model      the run's model, when the location in its manifest does not resolve from here
  --json       print the result as JSON`;

/** `vecmill eval OUTPUT`. */
export async function evalCommand(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(
    argv,
    { labels: { type: 'string' }, template: { type: 'string' }, model: { type: 'string' }, json: { type: 'boolean' } },
    [{ name: 'OUTPUT', what: 'the published output to evaluate (a folder or s3://bucket/prefix/)' }],
  );
  const outputArg = positionals[0] as string;
  if (values.template !== undefined && values.labels === undefined) throw new UsageError('--template only applies with --labels FILE', { flag: '--template' });
  const env = loadEnvSettings();
  const output = await openPublishedOutput(outputArg, env.s3);
  let result: OutputEval;
  if (values.labels === undefined) {
    result = await evaluateOutput(output);
  } else {
    const file = values.labels;
    const text = await readFile(file, 'utf8').catch((err: unknown) => {
      throw new InputError(`cannot read the labels file ${file}: ${(err as Error).message}`, { file }, { cause: err });
    });
    const labels = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
    const embedder = await QueryEmbedder.open(output.manifest, ['text'], { ...(values.model === undefined ? {} : { model: values.model }), cacheDir: env.cacheDir, s3: env.s3 });
    try {
      result = await evaluateOutput(output, { labels, ...(values.template === undefined ? {} : { template: values.template }), embedder });
    } finally {
      await embedder.close();
    }
  }
  process.stdout.write(values.json === true ? `${JSON.stringify(result, null, 2)}\n` : `${describe(result)}\n`);
  return 0;
}

function describe(r: OutputEval): string {
  const at = (x: AtK): string => Object.entries(x).map(([k, v]) => `R@${k} ${(100 * v).toFixed(2)}`).join('  ');
  if (r.kind === 'pairs') {
    return `${r.rows} pairs, ${r.recall.images} distinct images\nimage→text  ${at(r.recall.imageToText)}\ntext→image  ${at(r.recall.textToImage)}`;
  }
  const z = r.zeroShot;
  return `zero-shot over ${z.evaluated} images (${z.skipped} whose caption is not a label skipped)\naccuracy  ${Object.entries(z.accuracy).map(([k, v]) => `top-${k} ${(100 * v).toFixed(2)}`).join('  ')}`;
}
