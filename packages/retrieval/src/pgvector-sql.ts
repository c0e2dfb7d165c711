import { ConfigError } from '@vecmill/shared/errors';
import type { EmbeddingDtype, Modality } from '@vecmill/shared/formats/embedding-table';

/**
 * The SQL of `vecmill export pgvector`, kept apart from the I/O so its shape (names, types,
 * parameter counts) is readable in one place and unit-tested without a server.
 */

/** Column names of an exported table: vecmill's row id, clip-retrieval's metadata names, one vector column per modality. */
export const PG_COLUMNS = { id: 'id', caption: 'caption', source: 'source', offset: 'byte_offset', image: 'image_embedding', text: 'text_embedding' } as const;

/** PostgreSQL refuses a statement with more bind parameters than this (the count is an int16 on the wire). */
export const PG_MAX_BIND_PARAMETERS = 65_535;

/** A table name as given: `name` or `schema.name`, each part a plain identifier (no quoting games). */
export interface PgTableName {
  readonly schema: string | undefined;
  readonly name: string;
  /** Quoted for SQL: `"schema"."name"`. */
  readonly sql: string;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Parses `--table`: refuses anything but one or two plain identifiers, so no name needs escaping beyond quotes. */
export function parsePgTableName(text: string): PgTableName {
  const parts = text.split('.');
  if (parts.length > 2 || !parts.every((p) => IDENTIFIER.test(p))) {
    throw new ConfigError(`--table ${JSON.stringify(text)}: use NAME or SCHEMA.NAME, each a letter or '_' then up to 62 letters, digits or '_'`, { table: text });
  }
  const [a, b] = parts as [string, string | undefined];
  const schema = b === undefined ? undefined : a;
  const name = b ?? a;
  return { schema, name, sql: schema === undefined ? quoteIdent(name) : `${quoteIdent(schema)}.${quoteIdent(name)}` };
}

/** Double-quotes an identifier already checked against IDENTIFIER. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** `vector(D)` for float32 outputs, `halfvec(D)` for float16 ones (pgvector stores both exactly). */
export function vectorType(dtype: EmbeddingDtype, dims: number): string {
  return `${dtype === 'float16' ? 'halfvec' : 'vector'}(${dims})`;
}

/** The columns a table must have to hold these modalities, with their types as `format_type` prints them. */
export function expectedColumns(modalities: readonly Modality[], dtype: EmbeddingDtype, dims: number): ReadonlyMap<string, string> {
  const columns = new Map<string, string>([
    [PG_COLUMNS.id, 'bigint'],
    [PG_COLUMNS.caption, 'text'],
    [PG_COLUMNS.source, 'text'],
    [PG_COLUMNS.offset, 'bigint'],
  ]);
  for (const m of modalities) columns.set(PG_COLUMNS[m], vectorType(dtype, dims));
  return columns;
}

/** `CREATE TABLE IF NOT EXISTS` for the expected columns, keyed on the row id (what upserts and `--sync` match on). */
export function createTableSql(table: PgTableName, columns: ReadonlyMap<string, string>): string {
  const defs = [...columns].map(([name, type]) => `${quoteIdent(name)} ${type}${name === PG_COLUMNS.id ? ' PRIMARY KEY' : name === PG_COLUMNS.caption ? '' : ' NOT NULL'}`);
  return `CREATE TABLE IF NOT EXISTS ${table.sql} (${defs.join(', ')})`;
}

/** Most rows one upsert statement may carry without passing PostgreSQL's bind-parameter limit (one parameter per column per row). */
export function maxRowsPerStatement(columns: ReadonlyMap<string, string>): number {
  return Math.floor(PG_MAX_BIND_PARAMETERS / columns.size);
}

/**
 * A multi-row `INSERT … ON CONFLICT (id) DO UPDATE` for `rows` rows. The update only happens when
 * some column differs, so the statement's row count is the rows that were inserted or changed:
 * re-loading an unchanged output writes no tuple and reports zero.
 */
export function upsertSql(table: PgTableName, columns: ReadonlyMap<string, string>, rows: number): string {
  const names = [...columns.keys()];
  const width = names.length;
  const values: string[] = [];
  for (let r = 0; r < rows; r++) {
    const base = r * width;
    values.push(`(${names.map((_, c) => `$${base + c + 1}`).join(', ')})`);
  }
  const rest = names.filter((n) => n !== PG_COLUMNS.id);
  const set = rest.map((n) => `${quoteIdent(n)} = EXCLUDED.${quoteIdent(n)}`).join(', ');
  const current = rest.map((n) => `${table.sql}.${quoteIdent(n)}`).join(', ');
  const incoming = rest.map((n) => `EXCLUDED.${quoteIdent(n)}`).join(', ');
  return (
    `INSERT INTO ${table.sql} (${names.map(quoteIdent).join(', ')}) VALUES ${values.join(', ')} ` +
    `ON CONFLICT (${quoteIdent(PG_COLUMNS.id)}) DO UPDATE SET ${set} WHERE (${current}) IS DISTINCT FROM (${incoming})`
  );
}

/**
 * `--sync`'s delete for one batch: rows whose id lies in (after, last] and is not one of the
 * batch's ids. Batches arrive in ascending id order, so their ranges tile every id up to the
 * output's last one; the rows past it are deleted once at the end (`deleteAfterSql`).
 */
export function deleteGapsSql(table: PgTableName): string {
  const id = quoteIdent(PG_COLUMNS.id);
  return `DELETE FROM ${table.sql} WHERE ${id} > $1 AND ${id} <= $2 AND NOT (${id} = ANY($3::bigint[]))`;
}

/** `--sync`'s final delete: every row past the output's last id. */
export function deleteAfterSql(table: PgTableName): string {
  return `DELETE FROM ${table.sql} WHERE ${quoteIdent(PG_COLUMNS.id)} > $1`;
}

/** How `--index` builds the vector index after the load. */
export type PgIndexKind = 'hnsw' | 'ivfflat' | 'none';

/** HNSW build parameters: pgvector's own defaults. */
export const hnswDefaults = { m: 16, efConstruction: 64 } as const;

/** Name of the index on one vector column; PostgreSQL truncates names past 63 bytes, so long ones are cut here, visibly. */
export function indexName(table: PgTableName, column: string, kind: Exclude<PgIndexKind, 'none'>): string {
  return `${table.name}_${column}_${kind}`.slice(0, 63);
}

/**
 * `CREATE INDEX IF NOT EXISTS … USING hnsw|ivfflat (column *_cosine_ops)`. IVFFlat's list count
 * follows pgvector's advice: rows / 1000 up to a million rows, √rows above.
 */
export function createIndexSql(
  table: PgTableName,
  column: string,
  dtype: EmbeddingDtype,
  index: { readonly kind: Exclude<PgIndexKind, 'none'>; readonly m: number; readonly efConstruction: number; readonly rows: number },
): string {
  const ops = `${dtype === 'float16' ? 'halfvec' : 'vector'}_cosine_ops`;
  const name = quoteIdent(indexName(table, column, index.kind));
  const onTable = `${name} ON ${table.sql} USING ${index.kind} (${quoteIdent(column)} ${ops})`;
  if (index.kind === 'hnsw') return `CREATE INDEX IF NOT EXISTS ${onTable} WITH (m = ${index.m}, ef_construction = ${index.efConstruction})`;
  const lists = Math.max(1, index.rows <= 1_000_000 ? Math.round(index.rows / 1000) : Math.round(Math.sqrt(index.rows)));
  return `CREATE INDEX IF NOT EXISTS ${onTable} WITH (lists = ${lists})`;
}

/**
 * pgvector's binary input format (what `vector_recv` / `halfvec_recv` read): int16 dimensions,
 * int16 zero, then each value big-endian as float4 or float2. node-postgres sends a Buffer
 * parameter in binary format, so vectors cross the wire exactly and without printing decimals.
 */
export function encodeVector(values: Float32Array | Uint16Array, from: number, dims: number): Buffer {
  const half = values instanceof Uint16Array;
  const out = Buffer.allocUnsafe(4 + dims * (half ? 2 : 4));
  out.writeUInt16BE(dims, 0);
  out.writeUInt16BE(0, 2);
  if (half) {
    for (let j = 0; j < dims; j++) out.writeUInt16BE(values[from + j]!, 4 + j * 2);
  } else {
    for (let j = 0; j < dims; j++) out.writeFloatBE(values[from + j]!, 4 + j * 4);
  }
  return out;
}
