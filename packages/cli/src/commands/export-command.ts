import { loadEnvSettings } from '@vecmill/shared/config';
import { UsageError } from '@vecmill/shared/errors';
import { parseCommandLine } from '@vecmill/shared/parse-command-line';
import { exportToLance } from '@vecmill/shared/retrieval/lancedb-export';
import { openPublishedOutput } from '@vecmill/shared/retrieval/output-reader';

/** Usage of `vecmill export`, for the command table. */
export const help = `vecmill export lancedb OUTPUT --db PATH|s3://... --table NAME [--index]
  Load a published output (ids, captions, source offsets, embeddings) into a LanceDB table.
  Re-exporting replaces rows by id; one table holds one dataset.
  --db       LanceDB database folder or s3://bucket/prefix (S3 settings as for runs)
  --table    table name
  --index    also build a vector index on each embedding column (IVF-Flat, IVF-PQ from 100k rows)`;

/** `vecmill export lancedb OUTPUT --db ... --table ...`. */
export async function exportCommand(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(argv, { db: { type: 'string' }, table: { type: 'string' }, index: { type: 'boolean' } }, [
    { name: 'TARGET', what: 'where to export, lancedb' },
    { name: 'OUTPUT', what: 'the published output to load (a folder or s3://bucket/prefix/)' },
  ]);
  const [target, outputArg] = positionals as [string, string];
  if (target !== 'lancedb') throw new UsageError(`TARGET ${JSON.stringify(target)}: export knows one target, lancedb`, { argument: 'TARGET' });
  if (values.db === undefined) throw new UsageError('--db is required: a LanceDB folder or s3://bucket/prefix', { flag: '--db' });
  if (values.table === undefined) throw new UsageError('--table is required: the LanceDB table to write', { flag: '--table' });
  const env = loadEnvSettings();
  const output = await openPublishedOutput(outputArg, env.s3);
  const result = await exportToLance(output, { db: values.db, table: values.table, index: values.index === true, s3: env.s3 });
  const indexed = result.indexed.length > 0 ? `; indexed ${result.indexed.join(', ')}` : '';
  process.stdout.write(`exported ${result.rows} rows of run ${output.manifest.runId} into ${values.db} table ${result.table} (${result.tableRows} rows now)${indexed}\n`);
  return 0;
}
