import { loadEnvSettings, oneOf, positiveInt } from '@vecmill/shared/config';
import { UsageError } from '@vecmill/shared/errors';
import { parseCommandLine } from '@vecmill/shared/parse-command-line';
import { exportToLance } from '@vecmill/retrieval/lancedb-export';
import { openPublishedOutput } from '@vecmill/retrieval/output-reader';
import { exportToPgvector, pgvectorDefaults } from '@vecmill/retrieval/pgvector-export';

/** Usage of `vecmill export`, for the command table. */
export const help = `vecmill export lancedb OUTPUT --db PATH|s3://... --table NAME [--index]
  Load a published output (ids, captions, source offsets, embeddings) into a LanceDB table.
  Re-exporting replaces rows by id; one table holds one dataset.
  --db       LanceDB database folder or s3://bucket/prefix (S3 settings as for runs)
  --table    table name
  --index    also build a vector index on each embedding column (IVF-Flat, IVF-PQ from 100k rows)

vecmill export pgvector OUTPUT --url postgres://... --table NAME [--modality image|text|both]
    [--index hnsw|ivfflat|none] [--batch-rows N] [--sync] [--m N --ef-construction N]
  Load a published output into PostgreSQL with pgvector: id, caption, source, byte_offset and
  vector(D) columns (halfvec(D) for float16 outputs). Upserts by row id, one transaction per batch:
  re-running finishes a killed load and loading twice changes nothing. PG* variables fill what the
  URL leaves out; the password is never printed.
  --url              postgres://USER:PASSWORD@HOST:PORT/DB[?sslmode=require]
  --table            NAME or SCHEMA.NAME (created when missing, checked when present)
  --modality         embedding columns to load; both needs a pairs output (default: every one the output has)
  --index            vector index built after the load, cosine (default ${pgvectorDefaults.index})
  --batch-rows       rows per transaction (default ${pgvectorDefaults.batchRows})
  --sync             delete the table's rows whose ids are not in the output
  --m, --ef-construction   HNSW build parameters (default ${pgvectorDefaults.m}, ${pgvectorDefaults.efConstruction})`;

/** `vecmill export lancedb OUTPUT --db ... --table ...` or `vecmill export pgvector OUTPUT --url ... --table ...`. */
export async function exportCommand(argv: readonly string[]): Promise<number> {
  if (argv[0] === 'pgvector') return exportPgvectorCommand(argv.slice(1));
  const { values, positionals } = parseCommandLine(argv, { db: { type: 'string' }, table: { type: 'string' }, index: { type: 'boolean' } }, [
    { name: 'TARGET', what: 'where to export: lancedb or pgvector' },
    { name: 'OUTPUT', what: 'the published output to load (a folder or s3://bucket/prefix/)' },
  ]);
  const [target, outputArg] = positionals as [string, string];
  if (target !== 'lancedb') throw new UsageError(`TARGET ${JSON.stringify(target)}: export knows two targets, lancedb and pgvector`, { argument: 'TARGET' });
  if (values.db === undefined) throw new UsageError('--db is required: a LanceDB folder or s3://bucket/prefix', { flag: '--db' });
  if (values.table === undefined) throw new UsageError('--table is required: the LanceDB table to write', { flag: '--table' });
  const env = loadEnvSettings();
  const output = await openPublishedOutput(outputArg, env.s3);
  const result = await exportToLance(output, { db: values.db, table: values.table, index: values.index === true, s3: env.s3 });
  const indexed = result.indexed.length > 0 ? `; indexed ${result.indexed.join(', ')}` : '';
  process.stdout.write(`exported ${result.rows} rows of run ${output.manifest.runId} into ${values.db} table ${result.table} (${result.tableRows} rows now)${indexed}\n`);
  return 0;
}

/** `vecmill export pgvector OUTPUT --url ... --table ...`: one progress line per batch on stderr, the summary on stdout. */
async function exportPgvectorCommand(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(
    argv,
    {
      url: { type: 'string' },
      table: { type: 'string' },
      modality: { type: 'string' },
      index: { type: 'string' },
      'batch-rows': { type: 'string' },
      sync: { type: 'boolean' },
      m: { type: 'string' },
      'ef-construction': { type: 'string' },
    },
    [{ name: 'OUTPUT', what: 'the published output to load (a folder or s3://bucket/prefix/)' }],
  );
  const outputArg = positionals[0] as string;
  if (values.url === undefined) throw new UsageError('--url is required: postgres://USER:PASSWORD@HOST:PORT/DATABASE (PGPASSWORD and the other PG* variables fill what it leaves out)', { flag: '--url' });
  if (values.table === undefined) throw new UsageError('--table is required: the PostgreSQL table to load (NAME or SCHEMA.NAME)', { flag: '--table' });
  const modality = values.modality === undefined ? undefined : oneOf(values.modality, ['image', 'text', 'both'] as const, '--modality');
  const index = values.index === undefined ? undefined : oneOf(values.index, ['hnsw', 'ivfflat', 'none'] as const, '--index');
  const env = loadEnvSettings();
  const output = await openPublishedOutput(outputArg, env.s3);
  const result = await exportToPgvector(output, {
    url: values.url,
    table: values.table,
    ...(modality === undefined ? {} : { modalities: modality === 'both' ? ['image', 'text'] : [modality] }),
    ...(index !== undefined ? { index } : {}),
    ...(values['batch-rows'] !== undefined ? { batchRows: positiveInt(values['batch-rows'], '--batch-rows') } : {}),
    ...(values.m !== undefined ? { m: positiveInt(values.m, '--m') } : {}),
    ...(values['ef-construction'] !== undefined ? { efConstruction: positiveInt(values['ef-construction'], '--ef-construction') } : {}),
    sync: values.sync === true,
    onBatch: (p) =>
      process.stderr.write(env.isTty ? `\rloaded ${p.loaded}/${p.expected} rows` : `${JSON.stringify({ type: 'pgvector-batch', ...p })}\n`),
  });
  if (env.isTty) process.stderr.write('\n');
  const indexed = result.indexed.length > 0 ? `; ${index ?? pgvectorDefaults.index} index on ${result.indexed.join(', ')}` : '';
  process.stdout.write(
    `loaded run ${output.manifest.runId} into ${result.target} table ${result.table}: ${result.outputRows} rows in the output, ${result.loaded} loaded ` +
      `(${result.written} written, ${result.unchanged} unchanged), ${result.skipped} skipped (failed or without the embedding), ${result.deleted} deleted; ` +
      `${result.tableRows} rows in the table${indexed}; ${result.seconds.toFixed(1)} s (${Math.round(result.loaded / Math.max(result.seconds, 1e-3))} rows/s)\n`,
  );
  return 0;
}
