import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pgFailure, pgTarget } from '@vecmill/retrieval/pg-target';
import {
  createIndexSql,
  createTableSql,
  encodeVector,
  expectedColumns,
  maxRowsPerStatement,
  parsePgTableName,
  PG_MAX_BIND_PARAMETERS,
  upsertSql,
} from '@vecmill/retrieval/pgvector-sql';

describe('pgvector export: URL redaction', () => {
  it('replaces the password in the authority and in query parameters, and keeps everything else', () => {
    const t = pgTarget('postgres://loader:p%40ss%3Aword@db.example.com:6543/vectors?sslmode=require&password=other-secret');
    assert.equal(t.shown, 'postgres://loader:***@db.example.com:6543/vectors?sslmode=require&password=***');
    assert.equal(t.user, 'loader');
    assert.equal(t.url, 'postgres://loader:p%40ss%3Aword@db.example.com:6543/vectors?sslmode=require&password=other-secret&uselibpqcompat=true', 'sslmode as libpq means it');
    assert.equal(t.scrub('failed for p@ss:word and p%40ss%3Aword and other-secret'), 'failed for *** and *** and ***');
  });

  it('leaves a URL without a password as it is, and the password to PGPASSWORD', () => {
    const t = pgTarget('postgresql://db.example.com/vectors');
    assert.equal(t.shown, 'postgresql://db.example.com/vectors');
    assert.equal(t.url, 'postgresql://db.example.com/vectors');
    assert.equal(t.user, undefined);
  });

  it('refuses a value that is not a postgres URL without echoing it', () => {
    assert.throws(() => pgTarget('loader:secret-value@host/db'), (e: Error) => !e.message.includes('secret-value') && /--url/.test(e.message));
    assert.throws(() => pgTarget('mysql://u:secret-value@host/db'), (e: Error) => !e.message.includes('secret-value') && /postgres:\/\//.test(e.message));
  });

  it('never lets a driver message carry the password into the one-line failure', () => {
    const t = pgTarget('postgres://u:hunter2hunter2@127.0.0.1:5/db');
    const e = pgFailure(Object.assign(new Error('something about hunter2hunter2\nsecond line'), { code: 'XX000' }), t, 'loading rows');
    assert.equal(e.message, 'loading rows failed on PostgreSQL at postgres://u:***@127.0.0.1:5/db: something about ***');
    assert.equal(e.code, 'E_DATABASE');
    const refused = pgFailure(Object.assign(new AggregateError([Object.assign(new Error('connect ECONNREFUSED ::1:5'), { code: 'ECONNREFUSED' })], ''), { code: 'ECONNREFUSED' }), t, 'connecting');
    assert.match(refused.message, /^cannot connect to PostgreSQL at postgres:\/\/u:\*\*\*@127\.0\.0\.1:5\/db: connection refused/);
  });
});

describe('pgvector export: SQL', () => {
  const table = parsePgTableName('vectors.pairs');
  const columns = expectedColumns(['image', 'text'], 'float32', 512);

  it('accepts NAME and SCHEMA.NAME and refuses anything that would need escaping', () => {
    assert.equal(table.sql, '"vectors"."pairs"');
    assert.equal(parsePgTableName('pairs').sql, '"pairs"');
    for (const bad of ['a.b.c', 'pairs; DROP TABLE x', '"pairs"', '1pairs', '', 'x'.repeat(64)]) assert.throws(() => parsePgTableName(bad), { code: 'E_CONFIG' }, bad);
  });

  it('creates the table keyed on the row id with vector(D), or halfvec(D) for float16', () => {
    assert.equal(
      createTableSql(table, columns),
      'CREATE TABLE IF NOT EXISTS "vectors"."pairs" ("id" bigint PRIMARY KEY, "caption" text, "source" text NOT NULL, "byte_offset" bigint NOT NULL, "image_embedding" vector(512) NOT NULL, "text_embedding" vector(512) NOT NULL)',
    );
    assert.deepEqual([...expectedColumns(['text'], 'float16', 768)], [['id', 'bigint'], ['caption', 'text'], ['source', 'text'], ['byte_offset', 'bigint'], ['text_embedding', 'halfvec(768)']]);
  });

  it('keeps every upsert under the 65,535 bind-parameter limit and numbers its parameters row by row', () => {
    const rows = maxRowsPerStatement(columns);
    assert.equal(rows, Math.floor(PG_MAX_BIND_PARAMETERS / 6));
    const sql = upsertSql(table, columns, rows);
    const params = sql.match(/\$\d+/g)!;
    assert.equal(params.length, rows * 6);
    assert.ok(params.length <= PG_MAX_BIND_PARAMETERS);
    assert.equal(params.at(-1), `$${rows * 6}`);
    assert.match(upsertSql(table, columns, 2), /VALUES \(\$1, \$2, \$3, \$4, \$5, \$6\), \(\$7, \$8, \$9, \$10, \$11, \$12\) ON CONFLICT \("id"\) DO UPDATE SET .* WHERE \(.*\) IS DISTINCT FROM \(.*\)$/);
  });

  it('builds cosine HNSW and IVFFlat indexes with the given parameters', () => {
    assert.equal(
      createIndexSql(table, 'image_embedding', 'float32', { kind: 'hnsw', m: 24, efConstruction: 100, rows: 10 }),
      'CREATE INDEX IF NOT EXISTS "pairs_image_embedding_hnsw" ON "vectors"."pairs" USING hnsw ("image_embedding" vector_cosine_ops) WITH (m = 24, ef_construction = 100)',
    );
    assert.match(createIndexSql(table, 'text_embedding', 'float16', { kind: 'ivfflat', m: 16, efConstruction: 64, rows: 50_000 }), /USING ivfflat \("text_embedding" halfvec_cosine_ops\) WITH \(lists = 50\)$/);
    assert.match(createIndexSql(table, 'text_embedding', 'float32', { kind: 'ivfflat', m: 16, efConstruction: 64, rows: 4_000_000 }), /WITH \(lists = 2000\)$/);
  });

  it("encodes vectors in pgvector's binary format: dimensions, zero, big-endian values", () => {
    const f32 = encodeVector(Float32Array.of(9, 1, -2.5, 9), 1, 2);
    assert.deepEqual([...f32], [0, 2, 0, 0, 0x3f, 0x80, 0, 0, 0xc0, 0x20, 0, 0]);
    const f16 = encodeVector(Uint16Array.of(0x3c00, 0xc000), 0, 2);
    assert.deepEqual([...f16], [0, 2, 0, 0, 0x3c, 0x00, 0xc0, 0x00]);
  });
});
