import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import type { RowErrorReason } from '@vecmill/shared/errors';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { readShardMarker } from '@vecmill/worker/shard-commit';
import { runEmbedded } from 'vecmill/embedded-run';
import { readParts, runConfig } from '../support/run-helpers.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

/**
 * Seeded fuzzing of the whole pipeline: each case is a valid pairs TSV with one to four random
 * mutations (byte flips, truncation, inserted tabs and newlines, runs of junk, deleted and
 * duplicated ranges). Many cases go into one run as separate input files, with a small random
 * split size, so a few hundred cases cost a handful of runs. Every run must finish (no crash, no
 * hang) with balanced counts, every file must yield exactly the lines it has, and a line that
 * survived the mutations intact must still embed. A failure names the run seed to replay.
 */

const RUNS = 10;
const FILES_PER_RUN = 30;
const RUN_TIMEOUT_MS = 30_000;
const REASONS: ReadonlySet<string> = new Set<RowErrorReason>([
  'bad_base64',
  'not_an_image',
  'corrupt_image',
  'too_many_pixels',
  'unsupported_format',
  'bad_utf8',
  'missing_field',
  'extra_field',
  'line_too_long',
  'empty_text',
  'embed_failed',
]);

/** xorshift32, so a failing seed replays the same files anywhere. */
function seeded(seed: number): { int(n: number): number; pick<T>(xs: readonly T[]): T } {
  let s = seed >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  return { int: (n) => Math.floor(next() * n), pick: (xs) => xs[Math.floor(next() * xs.length)]! };
}

type Mutation = (b: Buffer, r: ReturnType<typeof seeded>) => Buffer;

const mutations: Record<string, Mutation> = {
  flipBytes: (b, r) => {
    const out = Buffer.from(b);
    for (let i = 1 + r.int(8); i > 0 && out.length > 0; i--) out[r.int(out.length)] = r.int(256);
    return out;
  },
  truncate: (b, r) => b.subarray(0, r.int(b.length + 1)),
  insertTabs: (b, r) => insert(b, r, Buffer.from('\t'.repeat(1 + r.int(3)))),
  insertNewlines: (b, r) => insert(b, r, Buffer.from(r.pick(['\n', '\n\n', '\r\n', '\r']))),
  junkRun: (b, r) => {
    const junk = r.int(2) === 0 ? Buffer.alloc(50 + r.int(6000), r.pick([0x00, 0x41, 0xff, 0x2f, 0x3d, 0x09])) : Buffer.from(Array.from({ length: 50 + r.int(3000) }, () => r.int(256)));
    return insert(b, r, junk);
  },
  deleteRange: (b, r) => {
    const at = r.int(b.length + 1);
    return Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + r.int(2000)))]);
  },
  duplicateRange: (b, r) => {
    const at = r.int(b.length + 1);
    return insert(b, r, b.subarray(at, at + 1 + r.int(3000)));
  },
  bomAndCrlf: (b) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(b.toString('latin1').replace(/\n/g, '\r\n'), 'latin1')]),
};

function insert(b: Buffer, r: ReturnType<typeof seeded>, piece: Buffer): Buffer {
  const at = r.int(b.length + 1);
  return Buffer.concat([b.subarray(0, at), piece, b.subarray(at)]);
}

/** Lines of a file by the ownership rule: every `\n` ends one, and trailing bytes without one are a last line. */
function linesOf(file: Buffer): { offset: number; bytes: Buffer }[] {
  const out: { offset: number; bytes: Buffer }[] = [];
  let start = 0;
  for (let nl = file.indexOf(0x0a); nl !== -1; nl = file.indexOf(0x0a, start)) {
    out.push({ offset: start, bytes: file.subarray(start, nl) });
    start = nl + 1;
  }
  if (start < file.length) out.push({ offset: start, bytes: file.subarray(start) });
  return out;
}

/** A line as the reader hands it on: without one trailing `\r`, and without a BOM at offset 0. */
function readerView(line: { offset: number; bytes: Buffer }): Buffer {
  let b = line.bytes;
  if (line.offset === 0 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) b = b.subarray(3);
  return b[b.length - 1] === 0x0d ? b.subarray(0, -1) : b;
}

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms (hang?)`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

describe('fuzzing the whole pipeline with mutated pairs files', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let model: string;
  let base: Buffer;
  let goodLines: Set<string>;

  before(async () => {
    ({ dir, cleanup } = await makeTempDir('fuzz'));
    model = await tinyModelDir();
    await makeDataset({ path: join(dir, 'base.tsv'), rows: 8, kind: 'pairs', seed: 77, imageSize: 24, distinctImages: 8 });
    base = readFileSync(join(dir, 'base.tsv'));
    goodLines = new Set(linesOf(base).map((l) => l.bytes.toString('latin1')));
  });
  after(() => cleanup());

  for (let run = 0; run < RUNS; run++) {
    const seed = 1000 + run;
    it(`run seed ${seed}: ${FILES_PER_RUN} mutated files, no crash or hang, every line accounted for`, async () => {
      const r = seeded(seed);
      const files = new Map<string, { bytes: Buffer; applied: string[] }>();
      for (let f = 0; f < FILES_PER_RUN; f++) {
        let bytes: Buffer = base;
        const applied: string[] = [];
        for (let m = 1 + r.int(4); m > 0; m--) {
          const name = r.pick(Object.keys(mutations));
          bytes = mutations[name]!(bytes, r);
          applied.push(name);
        }
        const path = join(dir, `run${seed}`, `case-${String(f).padStart(2, '0')}.tsv`);
        files.set(path, { bytes, applied });
      }
      mkdirSync(join(dir, `run${seed}`), { recursive: true });
      for (const [path, { bytes }] of files) writeFileSync(path, bytes);
      const splitSize = 512 + r.int(16 * 1024);
      const out = join(dir, `out${seed}`);

      const result = await withTimeout(
        runEmbedded(runConfig(['--input', join(dir, `run${seed}`), '--model', model, '--output', out, '--kind', 'pairs', '--split-size', String(splitSize), '--batch-size', '7', '--max-line-bytes', '4KiB']), () => undefined),
        RUN_TIMEOUT_MS,
        `run seed ${seed}`,
      );
      const m = result.manifest;
      const expected = [...files.values()].reduce((n, f) => n + linesOf(f.bytes).length, 0);
      assert.equal(m.rows.in, expected, `rows in = lines in the files (split size ${splitSize})`);
      assert.equal(m.rows.in, m.rows.ok + m.rows.failed);
      for (const reason of Object.keys(m.rows.failedByReason)) assert.ok(REASONS.has(reason), `known reason ${reason}`);

      const store = new LocalStore(out);
      let markerRows = 0;
      for (let s = 0; s < m.splits; s++) {
        const marker = await readShardMarker(store, s);
        assert.ok(marker !== undefined, `split ${s} committed`);
        assert.equal(marker.rowsIn, marker.rowsOk + marker.rowsFailed, `split ${s} balances`);
        markerRows += marker.rowsIn;
      }
      assert.equal(markerRows, m.rows.in);

      const rowsBySource = new Map<string, Map<number, { ok: boolean; reason: string | null }>>();
      for (const t of await readParts(store, m)) {
        for (let i = 0; i < t.numRows; i++) {
          const row = t.row(i);
          const bySource = rowsBySource.get(row.source) ?? new Map<number, { ok: boolean; reason: string | null }>();
          assert.ok(!bySource.has(row.offset), `offset ${row.offset} of ${row.source} appears once`);
          bySource.set(row.offset, { ok: row.status === 'ok', reason: row.errorReason });
          rowsBySource.set(row.source, bySource);
        }
      }
      for (const [path, { bytes, applied }] of files) {
        const lines = linesOf(bytes);
        const rows = rowsBySource.get(path) ?? new Map<number, { ok: boolean; reason: string | null }>();
        assert.deepEqual([...rows.keys()].sort((a, b) => a - b), lines.map((l) => l.offset), `${path} (${applied.join(', ')}): one row per line, at its offset`);
        for (const line of lines) {
          if (!goodLines.has(readerView(line).toString('latin1'))) continue;
          const row = rows.get(line.offset);
          assert.ok(row?.ok === true, `${path} (${applied.join(', ')}): an intact line at ${line.offset} embeds, got ${row?.reason ?? 'nothing'}`);
        }
      }
    });
  }
});
