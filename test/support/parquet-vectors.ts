import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';

/**
 * Arrow C++ (pyarrow, pandas, embedding-reader, autofaiss) cannot read a null entry of a
 * FixedSizeList column from Parquet (apache/arrow#35692). Parquet stores a FixedSizeList as a
 * LIST group, so this checks, with DuckDB reading the file as an outside reader would, that every
 * LIST column of every file is declared `required` and holds no null entry and no list of another
 * length than the first. Returns the number of LIST columns checked per file, so a caller can
 * assert that the files it passed have vectors at all.
 */
export async function assertNoNullVectors(paths: readonly string[]): Promise<number[]> {
  const instance = await DuckDBInstance.create(':memory:');
  const db = await instance.connect();
  const query = async (sql: string): Promise<Record<string, unknown>[]> => (await db.runAndReadAll(sql)).getRowObjectsJson();
  try {
    const checked: number[] = [];
    for (const path of paths) {
      const file = path.replaceAll("'", "''");
      const lists = await query(`SELECT name, repetition_type FROM parquet_schema('${file}') WHERE converted_type = 'LIST'`);
      for (const { name, repetition_type } of lists) {
        assert.equal(repetition_type, 'REQUIRED', `${path}: vector column ${String(name)} is declared ${String(repetition_type)}, not REQUIRED`);
        const column = `"${String(name).replaceAll('"', '""')}"`;
        const [counts] = await query(
          `SELECT count(*) FILTER (WHERE ${column} IS NULL) AS nulls,
                  count(DISTINCT len(${column})) AS lengths,
                  count(*) FILTER (WHERE list_contains(list_transform(${column}, x -> x IS NULL), true)) AS null_items
           FROM read_parquet('${file}')`,
        );
        assert.equal(Number(counts!.nulls), 0, `${path}: vector column ${String(name)} holds null entries`);
        assert.ok(Number(counts!.lengths) <= 1, `${path}: vector column ${String(name)} holds lists of different lengths`);
        assert.equal(Number(counts!.null_items), 0, `${path}: vector column ${String(name)} holds null values inside a vector`);
      }
      checked.push(lists.length);
    }
    return checked;
  } finally {
    db.closeSync();
    instance.closeSync();
  }
}

/** Every `.parquet` file below `dir` (parts, metadata, errors, shard chunks), sorted. */
export function parquetFilesUnder(dir: string): string[] {
  return (readdirSync(dir, { recursive: true, encoding: 'utf8' }) as string[])
    .filter((f) => f.endsWith('.parquet'))
    .sort()
    .map((f) => join(dir, f));
}
