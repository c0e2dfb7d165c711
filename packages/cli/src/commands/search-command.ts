import { readFile } from 'node:fs/promises';
import { loadEnvSettings } from '@vecmill/shared/config';
import { InputError, UsageError } from '@vecmill/shared/errors';
import { parseCommandLine } from '@vecmill/shared/parse-command-line';
import { openPublishedOutput } from '@vecmill/retrieval/output-reader';
import { QueryEmbedder } from '@vecmill/retrieval/query-embedder';
import { searchOutput } from '@vecmill/retrieval/search-output';
import { oneOf, positiveInt } from '@vecmill/shared/config';

/** Usage of `vecmill search`, for the command table. */
export const help = `vecmill search OUTPUT --text "a cat" | --image FILE [-k 10]
  Embed a query with the run's own model and print the top-k rows (id, score, caption).
  Uses the output's HNSW index when \`vecmill index\` built one, exact search otherwise.
  --text       text query
  --image      image file query
  -k           rows to print (default 10)
  --modality   image|text: embeddings to search (default: image when the output has them,
               so a text query finds pictures; use text to search captions)
  --exact      scan every row even when an index exists
  --model      the run's model, when the location in its manifest does not resolve from here
  --json       one JSON object per hit`;

/** `vecmill search OUTPUT --text ... | --image ...`. */
export async function searchCommand(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(
    argv,
    {
      text: { type: 'string' },
      image: { type: 'string' },
      k: { type: 'string', short: 'k' },
      modality: { type: 'string' },
      exact: { type: 'boolean' },
      model: { type: 'string' },
      json: { type: 'boolean' },
    },
    [{ name: 'OUTPUT', what: 'the published output to search (a folder or s3://bucket/prefix/)' }],
  );
  const outputArg = positionals[0] as string;
  if ((values.text === undefined) === (values.image === undefined)) throw new UsageError('search needs exactly one query: --text "a cat" or --image FILE', { flag: '--text' });
  const k = values.k === undefined ? 10 : positiveInt(values.k, '-k');
  const modality = values.modality === undefined ? undefined : oneOf(values.modality, ['image', 'text'] as const, '--modality');
  const env = loadEnvSettings();
  const output = await openPublishedOutput(outputArg, env.s3);
  const tower = values.text !== undefined ? 'text' : 'image';
  const embedder = await QueryEmbedder.open(output.manifest, [tower], { ...(values.model === undefined ? {} : { model: values.model }), cacheDir: env.cacheDir, s3: env.s3 });
  let query: Float32Array;
  try {
    if (values.text !== undefined) {
      query = await embedder.embedTexts([values.text]);
    } else {
      const file = values.image!;
      const bytes = await readFile(file).catch((err: unknown) => {
        throw new InputError(`cannot read query image ${file}: ${(err as Error).message}`, { file }, { cause: err });
      });
      query = await embedder.embedImage(bytes, file);
    }
  } finally {
    await embedder.close();
  }
  const result = await searchOutput(output, { query, k, ...(modality === undefined ? {} : { modality }), exact: values.exact === true });
  if (values.json === true) {
    for (const h of result.hits) {
      process.stdout.write(`${JSON.stringify({ id: Number(h.id), score: h.score, caption: h.caption, source: h.source, offset: h.offset, modality: result.modality, index: result.index ?? null })}\n`);
    }
  } else {
    process.stderr.write(`searched ${result.modality} embeddings ${result.index === undefined ? 'exactly' : `with index ${result.index}`}\n`);
    for (const h of result.hits) process.stdout.write(`${h.id}\t${h.score.toFixed(4)}\t${h.caption ?? ''}\n`);
  }
  return 0;
}
