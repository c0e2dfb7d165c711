import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, StorageError } from '@vecmill/shared/errors';
import { readSplitLineGroups, readSplitLines } from '@vecmill/shared/tsv/line-reader';
import type { LineReaderOptions } from '@vecmill/shared/tsv/line-reader';
import { planSplits } from '@vecmill/shared/tsv/split-planner';
import type { Split } from '@vecmill/shared/tsv/split-planner';
import { MemoryStore } from '../support/memory-store.js';
import type { Segment } from '../support/memory-store.js';

/** A line as tests compare it: offset, text (latin1 so any byte survives) and the tooLong flag. */
type Seen = [offset: number, text: string] | [offset: number, text: string, tooLong: true];

async function readLines(store: MemoryStore, split: Split, options: LineReaderOptions = {}): Promise<Seen[]> {
  const seen: Seen[] = [];
  for await (const line of readSplitLines(store, split, options)) {
    seen.push(line.tooLong === true ? [line.offset, line.bytes.toString('latin1'), true] : [line.offset, line.bytes.toString('latin1')]);
  }
  return seen;
}

function storeWith(content: string | Buffer, chunkSize = 7): MemoryStore {
  const store = new MemoryStore({ chunkSize });
  store.putSegments('f.tsv', [typeof content === 'string' ? Buffer.from(content, 'latin1') : content]);
  return store;
}

function split(start: number, end: number, objectSize: number, index = 0): Split {
  return { index, key: 'f.tsv', etag: 'e', start, end, objectSize };
}

/** Reads the object cut at the given boundaries and returns each split's lines. */
async function readCut(content: string, boundaries: number[], options: LineReaderOptions = {}, chunkSize = 7): Promise<Seen[][]> {
  const store = storeWith(content, chunkSize);
  const size = Buffer.byteLength(content, 'latin1');
  const cuts = [0, ...boundaries, size];
  const result: Seen[][] = [];
  for (let i = 0; i + 1 < cuts.length; i++) result.push(await readLines(store, split(cuts[i] as number, cuts[i + 1] as number, size, i), options));
  return result;
}

/** The reference: a naive whole-buffer splitter implementing the documented line rules. */
function referenceLines(content: Buffer, maxLineBytes: number): Seen[] {
  const lines: Seen[] = [];
  let start = 0;
  while (start < content.length) {
    let nl = content.indexOf(0x0a, start);
    if (nl === -1) nl = content.length;
    let text = content.toString('latin1', start, nl);
    if (start === 0 && text.startsWith('\xef\xbb\xbf')) text = text.slice(3);
    if (text.endsWith('\r')) text = text.slice(0, -1);
    lines.push(text.length > maxLineBytes ? [start, '', true] : [start, text]);
    start = nl + 1;
  }
  return lines;
}

/** Mulberry32: a tiny seeded PRNG so the property test is reproducible. */
function prng(seed: number): (below: number) => number {
  let a = seed >>> 0;
  return (below) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * below);
  };
}

describe('readSplitLines ownership at split boundaries', () => {
  const content = 'ab\ncd\nef\n';

  it('gives the line starting exactly at a boundary to the later split', async () => {
    assert.deepEqual(await readCut(content, [3]), [[[0, 'ab']], [[3, 'cd'], [6, 'ef']]]);
  });

  it('gives a line to the earlier split when the boundary is one byte after its start', async () => {
    assert.deepEqual(await readCut(content, [4]), [[[0, 'ab'], [3, 'cd']], [[6, 'ef']]]);
  });

  it('gives the next line to the later split when the boundary falls on a newline', async () => {
    assert.deepEqual(await readCut(content, [2]), [[[0, 'ab']], [[3, 'cd'], [6, 'ef']]]);
  });

  it('lets a line longer than a split be read whole by the split holding its first byte', async () => {
    const long = '0123456789abcdef\nx\n';
    const parts = await readCut(long, [3, 6, 9, 12, 15, 18], {}, 2);
    assert.deepEqual(parts, [[[0, '0123456789abcdef']], [], [], [], [], [[17, 'x']], []]);
  });

  it('strips CR before LF but keeps a lone CR inside a line', async () => {
    assert.deepEqual(await readCut('a\r\nb\rc\r\n\r\nd', [2, 3]), [[[0, 'a']], [], [[3, 'b\rc'], [8, ''], [10, 'd']]]);
  });

  it('reads a last line without a final newline', async () => {
    assert.deepEqual(await readCut('a\nbcd', [3]), [[[0, 'a'], [2, 'bcd']], []]);
    assert.deepEqual(await readCut('a\nbcd', [2]), [[[0, 'a']], [[2, 'bcd']]]);
  });

  it('yields blank lines with their offsets', async () => {
    assert.deepEqual(await readCut('\n\na\n\n', []), [[[0, ''], [1, ''], [2, 'a'], [4, '']]]);
    assert.deepEqual(await readCut('\n\na\n\n', [1, 2, 3, 4]), [[[0, '']], [[1, '']], [[2, 'a']], [], [[4, '']]]);
  });

  it('plans no splits for an empty file, so nothing is read', async () => {
    assert.deepEqual(planSplits([{ key: 'f.tsv', size: 0, etag: 'e' }], 10), []);
  });

  it('strips a UTF-8 BOM from the first line only, wherever the first split ends', async () => {
    const bom = '\xef\xbb\xbf';
    const content = `${bom}a\n${bom}b\n`;
    for (const cut of [1, 2, 3, 4, 5]) {
      const parts = await readCut(content, [cut]);
      assert.deepEqual(parts.flat(), [
        [0, 'a'],
        [5, `${bom}b`],
      ], `cut at ${cut}`);
      assert.deepEqual(parts[0], cut <= 5 ? [[0, 'a']] : [[0, 'a'], [5, `${bom}b`]]);
    }
  });
});

describe('readSplitLines with over-long lines', () => {
  it('marks lines longer than maxLineBytes and keeps the following offsets right', async () => {
    const parts = await readCut('abcdef\nabc\nabcde\r\nabcdef\r', [8], { maxLineBytes: 5 }, 2);
    assert.deepEqual(parts, [
      [
        [0, '', true],
        [7, 'abc'],
      ],
      [
        [11, 'abcde'],
        [18, '', true],
      ],
    ]);
  });

  it('skips a 256 MiB line without buffering it and reads the next line at the right offset', async () => {
    const lineLength = 256 * 1024 * 1024;
    const store = new MemoryStore({ chunkSize: 64 * 1024 });
    const segments: Segment[] = [Buffer.from('first\n'), { fill: 0x41, length: lineLength }, Buffer.from('\nnext\n')];
    store.putSegments('huge.tsv', segments);
    const size = 6 + lineLength + 6;
    const global = globalThis as { gc?: () => void };
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const seen: Seen[] = [];
    const huge = { index: 0, key: 'huge.tsv', etag: 'e', start: 0, end: 10, objectSize: size };
    for await (const line of readSplitLines(store, huge, { maxLineBytes: 1024 * 1024 })) {
      seen.push(line.tooLong === true ? [line.offset, '', true] : [line.offset, line.bytes.toString()]);
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    }
    assert.deepEqual(seen, [
      [0, 'first'],
      [6, '', true],
    ]);
    const growth = rssPeak - rssBefore;
    // Garbage chunks awaiting GC account for a few tens of MiB; buffering the line would add 256.
    assert.ok(growth < 96 * 1024 * 1024, `RSS grew by ${Math.round(growth / 2 ** 20)} MiB while skipping a ${lineLength / 2 ** 20} MiB line`);

    const rest: Seen[] = [];
    for await (const line of readSplitLines(store, { index: 1, key: 'huge.tsv', etag: 'e', start: 10, end: size, objectSize: size })) {
      rest.push([line.offset, line.bytes.toString()]);
    }
    assert.deepEqual(rest, [[6 + lineLength + 1, 'next']]);
  });
});

describe('readSplitLines reads only what it needs', () => {
  it('stops reading once the line straddling the split end is complete', async () => {
    const content = Buffer.from(Array.from({ length: 1000 }, (_, i) => `line-${i}`).join('\n'));
    const store = storeWith(content, 16);
    const lines = await readLines(store, split(0, 20, content.length), { readAheadBytes: 8 });
    assert.deepEqual(lines, [
      [0, 'line-0'],
      [7, 'line-1'],
      [14, 'line-2'],
    ]);
    assert.deepEqual(store.rangeReads, [
      { key: 'f.tsv', start: 0, end: 20 },
      { key: 'f.tsv', start: 20, end: 28 },
    ]);
  });

  it('reads from the byte before the split start, with one request when the split ends on a line end', async () => {
    const store = storeWith('aa\nbb\ncc\n');
    assert.deepEqual(await readLines(store, split(3, 6, 9)), [[3, 'bb']]);
    assert.deepEqual(store.rangeReads, [{ key: 'f.tsv', start: 2, end: 6 }]);
  });

  it('throws StorageError when the object is shorter than planned', async () => {
    const store = storeWith('aa\nbb');
    await assert.rejects(readLines(store, split(0, 4, 10)), (err: unknown) => err instanceof StorageError && /changed after planning/.test(err.message));
  });

  it('rejects invalid options with ConfigError', async () => {
    const store = storeWith('a\n');
    await assert.rejects(readLines(store, split(0, 2, 2), { maxLineBytes: 0 }), ConfigError);
    await assert.rejects(readLines(store, split(0, 2, 2), { readAheadBytes: 1.5 }), ConfigError);
  });
});

describe('readSplitLines property: every line exactly once for any split size', () => {
  it('matches a naive splitter over random files, split sizes, chunk sizes and line limits', async () => {
    const random = prng(20240611);
    const pieces = ['', 'a', 'hello world', 'x'.repeat(40), 'tab\tsep', '\xc3\xa9t\xc3\xa9', 'r\rmid', '\xef\xbb\xbfbom'];
    let combinations = 0;
    for (let file = 0; file < 12; file++) {
      let text = random(3) === 0 ? '\xef\xbb\xbf' : '';
      const lineCount = 1 + random(60);
      for (let l = 0; l < lineCount; l++) {
        text += random(5) === 0 ? 'z'.repeat(random(300)) : (pieces[random(pieces.length)] as string);
        if (l < lineCount - 1 || random(2) === 0) text += random(3) === 0 ? '\r\n' : '\n';
      }
      const content = Buffer.from(text, 'latin1');
      const store = new MemoryStore();
      store.putSegments('f.tsv', [content]);
      const sizes = [1, 2, 3, content.length, content.length + 5, ...Array.from({ length: 20 }, () => 1 + random(content.length + 10))];
      for (const splitSize of sizes) {
        store.chunkSize = 1 + random(20);
        const maxLineBytes = random(2) === 0 ? 1 + random(60) : 1024;
        const options: LineReaderOptions = { maxLineBytes, readAheadBytes: 1 + random(40) };
        const all: Seen[] = [];
        for (const s of planSplits([{ key: 'f.tsv', size: content.length, etag: 'e' }], splitSize)) {
          const lines = await readLines(store, s, options);
          for (const line of lines) assert.ok(line[0] >= s.start && line[0] < s.end, `line at ${line[0]} outside split ${s.start}-${s.end}`);
          all.push(...lines);
        }
        assert.deepEqual(all, referenceLines(content, maxLineBytes), `file ${file}, split size ${splitSize}, chunk ${store.chunkSize}, max ${maxLineBytes}`);
        combinations++;
      }
    }
    assert.ok(combinations >= 250);
  });
});

describe('readSplitLineGroups', () => {
  it('yields the lines of readSplitLines in non-empty groups, one per chunk that ends lines', async () => {
    const content = 'alpha\nb\n\ncc\r\nover-long-line-here\nlast';
    for (const chunkSize of [1, 3, 7, 64]) {
      const store = storeWith(content, chunkSize);
      for (const [start, end] of [[0, content.length], [4, 20], [6, content.length]] as const) {
        const s = split(start, end, content.length);
        const groups: Seen[][] = [];
        for await (const group of readSplitLineGroups(store, s, { maxLineBytes: 10 })) {
          groups.push(group.map((l) => (l.tooLong === true ? [l.offset, l.bytes.toString('latin1'), true] : [l.offset, l.bytes.toString('latin1')])));
        }
        assert.ok(groups.every((g) => g.length > 0), `chunk ${chunkSize}, split ${start}-${end}`);
        assert.deepEqual(groups.flat(), await readLines(store, s, { maxLineBytes: 10 }), `chunk ${chunkSize}, split ${start}-${end}`);
        if (chunkSize === 64 && start === 0) assert.equal(groups.length, 2, 'every line a 64-byte chunk ends comes in one group, the unterminated last line in its own');
      }
    }
  });

  it('cuts a chunk\'s lines into groups of at most maxGroupLines', async () => {
    const content = 'a\nb\nc\nd\ne\nf\ng';
    const store = storeWith(content, 64);
    const s = split(0, content.length, content.length);
    const groups: string[][] = [];
    for await (const group of readSplitLineGroups(store, s, { maxGroupLines: 2 })) groups.push(group.map((l) => l.bytes.toString('latin1')));
    assert.deepEqual(groups, [['a', 'b'], ['c', 'd'], ['e', 'f'], ['g']]);
    await assert.rejects(async () => {
      for await (const group of readSplitLineGroups(store, s, { maxGroupLines: 0 })) assert.fail(`yielded ${group.length} lines`);
    }, /maxGroupLines must be a positive whole number of lines/);
  });
});
