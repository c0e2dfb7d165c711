import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { ConfigError, DatabaseError, InputError } from '@vecmill/shared/errors';
import type { Modality } from '@vecmill/shared/formats/embedding-table';
import type { PublishedOutput, RowsBlock } from './output-reader.js';
import { pgFailure, pgTarget, type PgTarget } from './pg-target.js';
import {
  createIndexSql,
  createTableSql,
  deleteAfterSql,
  deleteGapsSql,
  encodeVector,
  expectedColumns,
  hnswDefaults,
  maxRowsPerStatement,
  parsePgTableName,
  PG_COLUMNS,
  upsertSql,
  vectorType,
  type PgIndexKind,
  type PgTableName,
} from './pgvector-sql.js';

/** Where and how `vecmill export pgvector` loads. */
export interface PgvectorExportOptions {
  /**
   * `postgres://USER:PASSWORD@HOST:PORT/DATABASE[?sslmode=…]`. Parts it leaves out come from the
   * standard libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE), which
   * the `pg` driver reads itself. Messages only ever show it with the password replaced by `***`.
   */
  readonly url: string;
  /** `NAME` or `SCHEMA.NAME`. */
  readonly table: string;
  /** Embedding columns to load (default: every modality the output has). */
  readonly modalities?: readonly Modality[];
  /** Vector index built after the load (default `hnsw`, cosine). */
  readonly index?: PgIndexKind;
  /** Rows per transaction (default `pgvectorDefaults.batchRows`). */
  readonly batchRows?: number;
  /** Delete the table's rows whose ids are not in the output (default false). */
  readonly sync?: boolean;
  /** HNSW `m` (default 16, pgvector's). */
  readonly m?: number;
  /** HNSW `ef_construction` (default 64, pgvector's). */
  readonly efConstruction?: number;
  /** Give up connecting after this long (default 10 s). */
  readonly connectTimeoutMs?: number;
  /** Called after each committed batch. */
  readonly onBatch?: (progress: PgvectorProgress) => void;
}

/** Defaults of `vecmill export pgvector`, documented once. */
export const pgvectorDefaults = { index: 'hnsw' as PgIndexKind, batchRows: 1000, connectTimeoutMs: 10_000, ...hnswDefaults };

/** Counts so far, after a committed batch. */
export interface PgvectorProgress {
  /** Rows of the output sent so far. */
  readonly loaded: number;
  /** Rows the output has with every embedding asked for (the load's total), from the manifest. */
  readonly expected: number;
  readonly written: number;
  readonly deleted: number;
}

/** What a load did. */
export interface PgvectorExportResult {
  /** The target URL, password redacted. */
  readonly target: string;
  readonly table: string;
  /** Rows the output holds (`rows.in` of its manifest). */
  readonly outputRows: number;
  /** Rows of the output sent to the table. */
  readonly loaded: number;
  /** Of those, rows inserted or changed; the rest were already there, identical. */
  readonly written: number;
  readonly unchanged: number;
  /** Output rows not loaded: failed rows, and rows missing an embedding asked for. */
  readonly skipped: number;
  /** Rows `--sync` deleted because their ids are absent from the output. */
  readonly deleted: number;
  /** Rows in the table afterwards. */
  readonly tableRows: number;
  /** Columns that have a vector index after the load. */
  readonly indexed: readonly string[];
  readonly seconds: number;
}

/**
 * Loads a published output into a PostgreSQL table with pgvector: ids, captions, source offsets
 * and one `vector(D)` (or `halfvec(D)` for float16 outputs) column per modality. It creates the
 * extension and the table when missing and refuses a table of another shape. Rows upsert by
 * vecmill's row id in batches of `batchRows`, one transaction each, and only rows that differ
 * are rewritten, so a run killed half-way is finished by running it again and loading the same
 * output twice changes nothing. With `sync`, rows whose ids the output lacks are deleted. The
 * vector index is built after the rows are in, as pgvector advises for bulk loads. Until the
 * load finishes the table's comment says it is incomplete. Parts are read one at a time, so
 * memory does not grow with the output.
 */
export async function exportToPgvector(output: PublishedOutput, options: PgvectorExportOptions): Promise<PgvectorExportResult> {
  const started = performance.now();
  const target = pgTarget(options.url);
  const table = parsePgTableName(options.table);
  const modalities = options.modalities ?? output.modalities;
  for (const m of modalities) output.requireModality(m);
  const batchRows = options.batchRows ?? pgvectorDefaults.batchRows;
  if (!Number.isInteger(batchRows) || batchRows < 1) throw new ConfigError(`--batch-rows ${batchRows}: expected a whole number of at least 1`);
  const columns = expectedColumns(modalities, output.dtype, output.dims);
  const client = new pg.Client({
    connectionString: target.url,
    application_name: 'vecmill export',
    connectionTimeoutMillis: options.connectTimeoutMs ?? pgvectorDefaults.connectTimeoutMs,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    throw pgFailure(err, target, 'connecting');
  }
  const db = new Session(client, target);
  try {
    await ensureExtension(db, output.dtype === 'float16');
    await ensureTable(db, table, columns);
    const source = `${output.store.description} (run ${output.manifest.runId})`;
    await db.run('marking the table incomplete', `COMMENT ON TABLE ${table.sql} IS ${client.escapeLiteral(`vecmill export: INCOMPLETE, loading ${source}`)}`);
    const load = await loadRows(db, output, table, columns, modalities, batchRows, options);
    let deleted = load.deleted;
    if (options.sync === true) deleted += (await db.run('deleting rows absent from the output', deleteAfterSql(table), [String(load.lastId)])).rowCount ?? 0;
    const tableRows = Number((await db.run('counting rows', `SELECT count(*) AS n FROM ${table.sql}`)).rows[0]?.n ?? 0);
    const indexed = await buildIndexes(db, table, modalities, output, tableRows, options);
    await db.run('analyzing the table', `ANALYZE ${table.sql}`);
    await db.run(
      'marking the table complete',
      `COMMENT ON TABLE ${table.sql} IS ${client.escapeLiteral(`vecmill export: complete, ${load.loaded} rows of ${source} at ${new Date().toISOString()}`)}`,
    );
    return {
      target: target.shown,
      table: options.table,
      outputRows: output.manifest.rows.in,
      loaded: load.loaded,
      written: load.written,
      unchanged: load.loaded - load.written,
      skipped: output.manifest.rows.in - load.loaded,
      deleted,
      tableRows,
      indexed,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A connected client whose every failure becomes a one-line DatabaseError naming the step. */
class Session {
  constructor(
    readonly client: pg.Client,
    readonly target: PgTarget,
  ) {}

  async run(during: string, text: string, values?: readonly unknown[]): Promise<pg.QueryResult<Record<string, unknown>>> {
    try {
      return await this.client.query({ text, values: values === undefined ? [] : [...values] });
    } catch (err) {
      throw pgFailure(err, this.target, during);
    }
  }
}

async function ensureExtension(db: Session, needsHalfvec: boolean): Promise<void> {
  const found = async (): Promise<string | undefined> =>
    (await db.run('checking the vector extension', `SELECT extversion FROM pg_extension WHERE extname = 'vector'`)).rows[0]?.extversion as string | undefined;
  let version = await found();
  if (version === undefined) {
    await db.run('creating the vector extension', 'CREATE EXTENSION IF NOT EXISTS vector');
    version = (await found()) ?? '';
  }
  const [major = 0, minor = 0] = version.split('.').map((p) => Number.parseInt(p, 10) || 0);
  const older = major === 0 && minor < 7;
  if (needsHalfvec && older) {
    throw new DatabaseError(`PostgreSQL at ${db.target.shown} has pgvector ${version}, which has no halfvec (added in 0.7.0) for this float16 output; upgrade pgvector to 0.7.0 or later (ALTER EXTENSION vector UPDATE)`);
  }
}

async function ensureTable(db: Session, table: PgTableName, columns: ReadonlyMap<string, string>): Promise<void> {
  const during = `checking table ${table.sql}`;
  const exists = (await db.run(during, 'SELECT to_regclass($1) IS NOT NULL AS found', [table.sql])).rows[0]?.found === true;
  if (!exists) {
    await db.run(`creating table ${table.sql}`, createTableSql(table, columns));
    return;
  }
  const actual = new Map(
    (
      await db.run(
        during,
        'SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped',
        [table.sql],
      )
    ).rows.map((r) => [String(r.attname), String(r.type)]),
  );
  const problems: string[] = [];
  for (const [name, type] of columns) {
    const has = actual.get(name);
    if (has === undefined) problems.push(`it has no ${name} column (${type} needed)`);
    else if (has !== type) problems.push(`${name} is ${has}, this output needs ${type}`);
  }
  if (problems.length === 0) {
    const unique = await db.run(
      during,
      `SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
       WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indnatts = 1 AND a.attname = $2`,
      [table.sql, PG_COLUMNS.id],
    );
    if (unique.rowCount === 0) problems.push(`${PG_COLUMNS.id} is not its primary key`);
  }
  if (problems.length > 0) {
    throw new DatabaseError(`table ${table.sql} at ${db.target.shown} does not fit this output: ${problems.join('; ')}; load into another --table, or drop this one`, {
      table: table.sql,
    });
  }
}

interface LoadCounts {
  readonly loaded: number;
  readonly written: number;
  readonly deleted: number;
  /** The last id loaded (-1 when none): `--sync` deletes every row past it. */
  readonly lastId: bigint;
}

async function loadRows(
  db: Session,
  output: PublishedOutput,
  table: PgTableName,
  columns: ReadonlyMap<string, string>,
  modalities: readonly Modality[],
  batchRows: number,
  options: PgvectorExportOptions,
): Promise<LoadCounts> {
  const perStatement = Math.min(batchRows, maxRowsPerStatement(columns));
  const expected = output.manifest.rows.ok;
  let loaded = 0;
  let written = 0;
  let deleted = 0;
  let lastId = -1n;
  for await (const block of output.rowBlocks(modalities)) {
    for (let start = 0; start < block.ids.length; start += batchRows) {
      const end = Math.min(block.ids.length, start + batchRows);
      const first = block.ids[start]!;
      if (first <= lastId) throw new InputError(`${output.store.description}: row ids are not ascending (${first} after ${lastId}); the output is damaged`);
      await db.run('starting a batch', 'BEGIN');
      try {
        for (let s = start; s < end; s += perStatement) {
          const e = Math.min(end, s + perStatement);
          written += (await db.run(`loading rows ${block.ids[s]}-${block.ids[e - 1]}`, upsertSql(table, columns, e - s), rowValues(block, modalities, output.dims, s, e))).rowCount ?? 0;
        }
        const last = block.ids[end - 1]!;
        if (options.sync === true) {
          const ids = Array.from(block.ids.subarray(start, end), String);
          deleted += (await db.run('deleting rows absent from the output', deleteGapsSql(table), [String(lastId), String(last), ids])).rowCount ?? 0;
        }
        await db.run('committing a batch', 'COMMIT');
        lastId = last;
      } catch (err) {
        await db.client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
      loaded += end - start;
      options.onBatch?.({ loaded, expected, written, deleted });
    }
  }
  if (loaded === 0) throw new ConfigError(`${output.store.description} has no row with every embedding asked for (${modalities.join(', ')}); nothing to load`);
  return { loaded, written, deleted, lastId };
}

/** Bind values of rows [from, to) of a block, in `expectedColumns` order. */
function rowValues(block: RowsBlock, modalities: readonly Modality[], dims: number, from: number, to: number): unknown[] {
  const out: unknown[] = [];
  for (let r = from; r < to; r++) {
    out.push(String(block.ids[r]), block.captions[r] ?? null, block.sources[r], block.offsets[r]);
    for (const m of modalities) out.push(encodeVector(block.vectors.get(m)!, r * dims, dims));
  }
  return out;
}

async function buildIndexes(db: Session, table: PgTableName, modalities: readonly Modality[], output: PublishedOutput, rows: number, options: PgvectorExportOptions): Promise<string[]> {
  const kind = options.index ?? pgvectorDefaults.index;
  if (kind === 'none') return [];
  const indexed: string[] = [];
  for (const m of modalities) {
    const column = PG_COLUMNS[m];
    const sql = createIndexSql(table, column, output.dtype, { kind, m: options.m ?? pgvectorDefaults.m, efConstruction: options.efConstruction ?? pgvectorDefaults.efConstruction, rows });
    await db.run(`building the ${kind} index on ${column} (${vectorType(output.dtype, output.dims)})`, sql);
    indexed.push(column);
  }
  return indexed;
}
