import { createRequire } from 'node:module';
import * as arrow from 'apache-arrow';
import * as lancedb from '@lancedb/lancedb';
import { ConfigError, StorageError, describeError } from '@vecmill/shared/errors';
import type { Modality } from '@vecmill/shared/formats/embedding-table';
import type { S3ClientOptions } from '@vecmill/shared/storage/s3-store';
import type { PublishedOutput, RowsBlock } from './output-reader.js';

/** Where and how `vecmill export lancedb` writes. */
export interface LanceExportOptions {
  /** A local folder or `s3://bucket/prefix`: the LanceDB database. */
  readonly db: string;
  readonly table: string;
  /** Build a vector index on each embedding column after loading (default false). */
  readonly index?: boolean;
  /** S3 settings for an `s3://` database (region, endpoint, credentials), passed to LanceDB's object store. */
  readonly s3?: S3ClientOptions;
}

/** What an export did. */
export interface LanceExportResult {
  readonly table: string;
  /** Rows written from this output. */
  readonly rows: number;
  /** Rows in the table afterwards. */
  readonly tableRows: number;
  /** Columns that got a vector index. */
  readonly indexed: readonly string[];
}

/** LanceDB column names: vecmill's ids and clip-retrieval's metadata names, one vector column per modality. */
export const LANCE_COLUMNS = { id: 'id', caption: 'caption', source: 'source', offset: 'offset', image: 'image_embedding', text: 'text_embedding' } as const;

/** Below this many rows an IVF-PQ index trains badly; IVF-Flat is exact within the probed partitions. */
const IVF_PQ_MIN_ROWS = 100_000;

/**
 * Loads a published output into a LanceDB table: ids, captions, source offsets and every
 * embedding, for the rows that have all of them. Each part is merged on `id` (update when
 * matched, insert when not, delete the rows with ids from past the previous part's last id to
 * this part's last that are no longer there), and rows past the output's last id are deleted at
 * the end, so re-exporting a run, or a later run of the same dataset, replaces rows instead of
 * duplicating them. One table holds one dataset: ids (`split × 2^32 + line`, int64) are stable
 * row ids in it, with gaps between splits.
 */
export async function exportToLance(output: PublishedOutput, options: LanceExportOptions): Promise<LanceExportResult> {
  if (!/^[A-Za-z0-9_.-]+$/.test(options.table)) throw new ConfigError(`--table ${JSON.stringify(options.table)}: use letters, digits, '_', '-' or '.'`);
  const db = await connect(options);
  const modalities = output.modalities;
  let table = (await db.tableNames()).includes(options.table) ? await db.openTable(options.table) : undefined;
  let rows = 0;
  let previousLast = -1n;
  for await (const block of output.rowBlocks(modalities)) {
    const data = toLanceTable(block, modalities, output.dims);
    if (table === undefined) {
      table = await db.createTable(options.table, data);
    } else {
      const last = block.ids[block.ids.length - 1]!;
      await table
        .mergeInsert(LANCE_COLUMNS.id)
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .whenNotMatchedBySourceDelete({ where: `${LANCE_COLUMNS.id} > ${previousLast} AND ${LANCE_COLUMNS.id} <= ${last}` })
        .execute(data);
    }
    previousLast = block.ids[block.ids.length - 1]!;
    rows += block.ids.length;
  }
  if (table === undefined) throw new ConfigError(`${output.store.description} has no row with every embedding; nothing to export`);
  await table.delete(`${LANCE_COLUMNS.id} > ${previousLast}`);
  const indexed: string[] = [];
  if (options.index === true) {
    const tableRows = await table.countRows();
    for (const m of modalities) {
      const column = LANCE_COLUMNS[m];
      const config =
        tableRows >= IVF_PQ_MIN_ROWS
          ? lancedb.Index.ivfPq({ distanceType: 'cosine' })
          : lancedb.Index.ivfFlat({ distanceType: 'cosine', numPartitions: Math.max(1, Math.round(Math.sqrt(tableRows) / 4)) });
      await table.createIndex(column, { config, replace: true });
      indexed.push(column);
    }
  }
  const result = { table: options.table, rows, tableRows: await table.countRows(), indexed };
  table.close();
  db.close();
  return result;
}

async function connect(options: LanceExportOptions): Promise<lancedb.Connection> {
  try {
    return await lancedb.connect(options.db, { storageOptions: storageOptions(options) });
  } catch (err) {
    throw new StorageError(`cannot open the LanceDB database ${options.db}: ${describeError(err)}`, { db: options.db }, { cause: err });
  }
}

/** LanceDB's object-store keys for the same S3 settings vecmill's own S3 client uses. */
function storageOptions(options: LanceExportOptions): Record<string, string> {
  const s3 = options.s3;
  if (s3 === undefined || !options.db.startsWith('s3://')) return {};
  const out: Record<string, string> = { region: s3.region };
  if (s3.endpoint !== undefined) {
    out['endpoint'] = s3.endpoint;
    out['allow_http'] = String(s3.endpoint.startsWith('http://'));
  }
  if (s3.forcePathStyle === true) out['virtual_hosted_style_request'] = 'false';
  if (s3.credentials !== undefined) {
    out['aws_access_key_id'] = s3.credentials.accessKeyId;
    out['aws_secret_access_key'] = s3.credentials.secretAccessKey;
    if (s3.credentials.sessionToken !== undefined) out['aws_session_token'] = s3.credentials.sessionToken;
  }
  return out;
}

/**
 * LanceDB bundles its own view of apache-arrow (the CommonJS build, checked with instanceof), so
 * the table is built with the project's Arrow and handed over as IPC bytes decoded by LanceDB's.
 */
const lanceArrow = createRequire(createRequire(import.meta.url).resolve('@lancedb/lancedb'))('apache-arrow') as typeof arrow;

function toLanceTable(block: RowsBlock, modalities: readonly Modality[], dims: number): arrow.Table {
  const n = block.ids.length;
  const columns: Record<string, arrow.Vector> = {
    [LANCE_COLUMNS.id]: arrow.makeVector(block.ids),
    [LANCE_COLUMNS.caption]: arrow.vectorFromArray(block.captions as (string | null)[], new arrow.Utf8()),
    [LANCE_COLUMNS.source]: arrow.vectorFromArray(block.sources as string[], new arrow.Utf8()),
    [LANCE_COLUMNS.offset]: arrow.makeVector(BigInt64Array.from(block.offsets, (o) => BigInt(o))),
  };
  for (const m of modalities) {
    const values = block.vectors.get(m)!;
    const element = values instanceof Uint16Array ? new arrow.Float16() : new arrow.Float32();
    const type = new arrow.FixedSizeList(dims, new arrow.Field('item', element, true));
    columns[LANCE_COLUMNS[m]] = arrow.makeVector(arrow.makeData({ type, length: n, nullCount: 0, child: arrow.makeData({ type: element, length: n * dims, data: values }) }));
  }
  return lanceArrow.tableFromIPC(arrow.tableToIPC(new arrow.Table(columns), 'stream'));
}
