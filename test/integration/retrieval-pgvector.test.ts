import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import { float16ToFloat32 } from '@vecmill/shared/formats/float16';
import { PublishedOutput } from '@vecmill/retrieval/output-reader';
import { exportToPgvector } from '@vecmill/retrieval/pgvector-export';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { runEmbedded } from 'vecmill/embedded-run';
import { runCli, vecmillBin } from '../support/distributed-helpers.js';
import { freePort } from '../support/free-port.js';
import { startPgliteServer, type PgliteTestServer } from '../support/pglite-server.js';
import { postgresSkipReason, startPostgresServer, type PostgresTestServer } from '../support/postgres-server.js';
import { runConfig } from '../support/run-helpers.js';
import { randomUnitVectors, writeSyntheticOutput } from '../support/synthetic-output.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

/** Every column of a table, in id order, with each tuple's xmin: equal snapshots mean no row was rewritten. */
async function snapshot(db: pg.Client, table: string): Promise<string> {
  const rows = (await db.query(`SELECT xmin::text AS xmin, t::text AS row FROM ${table} t ORDER BY id`)).rows;
  return JSON.stringify(rows);
}

async function tableIds(db: pg.Client, table: string): Promise<number[]> {
  return (await db.query(`SELECT id FROM ${table} ORDER BY id`)).rows.map((r: { id: string }) => Number(r.id));
}

async function comment(db: pg.Client, table: string): Promise<string> {
  return String((await db.query(`SELECT obj_description($1::regclass, 'pg_class') AS c`, [table])).rows[0].c);
}

/** pgvector's text input form of a float32 vector. */
function vectorLiteral(values: Float32Array): string {
  return `[${Array.from(values).join(',')}]`;
}

/** True when the server's text form of a vector holds exactly these float32 values. */
function sameVector(text: string, values: Float32Array): boolean {
  const parsed = JSON.parse(text) as number[];
  return parsed.length === values.length && parsed.every((x, i) => Math.fround(x) === values[i]);
}

describe('vecmill export pgvector (PGlite with pgvector over the wire, and a real PostgreSQL)', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let server: PgliteTestServer;
  let db: pg.Client;
  let big: PublishedOutput;
  let night1: PublishedOutput;
  let night2: PublishedOutput;
  let changedCaption: string;
  let half: PublishedOutput;
  let synthetic: string;
  const syntheticRows = 6000;

  before(async () => {
    ({ dir, cleanup } = await makeTempDir('retrieval-pgvector'));
    const starting = startPgliteServer();
    const model = await tinyModelDir();
    await makeDataset({ path: join(dir, 'pairs.tsv'), rows: 80, kind: 'pairs', seed: 6, imageSize: 40, distinctImages: 80 });
    await runEmbedded(runConfig(['--input', join(dir, 'pairs.tsv'), '--model', model, '--output', join(dir, 'out'), '--split-size', '16KiB']), () => undefined);
    big = await PublishedOutput.open(new LocalStore(join(dir, 'out')));
    // The next night's run of the same file: rows 10-14 now fail (absent from the output), row 20's caption
    // changed, rows 70-79 are gone. Line lengths are kept, so every other row keeps its source and offset.
    const lines = (await readFile(join(dir, 'pairs.tsv'), 'utf8')).split('\n').filter((l) => l !== '');
    await mkdir(join(dir, 'nightly'));
    await writeFile(join(dir, 'nightly', 'data.tsv'), `${lines.join('\n')}\n`);
    await runEmbedded(runConfig(['--input', join(dir, 'nightly', 'data.tsv'), '--model', model, '--output', join(dir, 'night1')]), () => undefined);
    const next = lines.slice(0, 70).map((l, i) => {
      const [caption = '', image = ''] = l.split('\t');
      if (i >= 10 && i < 15) return `${caption}\t${'!'.repeat(image.length)}`;
      return i === 20 ? `${caption.toUpperCase()}\t${image}` : l;
    });
    await writeFile(join(dir, 'nightly', 'data.tsv'), `${next.join('\n')}\n`);
    await runEmbedded(runConfig(['--input', join(dir, 'nightly', 'data.tsv'), '--model', model, '--output', join(dir, 'night2')]), () => undefined);
    night1 = await PublishedOutput.open(new LocalStore(join(dir, 'night1')));
    night2 = await PublishedOutput.open(new LocalStore(join(dir, 'night2')));
    changedCaption = lines[20]!.split('\t')[0]!.toUpperCase();
    await runEmbedded(runConfig(['--input', join(dir, 'pairs.tsv'), '--model', model, '--output', join(dir, 'half'), '--out-dtype', 'float16']), () => undefined);
    half = await PublishedOutput.open(new LocalStore(join(dir, 'half')));
    synthetic = join(dir, 'synthetic');
    await writeSyntheticOutput(synthetic, big.manifest, { dims: 32, image: randomUnitVectors(syntheticRows, 32, 11), rowsPerPart: 1500 });
    server = await starting;
    db = await server.client();
  });
  after(async () => {
    await server?.stop();
    await cleanup();
  });

  it('loads every row as vector(D) with its caption, source and offset, indexes it, and marks the table complete', async () => {
    const result = await exportToPgvector(big, { url: server.url, table: 'pairs' });
    assert.equal(result.loaded, 80);
    assert.equal(result.written, 80);
    assert.equal(result.skipped, 0);
    assert.equal(result.tableRows, 80);
    assert.deepEqual([...result.indexed].sort(), ['image_embedding', 'text_embedding']);
    const types = (await db.query(`SELECT attname, format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid = 'pairs'::regclass AND attnum > 0 ORDER BY attnum`)).rows;
    assert.deepEqual(
      types.map((r: { attname: string; t: string }) => `${r.attname} ${r.t}`),
      ['id bigint', 'caption text', 'source text', 'byte_offset bigint', `image_embedding vector(${big.dims})`, `text_embedding vector(${big.dims})`],
    );
    const indexes = (await db.query(`SELECT indexdef FROM pg_indexes WHERE tablename = 'pairs' AND indexdef LIKE '%hnsw%'`)).rows.map((r: { indexdef: string }) => r.indexdef);
    assert.equal(indexes.length, 2);
    assert.ok(indexes.every((d) => d.includes('vector_cosine_ops') && d.includes("m='16'") && d.includes("ef_construction='64'")), indexes.join('\n'));
    const rows = new Map((await db.query('SELECT id, caption, source, byte_offset, image_embedding::text AS image FROM pairs')).rows.map((r: { id: string }) => [BigInt(r.id), r]));
    for await (const block of big.blocks('image')) {
      block.ids.forEach((id, i) => {
        const row = rows.get(id) as unknown as { caption: string | null; source: string; byte_offset: string; image: string };
        assert.equal(row.caption, block.captions[i]);
        assert.equal(row.source, block.sources[i]);
        assert.equal(Number(row.byte_offset), block.offsets[i]);
        assert.ok(sameVector(row.image, (block.embeddings as Float32Array).subarray(i * big.dims, (i + 1) * big.dims)), `row ${id}: vectors arrive exactly`);
      });
    }
    assert.match(await comment(db, 'pairs'), /^vecmill export: complete, 80 rows of .* \(run /);
  });

  it("answers a nearest-neighbour query through the HNSW index with each image's (and each distinct caption's) own row first", async () => {
    await db.query('SET enable_seqscan = off');
    try {
      const plan = (await db.query(`EXPLAIN SELECT id FROM pairs ORDER BY image_embedding <=> (SELECT image_embedding FROM pairs LIMIT 1) LIMIT 1`)).rows.map((r: Record<string, string>) => Object.values(r)[0]).join('\n');
      assert.match(plan, /Index Scan using pairs_image_embedding_hnsw/);
      const captions = (await db.query('SELECT caption FROM pairs')).rows.map((r: { caption: string }) => r.caption);
      const unique = new Set(captions.filter((c, i) => captions.indexOf(c) === i && captions.lastIndexOf(c) === i));
      assert.ok(unique.size >= 10, `${unique.size} distinct captions`);
      for (const modality of ['image', 'text'] as const) {
        const column = `${modality}_embedding`;
        for await (const block of big.blocks(modality)) {
          for (let i = 0; i < block.ids.length; i++) {
            if (modality === 'text' && !unique.has(block.captions[i]!)) continue;
            const query = vectorLiteral((block.embeddings as Float32Array).subarray(i * big.dims, (i + 1) * big.dims));
            const hit = (await db.query(`SELECT id, ${column} <=> $1 AS d FROM pairs ORDER BY ${column} <=> $1 LIMIT 1`, [query])).rows[0] as { id: string; d: number };
            assert.equal(BigInt(hit.id), block.ids[i], `${modality} row ${block.ids[i]}`);
            assert.ok(hit.d < 1e-5);
          }
        }
      }
    } finally {
      await db.query('RESET enable_seqscan');
    }
  });

  it('loading the same output again changes nothing: no row is rewritten', async () => {
    const before = await snapshot(db, 'pairs');
    const again = await exportToPgvector(big, { url: server.url, table: 'pairs' });
    assert.equal(again.loaded, 80);
    assert.equal(again.written, 0);
    assert.equal(again.unchanged, 80);
    assert.equal(again.deleted, 0);
    assert.equal(await snapshot(db, 'pairs'), before);
  });

  it('--sync after a changed run deletes the ids it lacks (failed rows, a shorter run) and rewrites only the changed row', async () => {
    await exportToPgvector(night1, { url: server.url, table: 'nightly', index: 'none' });
    const plain = await exportToPgvector(night2, { url: server.url, table: 'nightly', index: 'none' });
    assert.equal(plain.deleted, 0);
    assert.equal(plain.tableRows, 80, 'without --sync nothing is deleted');
    assert.equal(plain.written, 1, 'only the row with a new caption differs');
    assert.equal(plain.skipped, 5);
    const synced = await exportToPgvector(night2, { url: server.url, table: 'nightly', index: 'none', sync: true, batchRows: 7 });
    assert.equal(synced.deleted, 15);
    assert.equal(synced.written, 0);
    assert.equal(synced.tableRows, 65);
    const expected = Array.from({ length: 70 }, (_, i) => i).filter((i) => i < 10 || i >= 15);
    assert.deepEqual(await tableIds(db, 'nightly'), expected);
    assert.equal((await db.query('SELECT caption FROM nightly WHERE id = 20')).rows[0].caption, changedCaption);
  });

  it('loads float16 outputs as halfvec(D), exactly, with a halfvec index; --modality image loads one column', async () => {
    const result = await exportToPgvector(half, { url: server.url, table: 'half', modalities: ['image'], index: 'ivfflat' });
    assert.equal(result.loaded, 80);
    const types = (await db.query(`SELECT attname, format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid = 'half'::regclass AND attnum > 4`)).rows;
    assert.deepEqual(types.map((r: { attname: string; t: string }) => `${r.attname} ${r.t}`), [`image_embedding halfvec(${half.dims})`]);
    const index = (await db.query(`SELECT indexdef FROM pg_indexes WHERE tablename = 'half' AND indexdef LIKE '%ivfflat%'`)).rows[0] as { indexdef: string };
    assert.match(index.indexdef, /halfvec_cosine_ops/);
    const block = (await half.blocks('image').next()).value!;
    const first = float16ToFloat32((block.embeddings as Uint16Array).subarray(0, half.dims));
    const stored = (await db.query('SELECT image_embedding::vector::text AS v FROM half WHERE id = $1', [String(block.ids[0])])).rows[0] as { v: string };
    assert.ok(sameVector(stored.v, first), stored.v);
  });

  it('a load killed with SIGKILL after some batches is finished by running it again, without duplicates', async () => {
    const url = server.url;
    const args = ['export', 'pgvector', synthetic, '--url', url, '--table', 'killed', '--batch-rows', '50', '--index', 'none'];
    const child = spawn(process.execPath, [vecmillBin, ...args], { env: { ...process.env, CI: '1' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let batches = 0;
    const killed = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      batches += chunk.split('\n').filter((l) => l.includes('"pgvector-batch"')).length;
      if (batches >= 3) child.kill('SIGKILL');
    });
    assert.equal(await killed, 'SIGKILL');
    const partial = Number((await db.query('SELECT count(*) AS n FROM killed')).rows[0].n);
    assert.ok(partial >= 150 && partial < syntheticRows, `${partial} rows committed before the kill`);
    assert.match(await comment(db, 'killed'), /^vecmill export: INCOMPLETE/);
    const resumed = await runCli(args);
    assert.equal(resumed.code, 0, resumed.stderr);
    const m = /(\d+) loaded \((\d+) written, (\d+) unchanged\)/.exec(resumed.stdout);
    assert.ok(m !== null, resumed.stdout);
    assert.equal(Number(m[1]), syntheticRows);
    assert.equal(Number(m[3]), partial, 'the rows committed before the kill are not rewritten');
    assert.deepEqual(await tableIds(db, 'killed'), Array.from({ length: syntheticRows }, (_, i) => i));
    assert.match(await comment(db, 'killed'), /^vecmill export: complete/);
  });

  describe('every failure is one line, exits non-zero and never shows the password', () => {
    const secret = 'Sup3r-s3cret';
    let postgres: PostgresTestServer | undefined;
    let restricted: PgliteTestServer | undefined;
    const skipPostgres = postgresSkipReason();

    before(async () => {
      [postgres, restricted] = await Promise.all([skipPostgres === false ? startPostgresServer() : undefined, startPgliteServer()]);
    });
    after(async () => {
      await postgres?.stop();
      await restricted?.stop();
    });

    async function fails(args: readonly string[], message: RegExp): Promise<string> {
      const r = await runCli(['export', 'pgvector', ...args]);
      assert.equal(r.code, 1, r.stdout);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, message);
      assert.ok(!r.stderr.includes(secret) && !r.stdout.includes(secret), r.stderr);
      return r.stderr;
    }

    it('connection refused', async () => {
      const port = await freePort();
      const line = await fails([join(dir, 'out'), '--url', `postgres://loader:${secret}@127.0.0.1:${port}/vectors`, '--table', 't'], /cannot connect to PostgreSQL at .*: connection refused.*\[E_DATABASE\]/);
      assert.ok(line.includes(`postgres://loader:***@127.0.0.1:${port}/vectors`), line);
    });

    it('sslmode=require against a server without TLS (a real PostgreSQL)', { skip: skipPostgres }, async () => {
      const url = `postgres://${postgres!.user}:${secret}@127.0.0.1:${postgres!.port}/postgres?sslmode=require`;
      await fails([join(dir, 'out'), '--url', url, '--table', 't'], /cannot connect to PostgreSQL at postgres:\/\/vecmill_admin:\*\*\*@.*\?sslmode=require: the server does not support SSL; use sslmode=disable/);
    });

    it('authentication failure (a real PostgreSQL with scram-sha-256)', { skip: skipPostgres }, async () => {
      const url = `postgres://${postgres!.user}:${secret}@127.0.0.1:${postgres!.port}/postgres`;
      const line = await fails([join(dir, 'out'), '--url', url, '--table', 't'], /refused the password for user "vecmill_admin": check the password in the URL or PGPASSWORD \[E_DATABASE\]/);
      assert.ok(line.includes(`vecmill_admin:***@127.0.0.1:${postgres!.port}`), line);
    });

    it('pgvector not installed on the server (a real PostgreSQL without it)', { skip: skipPostgres }, async () => {
      const url = postgres!.url;
      const r = await runCli(['export', 'pgvector', join(dir, 'out'), '--url', url, '--table', 't']);
      assert.equal(r.code, 1);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /does not have pgvector installed \(extension "vector" is not available\)/);
      assert.ok(!r.stderr.includes(postgres!.password), r.stderr);
    });

    it('no privilege to create the extension', async () => {
      // PGlite serves every connection from one backend session, so a role set here is the role the export runs as.
      const admin = await restricted!.client();
      await admin.query('CREATE ROLE loader NOSUPERUSER');
      await admin.query('SET ROLE loader');
      await fails([join(dir, 'out'), '--url', restricted!.url.replace(':postgres@', `:${secret}@`), '--table', 't'], /permission denied while creating the vector extension \(permission denied to create extension "vector"\)/);
      await admin.query('RESET ROLE');
    });

    it('a table of another shape is refused and left untouched', async () => {
      await db.query('CREATE TABLE other (id bigint PRIMARY KEY, caption text, source text, byte_offset bigint, image_embedding vector(3))');
      const url = server.url.replace(':postgres@', `:${secret}@`);
      await fails(
        [join(dir, 'out'), '--url', url, '--table', 'other'],
        new RegExp(`table "other" at postgres://postgres:\\*\\*\\*@127\\.0\\.0\\.1:${server.port}/postgres does not fit this output: image_embedding is vector\\(3\\), this output needs vector\\(${big.dims}\\); it has no text_embedding column`),
      );
      assert.equal(Number((await db.query('SELECT count(*) AS n FROM other')).rows[0].n), 0);
      assert.equal((await db.query(`SELECT obj_description('other'::regclass, 'pg_class') AS c`)).rows[0].c, null);
    });

    it('an output without _SUCCESS', async () => {
      await cp(join(dir, 'out'), join(dir, 'unpublished'), { recursive: true });
      await rm(join(dir, 'unpublished', '_SUCCESS'));
      await fails([join(dir, 'unpublished'), '--url', server.url.replace(':postgres@', `:${secret}@`), '--table', 'pairs'], /holds no published run \(no _SUCCESS\).*\[E_INPUT\]/);
    });
  });
});
