// A split's memory is bounded by configuration, not by its rows (issue 10 §1): one split of
// 200,000 short captions streams into several chunks, each becomes its own final files at
// commit, publishing lists them, and every count balances.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { COLUMNS, readEmbeddingTable } from '@vecmill/shared/formats/embedding-table';
import { parseNpyHeader } from '@vecmill/shared/formats/npy-writer';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { runEmbedded } from 'vecmill/embedded-run';
import { readShardMarker } from '@vecmill/worker/shard-commit';
import { DEFAULT_SHARD_CHUNK_OPTIONS } from '@vecmill/worker/shard-writer';
import { assertNoNullVectors, parquetFilesUnder } from '../support/parquet-vectors.js';
import { runConfig } from '../support/run-helpers.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

const ROWS = 200_000;
/** Blank lines are error rows: they must come out as zero vectors inside the chunks too. */
const blank = (i: number): boolean => i % 40_000 === 123;
const caption = (i: number): string => (blank(i) ? '' : `${['red', 'blue', 'small'][i % 3]} shoe ${i}`);

describe('one split of 200,000 captions streams into bounded chunk files', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ dir, cleanup } = await makeTempDir('streaming')));
  after(() => cleanup());

  it('publishes every row once, in order, from several chunks of one split', async () => {
    const input = join(dir, 'captions.tsv');
    writeFileSync(input, `${Array.from({ length: ROWS }, (_, i) => caption(i)).join('\n')}\n`);
    const out = join(dir, 'out');
    const r = await runEmbedded(runConfig(['--input', input, '--model', await tinyModelDir(), '--output', out, '--kind', 'text', '--split-size', '1GiB']), () => undefined);
    const failed = Array.from({ length: ROWS }, (_, i) => i).filter(blank).length;
    assert.equal(r.manifest.splits, 1);
    assert.deepEqual([r.manifest.rows.in, r.manifest.rows.ok, r.manifest.rows.failed], [ROWS, ROWS - failed, failed]);

    const marker = (await readShardMarker(new LocalStore(out), 0))!;
    assert.ok(marker.version === 3);
    const chunks = marker.files.filter((f) => f.role === 'part');
    assert.ok(chunks.length > 1, `the split was written as ${chunks.length} chunk(s)`);
    assert.ok(marker.files.every((f) => f.rows <= DEFAULT_SHARD_CHUNK_OPTIONS.maxRows && f.bytes > 0 && /^[0-9a-f]{64}$/.test(f.sha256)));
    assert.equal(chunks.reduce((a, f) => a + f.rows, 0), ROWS);

    const parts = r.manifest.files.filter((f) => f.key.startsWith('embeddings/')).sort((a, b) => a.key.localeCompare(b.key));
    assert.deepEqual(parts.map((p) => p.key), chunks.map((c) => c.key), 'one part per chunk');
    let next = 0;
    for (const part of parts) {
      const t = readEmbeddingTable(readFileSync(join(out, part.key)), part.key);
      const ids = t.table.getChild(COLUMNS.rowIndex)!.toArray() as BigInt64Array;
      // Split 0: ids (split × 2^32 + line) are the lines, and the manifest's positions match.
      assert.equal(Number(ids[0]), next, `${part.key} starts at row ${next}`);
      assert.equal(Number(ids[ids.length - 1]), next + t.numRows - 1);
      assert.deepEqual([part.firstRow, part.firstId], [next, next]);
      for (const i of [0, t.numRows - 1]) {
        const row = t.row(i);
        assert.equal(row.lineIndex, next + i);
        assert.equal(row.status, blank(next + i) ? 'error' : 'ok');
        if (!blank(next + i)) assert.equal(row.text, caption(next + i));
      }
      next += t.numRows;
    }
    assert.equal(next, ROWS);

    const npyRows = readdirSync(join(out, 'text_emb')).reduce((a, f) => a + parseNpyHeader(readFileSync(join(out, 'text_emb', f))).shape[0]!, 0);
    assert.equal(npyRows, ROWS - failed);
    const checked = await assertNoNullVectors(parquetFilesUnder(out));
    assert.equal(checked.filter((n) => n > 0).length, parts.length, 'the parts hold vector columns, and no staged copy is left');
  });
});
