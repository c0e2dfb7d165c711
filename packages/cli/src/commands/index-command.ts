import { loadEnvSettings } from '@vecmill/shared/config';
import { parseCommandLine } from '@vecmill/shared/parse-command-line';
import { buildHnswIndex, HNSW_DEFAULTS } from '@vecmill/retrieval/hnsw-index';
import { openPublishedOutput } from '@vecmill/retrieval/output-reader';
import { oneOf, positiveInt } from '@vecmill/shared/config';

/** Usage of `vecmill index`, for the command table. */
export const help = `vecmill index OUTPUT [--modality image|text] [--metric cosine|ip]
  Build an HNSW index (usearch) next to a published output and record it in manifest.json;
  \`vecmill search\` then uses it.
  --modality          embeddings to index (default: image when the output has them, else text)
  --metric            cosine|ip (default cosine)
  --connectivity      graph degree M (default ${HNSW_DEFAULTS.connectivity})
  --expansion-add     efConstruction (default ${HNSW_DEFAULTS.expansionAdd})
  --expansion-search  efSearch (default ${HNSW_DEFAULTS.expansionSearch})`;

/** `vecmill index OUTPUT`. */
export async function indexCommand(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(
    argv,
    {
      modality: { type: 'string' },
      metric: { type: 'string' },
      connectivity: { type: 'string' },
      'expansion-add': { type: 'string' },
      'expansion-search': { type: 'string' },
    },
    [{ name: 'OUTPUT', what: 'the published output to index (a folder or s3://bucket/prefix/)' }],
  );
  const outputArg = positionals[0] as string;
  // Every flag is checked before the output is opened.
  const modality = values.modality === undefined ? undefined : oneOf(values.modality, ['image', 'text'] as const, '--modality');
  const settings = {
    metric: values.metric === undefined ? HNSW_DEFAULTS.metric : oneOf(values.metric, ['cosine', 'ip'] as const, '--metric'),
    connectivity: values.connectivity === undefined ? HNSW_DEFAULTS.connectivity : positiveInt(values.connectivity, '--connectivity'),
    expansionAdd: values['expansion-add'] === undefined ? HNSW_DEFAULTS.expansionAdd : positiveInt(values['expansion-add'], '--expansion-add'),
    expansionSearch: values['expansion-search'] === undefined ? HNSW_DEFAULTS.expansionSearch : positiveInt(values['expansion-search'], '--expansion-search'),
  };
  const output = await openPublishedOutput(outputArg, loadEnvSettings().s3);
  const d = await buildHnswIndex(output, { modality: modality ?? output.modalities[0] ?? 'image', ...settings });
  const recall = d.recallAt10 === null ? '' : `, recall@10 ${d.recallAt10.toFixed(3)} on ${d.recallSample} sampled queries`;
  process.stdout.write(`indexed ${d.rows} ${d.modality} embeddings (${d.metric}, M=${d.connectivity}, efC=${d.expansionAdd}) in ${d.buildMs} ms${recall}: ${d.key}\n`);
  return 0;
}
