import { describeError, VecmillError } from '@vecmill/shared/errors';
import { inspectCommand } from './commands/inspect-command.js';
import { makeModelCommand } from './commands/make-model-command.js';
import { modelsCommand } from './commands/models-command.js';
import { runCommand } from './commands/run-command.js';

/** The command table: one entry per `vecmill` verb. */
const commands: Readonly<Record<string, { run: (argv: readonly string[]) => Promise<number>; help: string }>> = {
  run: {
    run: runCommand,
    help: `vecmill run --input PATH|s3://... --model DIR --output DIR|s3://...
  Embed a TSV dataset in this process (no Redis, no S3 needed).
  --input, -i      TSV file, folder, glob, s3://bucket/key or s3://bucket/prefix/ (repeatable)
  --model, -m      model folder (Hugging Face CLIP ONNX layout), s3:// folder, or a pulled repo id
  --output, -o     output folder or s3://bucket/prefix/
  --kind           pairs|text|image (default: detected from the first lines)
  --split-size     bytes per split, e.g. 64MiB (default 64MiB)
  --concurrency    splits in flight (default 2)
  --batch-size     rows per model batch (default 32 on CPU, 256 on CUDA)
  --dtype          fp32|fp16|q8: which ONNX files to load (default fp32)
  --device         cpu|cuda|auto (default cpu)
  --threads        onnxruntime intra-op threads (default: all cores)
  --decode-threads image decode + resize threads (default: all cores)
  --out-dtype      float32|float16 for stored embeddings (default float32)
  --formats        extra outputs: npy,tsv (default parquet,npy)
  --no-normalize   keep raw embeddings (default: L2-normalized)
  --no-trim-text   pad text to the full context instead of the batch's longest caption
  --fast-decode    JPEG shrink-on-load before the exact resize (faster, not bit-exact)
  --max-pixels     refuse images declaring more pixels (default 50000000)
  --max-line-bytes lines longer than this become error rows (default 64MiB)
  --progress       bar|json (default: bar on a terminal)
  --run-id         name the run (default: a time-based id)
  --reuse OUTPUT   copy embeddings of unchanged rows (same content hash) from a previous output`,
  },
  'make-model': {
    run: makeModelCommand,
    help: `vecmill make-model --preset tiny|vit-b-32 --out DIR [--seed N] [--tokenizer tokenizer.json]
  Write a CLIP-shaped ONNX model folder with seeded random weights (fp32, fp16 and q8 graphs).`,
  },
  inspect: {
    run: inspectCommand,
    help: `vecmill inspect OUTPUT [--json]
  Print the summary of a published output's manifest.json.`,
  },
  models: {
    run: modelsCommand,
    help: `vecmill models pull REPO_ID [--revision R] [--dtype fp32|fp16|q8]
  Download a CLIP ONNX folder from the Hugging Face hub (HF_ENDPOINT, HF_TOKEN) into the cache.`,
  },
};

function usage(): string {
  return `vecmill: CLIP embeddings for very large image-text TSV datasets

usage: vecmill <command> [flags]

${Object.values(commands)
  .map((c) => c.help)
  .join('\n\n')}
`;
}

/** Parses the verb, runs it, and turns any error into one line and a non-zero exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [verb, ...rest] = argv;
  if (verb === undefined || verb === '--help' || verb === '-h' || verb === 'help') {
    process.stdout.write(usage());
    return verb === undefined ? 2 : 0;
  }
  const command = commands[verb];
  if (command === undefined) {
    process.stderr.write(`vecmill: unknown command ${JSON.stringify(verb)}; run \`vecmill --help\`\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${command.help}\n`);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    process.stderr.write(`\nvecmill ${verb}: ${describeError(err)}${err instanceof VecmillError ? ` [${err.code}]` : ''}\n`);
    if (!(err instanceof VecmillError) && err instanceof Error && err.stack !== undefined) process.stderr.write(`${err.stack}\n`);
    return 1;
  }
}
