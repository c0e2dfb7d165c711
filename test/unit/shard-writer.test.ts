import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { COLUMNS, readEmbeddingTable } from '@vecmill/shared/formats/embedding-table';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { parseNpyHeader } from '@vecmill/shared/formats/npy-writer';
import { readParquet } from '@vecmill/shared/formats/parquet-io';
import { ChunkSlots } from '@vecmill/worker/chunk-slots';
import { ShardWriter } from '@vecmill/worker/shard-writer';
import { storeTestPlan, testPlan } from '../support/test-plan.js';
import { makeTempDir } from '../support/tmp.js';

const D = 4;
const table = { dims: D, outDtype: 'float32', hasText: true, hasImage: false } as const;

/** Appends `batches` batches of `size` consecutive rows; row r's vector is all r. */
async function fill(writer: ShardWriter, batches: number, size: number): Promise<void> {
  for (let b = 0; b < batches; b++) {
    const lines = Array.from({ length: size }, (_, i) => b * size + i);
    await writer.append({
      splitIndex: 2,
      source: 'in.tsv',
      lineIndex: lines,
      offset: lines.map((l) => l * 10),
      text: lines.map((l) => `caption ${l}`),
      textEmbedding: Float32Array.from({ length: size * D }, (_, i) => lines[Math.floor(i / D)]!),
      errors: lines.map((l) => (l % 7 === 3 ? { reason: 'empty_text', message: 'm' } : null)),
    });
  }
}

describe('ShardWriter', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => {
    ({ dir, cleanup } = await makeTempDir('shard-writer'));
    await storeTestPlan(new LocalStore(dir), testPlan({ splits: 12, kind: 'text', dims: D, formats: ['parquet', 'npy', 'tsv'] }));
  });
  after(() => cleanup());

  it('cuts chunks at exactly maxRows, across batch boundaries, and stages each chunk\'s final files with their sha256', async () => {
    const store = new LocalStore(dir);
    const writer = new ShardWriter(store, { splitIndex: 2, attempt: 'a1', table, chunk: { maxRows: 5 } });
    await fill(writer, 4, 3);
    const files = await writer.finish();
    const parts = files.filter((f) => f.role === 'part');
    assert.deepEqual(parts.map((f) => f.rows), [5, 5, 2]);
    assert.deepEqual(parts.map((f) => f.key), [0, 1, 2].map((k) => `embeddings/part-000002-00000${k}.parquet`));
    assert.deepEqual(parts.map((f) => f.staged), [0, 1, 2].map((k) => `shards/split-000002/a1/embeddings/part-000002-00000${k}.parquet`));
    // Lines 3 and 10 fail (l % 7 === 3): chunk 0 holds line 3, chunk 2 line 10.
    assert.deepEqual(
      files.map((f) => `${f.role}:${f.key.split('/')[0]}:${f.rows}`),
      [
        ...['part:embeddings:5', 'npy-text:text_emb:4', 'metadata:metadata:4', 'errors:errors:1', 'tsv-text:text_feat:5'],
        ...['part:embeddings:5', 'npy-text:text_emb:5', 'metadata:metadata:5', 'tsv-text:text_feat:5'],
        ...['part:embeddings:2', 'npy-text:text_emb:1', 'metadata:metadata:1', 'errors:errors:1', 'tsv-text:text_feat:2'],
      ],
    );
    for (const f of files) {
      const bytes = await store.read(f.staged);
      assert.equal(createHash('sha256').update(bytes).digest('hex'), f.sha256);
      assert.equal(bytes.byteLength, f.bytes);
      assert.equal(await store.exists(f.key), false, 'nothing reaches a final name before the commit');
    }
    let line = 0;
    for (const f of parts) {
      const t = readEmbeddingTable(await store.read(f.staged), f.key);
      assert.deepEqual([...(t.table.getChild(COLUMNS.lineIndex)!.toArray() as Int32Array)], Array.from({ length: f.rows }, (_, i) => line + i));
      for (let r = 0; r < t.numRows; r++) {
        const l = line + r;
        assert.equal(t.row(r).rowIndex, 2 * 2 ** 32 + l, 'id = split × 2^32 + line');
        assert.deepEqual(t.row(r).textEmbedding, l % 7 === 3 ? null : new Float32Array(D).fill(l));
        assert.equal(t.row(r).text, `caption ${l}`);
      }
      line += f.rows;
    }
    assert.equal(line, 12);
    const npy = await store.read(files.find((f) => f.role === 'npy-text')!.staged);
    const header = parseNpyHeader(npy);
    assert.deepEqual(header.shape, [4, D]);
    assert.deepEqual([...new Float32Array(npy.buffer.slice(npy.byteOffset + header.dataOffset, npy.byteOffset + npy.byteLength))], [0, 1, 2, 4].flatMap((l) => new Array<number>(D).fill(l)));
    const meta = readParquet(await store.read(files.find((f) => f.role === 'metadata')!.staged));
    assert.deepEqual([...(meta.getChild('id')!.toArray() as BigInt64Array)], [0n, 1n, 2n, 4n].map((l) => 2n * 2n ** 32n + l));
  });

  it('keeps every chunk\'s .npy intact while the next chunks are built in reused buffers during slow uploads', async () => {
    const store = new LocalStore(dir);
    // Each put starts writing only after a delay, so it reads its bytes while later chunks are built.
    const slow = Object.assign(Object.create(store) as LocalStore, {
      put: async (key: string, body: Uint8Array) => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        return store.put(key, body);
      },
    });
    const writer = new ShardWriter(slow, { splitIndex: 2, attempt: 'a6', table, chunk: { maxRows: 5 }, batchRows: 3 });
    await fill(writer, 8, 3);
    const npys = (await writer.finish()).filter((f) => f.role === 'npy-text');
    assert.equal(npys.length, 5);
    const lines = Array.from({ length: 24 }, (_, l) => l);
    const okLines = [0, 5, 10, 15, 20].map((first) => lines.slice(first, first + 5).filter((l) => l % 7 !== 3));
    for (const [k, f] of npys.entries()) {
      const npy = await store.read(f.staged);
      const header = parseNpyHeader(npy);
      assert.deepEqual(header.shape, [okLines[k]!.length, D]);
      const values = new Float32Array(npy.buffer.slice(npy.byteOffset + header.dataOffset, npy.byteOffset + npy.byteLength));
      assert.deepEqual([...values], okLines[k]!.flatMap((l) => new Array<number>(D).fill(l)), `chunk ${k}`);
    }
  });

  it('closes a chunk once its bytes pass maxBytes, and writes no file for no rows', async () => {
    const store = new LocalStore(dir);
    const writer = new ShardWriter(store, { splitIndex: 2, attempt: 'a2', table, chunk: { maxBytes: 1 } });
    await fill(writer, 3, 4);
    assert.deepEqual((await writer.finish()).filter((f) => f.role === 'part').map((f) => f.rows), [4, 4, 4]);
    assert.deepEqual(await new ShardWriter(store, { splitIndex: 3, attempt: 'a3', table }).finish(), []);
  });

  it('refuses rows that are not the next lines of its split (the basis of unique ids)', async () => {
    const store = new LocalStore(dir);
    const writer = new ShardWriter(store, { splitIndex: 5, attempt: 'a5', table, chunk: { maxRows: 2 } });
    await assert.rejects(fill(writer, 1, 4), { code: 'E_COMMIT', message: /chunk row 0 is line 0 of split 2, expected line 0 of split 5/ });
  });

  it('fails the split when an upload fails', async () => {
    const store = new LocalStore(dir);
    const failing = Object.assign(Object.create(store) as LocalStore, { put: () => Promise.reject(new Error('disk full')) });
    const writer = new ShardWriter(failing, { splitIndex: 2, attempt: 'a4', table, chunk: { maxRows: 2 } });
    await assert.rejects(async () => {
      await fill(writer, 3, 2);
      await writer.finish();
    }, /disk full/);
  });

  it('builds and uploads one chunk at a time across the writers that share one chunk slot', async () => {
    const local = new LocalStore(dir);
    const inFlight = new Map<string, number>();
    let most = 0;
    // Every put takes a few milliseconds, so the uploads of two chunks would overlap without the slot.
    const put = async (key: string, body: Uint8Array): Promise<void> => {
      const chunk = key.replace(/^.*(\d{6}-\d{6})\.\w+$/, '$1');
      inFlight.set(chunk, (inFlight.get(chunk) ?? 0) + 1);
      most = Math.max(most, inFlight.size);
      await new Promise((resolve) => setTimeout(resolve, 3));
      await local.put(key, body);
      const left = inFlight.get(chunk)! - 1;
      if (left === 0) inFlight.delete(chunk);
      else inFlight.set(chunk, left);
    };
    const store = new Proxy(local, { get: (target, name) => (name === 'put' ? put : (Reflect.get(target, name) as unknown)) });
    const slots = new ChunkSlots(1);
    const write = async (splitIndex: number): Promise<number> => {
      const writer = new ShardWriter(store, { splitIndex, attempt: `slots${splitIndex}`, table, chunk: { maxRows: 4 }, chunkSlots: slots });
      for (let b = 0; b < 6; b++) {
        const lines = [2 * b, 2 * b + 1];
        await writer.append({ splitIndex, source: 'in.tsv', lineIndex: lines, offset: lines, text: lines.map(String), textEmbedding: new Float32Array(2 * D).fill(splitIndex) });
      }
      return (await writer.finish()).filter((f) => f.role === 'part').length;
    };
    assert.deepEqual(await Promise.all([write(4), write(5)]), [3, 3]);
    assert.equal(most, 1, 'no two chunks were uploading at once');
  });
});
