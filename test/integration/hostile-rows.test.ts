import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { crc32, deflateSync } from 'node:zlib';
import sharp, { type Sharp } from 'sharp';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import type { EmbeddedRow } from '@vecmill/shared/formats/embedding-table';
import { readParquet } from '@vecmill/shared/formats/parquet-io';
import type { Manifest } from '@vecmill/shared/manifest';
import { outputKeys } from '@vecmill/shared/run-plan';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { readShardMarker } from '@vecmill/worker/shard-commit';
import { runEmbedded } from 'vecmill/embedded-run';
import { fixturesSkipReason, sharedFixturesDir } from '../support/fixtures.js';
import { readErrors, readParts, runConfig } from '../support/run-helpers.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';
import { assertNoNullVectors, parquetFilesUnder } from '../support/parquet-vectors.js';

/**
 * Every hostile row the issue lists, each crafted into one line of a pairs file between two good
 * lines, run once through `runEmbedded` with small splits. Each case then checks its own row: the
 * status or error reason (in the parts and in errors/errors.parquet), that both neighbours
 * embedded, and for accepted oddities that the embedding is the one an equivalent clean image or
 * caption gets. Cases already covered by run-embedded-kinds (no tab, three columns, `!!!` base64,
 * a text file as image, one empty line) are not repeated.
 */

/** What a case expects of its row. */
type Expect = { status: 'ok' } | { status: 'error'; reason: string };

interface Case {
  readonly name: string;
  /** The crafted line, without its line ending (`ending` gives one). */
  readonly line: (k: Kit) => Promise<Buffer> | Buffer;
  readonly expect: Expect;
  /** Line ending after the crafted line (default `\n`). */
  readonly ending?: string;
  /** Extra checks against the run's other rows. */
  readonly check?: (row: EmbeddedRow, run: RunView) => void;
}

/** Helpers the cases build lines from. */
interface Kit {
  readonly goodImage: Buffer;
  readonly pair: (caption: string | Buffer, image: Buffer | string) => Buffer;
}

/** The run's rows, looked up by the name of the reference line they came from. */
interface RunView {
  readonly ref: (name: string) => EmbeddedRow;
}

const b64 = (bytes: Buffer): string => bytes.toString('base64');
const ok: Expect = { status: 'ok' };
const error = (reason: string): Expect => ({ status: 'error', reason });

/** Deterministic noise, so a JPEG of it is large enough to cut meaningfully. */
function noise(width: number, height: number): Sharp {
  const data = Buffer.alloc(width * height * 3);
  let s = 11;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    data[i] = s >>> 24;
  }
  return sharp(data, { raw: { width, height, channels: 3 } });
}

function solid(width: number, height: number, colour: string): Sharp {
  return sharp({ create: { width, height, channels: 3, background: colour } });
}

/** A PNG whose IHDR declares `width` x `height` with one byte of pixel data: tiny, but huge if decoded. */
function pngBomb(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer): Buffer => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([head, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(1))), chunk('IEND', Buffer.alloc(0))]);
}

/** An upright 48x32 picture with four distinct 16-aligned blocks: every flip and turn of it differs. */
const UPRIGHT = { width: 48, height: 32 };
function uprightPixel(x: number, y: number): [number, number, number] {
  if (y < 16) return x < 16 ? [250, 20, 20] : x < 32 ? [20, 20, 250] : [250, 250, 20];
  return x < 32 ? [20, 200, 40] : [240, 240, 240];
}

/**
 * The stored pixels of a photo whose EXIF `orientation` tag says how to turn them upright, per
 * the EXIF definitions of where row 0 and column 0 lie (1 top-left, 2 top-right, 3 bottom-right,
 * 4 bottom-left, 5 left-top, 6 right-top, 7 right-bottom, 8 left-bottom).
 */
function storedFor(orientation: number): Sharp {
  const { width: W, height: H } = UPRIGHT;
  const swap = orientation >= 5;
  const sw = swap ? H : W;
  const sh = swap ? W : H;
  const data = Buffer.alloc(sw * sh * 3);
  for (let r = 0; r < sh; r++) {
    for (let c = 0; c < sw; c++) {
      const [x, y] = (
        {
          1: [c, r],
          2: [W - 1 - c, r],
          3: [W - 1 - c, H - 1 - r],
          4: [c, H - 1 - r],
          5: [r, c],
          6: [W - 1 - r, c],
          7: [W - 1 - r, H - 1 - c],
          8: [r, H - 1 - c],
        } as Record<number, [number, number]>
      )[orientation]!;
      data.set(uprightPixel(x, y), (r * sw + c) * 3);
    }
  }
  return sharp(data, { raw: { width: sw, height: sh, channels: 3 } });
}

const jpegExact = (s: Sharp): Promise<Buffer> => s.jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).toBuffer();

/** Reference lines: clean equivalents whose embeddings accepted oddities must reproduce. */
const references: Record<string, (k: Kit) => Promise<Buffer> | Buffer> = {
  plain: (k) => k.pair('a plain reference', k.goodImage),
  green: async (k) => k.pair('green', await solid(8, 8, '#00ff00').png().toBuffer()),
  orange: async (k) => k.pair('orange', await solid(4, 2, '#ff8000').png().toBuffer()),
  rgbTransparentColour: async (k) => k.pair('alpha', await solid(6, 6, '#c86432').png().toBuffer()),
  grey77: async (k) => k.pair('grey', await solid(6, 6, '#4d4d4d').png().toBuffer()),
  upright: async (k) => k.pair('upright', await jpegExact(storedFor(1))),
  longCaptionOther: (k) => k.pair(`${'word '.repeat(300)}dogs`, k.goodImage),
};

const cases: Case[] = [
  // base64
  { name: 'base64: a valid image with one stray "*" inside (Buffer.from would skip it)', line: (k) => k.pair('stray', `${b64(k.goodImage).slice(0, 40)}*${b64(k.goodImage).slice(40)}`), expect: error('bad_base64') },
  { name: 'base64: a valid image with a space inside', line: (k) => k.pair('space', `${b64(k.goodImage).slice(0, 40)} ${b64(k.goodImage).slice(40)}`), expect: error('bad_base64') },
  { name: 'base64: a NUL byte inside', line: (k) => k.pair('nul', `${b64(k.goodImage).slice(0, 40)}\0${b64(k.goodImage).slice(40)}`), expect: error('bad_base64') },
  { name: 'base64: padding in the middle', line: (k) => k.pair('mid pad', `${b64(k.goodImage).slice(0, 40)}==${b64(k.goodImage).slice(40)}`), expect: error('bad_base64') },
  {
    name: 'base64: padding that does not match the length',
    line: (k) => {
      const body = b64(k.goodImage).replace(/=+$/, '');
      return k.pair('wrong pad', body.length % 4 === 0 ? `${body}=` : `${body}===`);
    },
    expect: error('bad_base64'),
  },
  { name: 'base64: a field cut to a length that encodes no whole byte', line: (k) => k.pair('cut', b64(k.goodImage).replace(/=+$/, '').slice(0, 4 * 30 + 1)), expect: error('bad_base64') },
  { name: 'base64: only padding', line: (k) => k.pair('only pad', '=='), expect: error('bad_base64') },
  {
    name: 'base64: a data:image/...;base64, prefix is accepted and embeds like the plain field',
    line: (k) => k.pair('a plain reference', `data:image/jpeg;base64,${b64(k.goodImage)}`),
    expect: ok,
    check: (row, run) => assertClose(row.imageEmbedding, run.ref('plain').imageEmbedding, 'same image as the plain reference'),
  },
  { name: 'base64: a data URL without ;base64,', line: (k) => k.pair('data url', `data:image/jpeg,${b64(k.goodImage)}`), expect: error('bad_base64') },
  {
    name: 'base64: URL-safe alphabet without padding is accepted',
    line: (k) => k.pair('a plain reference', k.goodImage.toString('base64url')),
    expect: ok,
    check: (row, run) => assertClose(row.imageEmbedding, run.ref('plain').imageEmbedding, 'same image as the plain reference'),
  },
  { name: 'base64: an empty image field', line: (k) => k.pair('empty image', ''), expect: error('missing_field') },
  // images
  { name: 'image: random bytes', line: (k) => k.pair('random', Buffer.from(Array.from({ length: 600 }, (_, i) => (i * 151 + 7) & 255))), expect: error('not_an_image') },
  { name: 'image: a single zero byte', line: (k) => k.pair('one byte', Buffer.alloc(1)), expect: error('not_an_image') },
  { name: 'image: a JPEG truncated in its pixel data', line: async (k) => k.pair('truncated', (await noise(64, 64).jpeg({ quality: 90 }).toBuffer()).subarray(0, 3000)), expect: error('corrupt_image') },
  { name: 'image: a half-written JPEG (header only)', line: async (k) => k.pair('half', (await noise(64, 64).jpeg({ quality: 90 }).toBuffer()).subarray(0, 40)), expect: error('corrupt_image') },
  { name: 'image: a decompression bomb (60000x60000 declared in 70 bytes)', line: (k) => k.pair('bomb', pngBomb(60_000, 60_000)), expect: error('too_many_pixels') },
  { name: 'image: a real 1200x1000 PNG over --max-pixels 1000000', line: async (k) => k.pair('big', await solid(1200, 1000, '#336699').png().toBuffer()), expect: error('too_many_pixels') },
  {
    name: 'image: SVG (never rendered: it could reference local files)',
    line: (k) => k.pair('svg', Buffer.from('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="8" height="8"><image xlink:href="file:///etc/passwd" width="8" height="8"/></svg>')),
    expect: error('unsupported_format'),
  },
  { name: 'image: PDF', line: (k) => k.pair('pdf', Buffer.from('%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n')), expect: error('unsupported_format') },
  { name: 'image: BMP (outside the raster allowlist)', line: (k) => k.pair('bmp', Buffer.concat([Buffer.from('BM'), Buffer.alloc(12), Buffer.from([40, 0, 0, 0]), Buffer.alloc(40)])), expect: error('unsupported_format') },
  {
    name: 'image: an animated GIF embeds its first frame',
    line: async (k) => {
      const frames = await Promise.all(['#00ff00', '#0000ff', '#ff0000'].map((c) => solid(8, 8, c).png().toBuffer()));
      return k.pair('green', await sharp(frames, { join: { animated: true } }).gif().toBuffer());
    },
    expect: ok,
    check: (row, run) => assertClose(row.imageEmbedding, run.ref('green').imageEmbedding, 'first frame is the green one'),
  },
  { name: 'image: CMYK JPEG', line: async (k) => k.pair('cmyk', await solid(16, 16, '#ff0000').toColourspace('cmyk').jpeg({ quality: 100 }).toBuffer()), expect: ok },
  {
    name: 'image: 16-bit PNG embeds like its 8-bit equivalent',
    line: async (k) => {
      const deep = new Uint16Array(4 * 2 * 3);
      for (let i = 0; i < deep.length; i += 3) deep.set([65535, 32896, 0], i);
      return k.pair('orange', await sharp(deep, { raw: { width: 4, height: 2, channels: 3 } }).toColourspace('rgb16').png().toBuffer());
    },
    expect: ok,
    check: (row, run) => assertClose(row.imageEmbedding, run.ref('orange').imageEmbedding, '16-bit reduced to the 8-bit pixels'),
  },
  {
    name: 'image: PNG with a fully transparent alpha channel keeps its colour',
    line: async (k) => k.pair('alpha', await sharp({ create: { width: 6, height: 6, channels: 4, background: { r: 200, g: 100, b: 50, alpha: 0 } } }).png().toBuffer()),
    expect: ok,
    check: (row, run) => assertClose(row.imageEmbedding, run.ref('rgbTransparentColour').imageEmbedding, 'alpha dropped, not composited'),
  },
  {
    name: 'image: palette PNG',
    line: async (k) => k.pair('palette', await sharp(Buffer.from([255, 0, 0, 0, 0, 255, 0, 255, 0, 255, 255, 255]), { raw: { width: 4, height: 1, channels: 3 } }).png({ palette: true, colours: 4, dither: 0 }).toBuffer()),
    expect: ok,
  },
  {
    name: 'image: greyscale PNG embeds like the same grey in RGB',
    line: async (k) => k.pair('grey', await solid(6, 6, '#000000').linear(0, 77).toColourspace('b-w').png().toBuffer()),
    expect: ok,
    check: (row, run) => assertClose(row.imageEmbedding, run.ref('grey77').imageEmbedding, 'grey expanded to three channels'),
  },
  ...[1, 2, 3, 4, 5, 6, 7, 8].map(
    (o): Case => ({
      name: `image: EXIF orientation ${o} embeds like the upright picture`,
      line: async (k) => k.pair('upright', await storedFor(o).withMetadata({ orientation: o }).jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).toBuffer()),
      expect: ok,
      check: (row, run) => assertClose(row.imageEmbedding, run.ref('upright').imageEmbedding, `orientation ${o} turned upright`),
    }),
  ),
  {
    name: 'image: EXIF-less stored pixels of orientation 6 do differ from the upright picture (the orientation checks can fail)',
    line: async (k) => k.pair('sideways', await jpegExact(storedFor(6))),
    expect: ok,
    check: (row, run) => assert.ok(distance(row.imageEmbedding, run.ref('upright').imageEmbedding) > 1e-3, 'a turned picture embeds differently'),
  },
  { name: 'image: 1x1 pixel', line: async (k) => k.pair('dot', await solid(1, 1, '#123456').png().toBuffer()), expect: ok },
  { name: 'image: 1000x1 (extreme wide)', line: async (k) => k.pair('wide', await noise(1000, 1).png().toBuffer()), expect: ok },
  { name: 'image: 1x1000 (extreme tall)', line: async (k) => k.pair('tall', await noise(1, 1000).png().toBuffer()), expect: ok },
  { name: 'image: 900x3 JPEG', line: async (k) => k.pair('strip', await noise(900, 3).jpeg().toBuffer()), expect: ok },
  // text
  { name: 'text: invalid UTF-8 byte 0xFF', line: (k) => k.pair(Buffer.from([0x63, 0x61, 0x74, 0xff]), k.goodImage), expect: error('bad_utf8'), check: (row) => assert.equal(row.text, null) },
  { name: 'text: overlong UTF-8 encoding of "/"', line: (k) => k.pair(Buffer.from([0x61, 0xc0, 0xaf]), k.goodImage), expect: error('bad_utf8') },
  { name: 'text: UTF-8-encoded lone surrogate', line: (k) => k.pair(Buffer.from([0x61, 0xed, 0xa0, 0x80]), k.goodImage), expect: error('bad_utf8') },
  { name: 'text: a caption cut inside a multi-byte character', line: (k) => k.pair(Buffer.from('café 東', 'utf8').subarray(0, -1), k.goodImage), expect: error('bad_utf8') },
  {
    name: 'text: an empty caption is a valid row with an empty-caption embedding',
    line: (k) => k.pair('', k.goodImage),
    expect: ok,
    check: (row) => {
      assert.equal(row.text, '');
      assert.ok(row.textEmbedding !== null, 'the empty caption is embedded');
    },
  },
  {
    name: 'text: a caption far beyond the context length is truncated, not refused',
    line: (k) => k.pair(`${'word '.repeat(300)}cats`, k.goodImage),
    expect: ok,
    check: (row, run) => {
      assert.equal(row.text, `${'word '.repeat(300)}cats`, 'the stored caption is whole');
      assertClose(row.textEmbedding, run.ref('longCaptionOther').textEmbedding, 'only the first context-length tokens count');
    },
  },
  {
    name: 'text: control characters are kept and embedded',
    line: (k) => k.pair('a\u0001b\u0007c\u001bd\u007fe\u000bf\u000cg', k.goodImage),
    expect: ok,
    check: (row) => assert.equal(row.text, 'a\u0001b\u0007c\u001bd\u007fe\u000bf\u000cg'),
  },
  // lines
  {
    name: 'lines: a CRLF line ending is not part of the image field',
    line: (k) => k.pair('crlf line', k.goodImage),
    ending: '\r\n',
    expect: ok,
    check: (row, run) => assertClose(row.imageEmbedding, run.ref('plain').imageEmbedding, 'same image as the plain reference'),
  },
  { name: 'lines: a CRLF-only blank line', line: () => Buffer.alloc(0), ending: '\r\n', expect: error('missing_field') },
  { name: 'lines: a run of blank lines (first of three)', line: () => Buffer.alloc(0), ending: '\n\n\n', expect: error('missing_field') },
  { name: 'lines: a tab-only line', line: () => Buffer.from('\t'), expect: error('missing_field') },
  {
    name: 'lines: a line over --max-line-bytes is skipped as line_too_long',
    line: (k) => k.pair('huge', `${b64(k.goodImage)}${'A'.repeat(300 * 1024)}`),
    expect: error('line_too_long'),
    check: (row) => assert.equal(row.text, null),
  },
];

function distance(a: Float32Array | null, b: Float32Array | null): number {
  assert.ok(a !== null && b !== null, 'both rows have the embedding');
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

function assertClose(a: Float32Array | null, b: Float32Array | null, what: string, tolerance = 1e-5): void {
  const d = distance(a, b);
  assert.ok(d <= tolerance, `${what}: embeddings differ by ${d}`);
}

describe('hostile rows become error rows with stable reasons while their neighbours embed', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let out: string;
  let manifest: Manifest;
  let lineCount: number;
  const rowsByOffset = new Map<number, EmbeddedRow>();
  const errorsByOffset = new Map<number, { reason: string; message: string; text: string | null }>();
  const caseOffsets: { before: number; at: number; after: number }[] = [];
  const refOffsets = new Map<string, number>();
  let shardKeys: string[] = [];

  before(async () => {
    ({ dir, cleanup } = await makeTempDir('hostile-rows'));
    const model = await tinyModelDir();
    await makeDataset({ path: join(dir, 'good.tsv'), rows: 64, kind: 'pairs', seed: 21, imageSize: 40 });
    const goodLines = readFileSync(join(dir, 'good.tsv')).toString('latin1').trimEnd().split('\n').map((l) => Buffer.from(l, 'latin1'));
    const goodImage = Buffer.from(goodLines[0]!.toString('latin1').split('\t')[1]!, 'base64');
    const kit: Kit = {
      goodImage,
      pair: (caption, image) => Buffer.concat([typeof caption === 'string' ? Buffer.from(caption, 'utf8') : caption, Buffer.from('\t'), typeof image === 'string' ? Buffer.from(image, 'latin1') : Buffer.from(b64(image))]),
    };
    const parts: Buffer[] = [];
    let offset = 0;
    let good = 0;
    const push = (bytes: Buffer, ending: string): number => {
      const at = offset;
      parts.push(bytes, Buffer.from(ending, 'latin1'));
      offset += bytes.length + ending.length;
      return at;
    };
    const pushGood = (): number => push(goodLines[good++ % goodLines.length]!, '\n');
    // A UTF-8 BOM before the first line: the first row must still parse and keep a clean caption.
    const firstGood = push(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), goodLines[good++]!]), '\n');
    for (const [name, make] of Object.entries(references)) refOffsets.set(name, push(await make(kit), '\n'));
    for (const c of cases) {
      const before = pushGood();
      const at = push(await c.line(kit), c.ending ?? '\n');
      caseOffsets.push({ before, at, after: offset });
    }
    // The last good line has no final newline.
    const last = goodLines[good % goodLines.length]!;
    parts.push(last);
    offset += last.length;
    const data = Buffer.concat(parts);
    writeFileSync(join(dir, 'hostile.tsv'), data);
    lineCount = data.toString('latin1').split('\n').length;

    out = join(dir, 'out');
    const r = await runEmbedded(
      runConfig(['--input', join(dir, 'hostile.tsv'), '--model', model, '--output', out, '--kind', 'pairs', '--split-size', '24KiB', '--batch-size', '8', '--max-pixels', '1000000', '--max-line-bytes', '256KiB']),
      () => undefined,
    );
    manifest = r.manifest;
    const store = new LocalStore(out);
    for (const t of await readParts(store, manifest)) {
      for (let i = 0; i < t.numRows; i++) {
        const row = t.row(i);
        rowsByOffset.set(row.offset, row);
      }
    }
    const errors = await readErrors(store, manifest);
    for (let i = 0; i < errors.numRows; i++) {
      errorsByOffset.set(Number(errors.getChild('offset')!.get(i) as bigint), {
        reason: String(errors.getChild('error_reason')!.get(i)),
        message: String(errors.getChild('error_message')!.get(i)),
        text: errors.getChild('text')!.get(i) as string | null,
      });
    }
    for await (const info of store.list(outputKeys.shardPrefix)) if (info.key.endsWith('.done.json')) shardKeys.push(info.key);
    shardKeys = shardKeys.sort();
    const first = rowsByOffset.get(firstGood);
    assert.ok(first !== undefined && first.status === 'ok', 'the first line, after a BOM, embeds');
  });
  after(() => cleanup());

  cases.forEach((c, i) => {
    it(c.name, () => {
      const { before, at, after } = caseOffsets[i]!;
      const row = rowsByOffset.get(at);
      assert.ok(row !== undefined, `a row at offset ${at}`);
      assert.equal(rowsByOffset.get(before)?.status, 'ok', 'the good line before it embeds');
      assert.equal(rowsByOffset.get(after)?.status, 'ok', 'the good line after it embeds');
      const inErrors = errorsByOffset.get(at);
      if (c.expect.status === 'ok') {
        assert.equal(row.status, 'ok', `${row.errorReason ?? ''}: ${row.errorMessage ?? ''}`);
        assert.ok(row.textEmbedding !== null && row.imageEmbedding !== null, 'both embeddings present');
        assert.equal(inErrors, undefined, 'an ok row is not in errors/');
      } else {
        assert.equal(row.status, 'error');
        assert.equal(row.errorReason, c.expect.reason, row.errorMessage ?? '');
        assert.equal(row.textEmbedding, null);
        assert.equal(row.imageEmbedding, null);
        assert.ok(inErrors !== undefined, 'listed in an errors/ file');
        assert.equal(inErrors.reason, c.expect.reason);
        assert.ok(inErrors.message.length > 0 && !inErrors.message.includes('\n'), `one-line message: ${JSON.stringify(inErrors.message)}`);
      }
      c.check?.(row, { ref: (name) => rowsByOffset.get(refOffsets.get(name)!)! });
    });
  });

  it('lines: a UTF-8 BOM at the start is not part of the first caption', () => {
    const first = rowsByOffset.get(0)!;
    assert.equal(first.status, 'ok');
    assert.ok(first.text !== null && !first.text.startsWith('\ufeff'), JSON.stringify(first.text));
  });

  it('lines: the last line without a final newline is a row', () => {
    const last = [...rowsByOffset.values()].reduce((a, b) => (b.offset > a.offset ? b : a));
    assert.equal(last.status, 'ok');
    assert.equal(rowsByOffset.size, lineCount);
  });

  it('counts balance: every shard and the run have rows in = ok + failed, and every line is one row', async () => {
    assert.equal(manifest.rows.in, lineCount);
    assert.equal(manifest.rows.in, manifest.rows.ok + manifest.rows.failed);
    assert.equal(manifest.rows.failed, errorsByOffset.size);
    const expectedFailed: Record<string, number> = {};
    cases.forEach((c) => {
      if (c.expect.status === 'error') expectedFailed[c.expect.reason] = (expectedFailed[c.expect.reason] ?? 0) + 1;
    });
    expectedFailed['missing_field']! += 2; // the second and third line of the blank run
    assert.deepEqual(manifest.rows.failedByReason, expectedFailed);
    assert.ok(manifest.splits > 4, `several splits, got ${manifest.splits}`);
    assert.equal(shardKeys.length, manifest.splits);
    const store = new LocalStore(out);
    let rowsIn = 0;
    for (let s = 0; s < manifest.splits; s++) {
      const marker = await readShardMarker(store, s);
      assert.ok(marker !== undefined);
      const failed = Object.values(marker.failedByReason).reduce((a, b) => a + b, 0);
      assert.equal(marker.rowsIn, marker.rowsOk + failed, `split ${s}`);
      assert.equal(marker.rowsFailed, failed, `split ${s}`);
      rowsIn += marker.rowsIn;
    }
    assert.equal(rowsIn, manifest.rows.in);
  });

  it('no vector column of any file it wrote holds a null entry, though most rows failed', async () => {
    const files = parquetFilesUnder(out);
    const withVectors = files.filter((f) => f.includes('/embeddings/') || f.includes('/shards/'));
    const parts = manifest.files.filter((f) => f.key.startsWith('embeddings/'));
    assert.ok(parts.length > 1, files.join(', '));
    assert.deepEqual(withVectors.map((f) => f.slice(out.length + 1)).sort(), parts.map((f) => f.key).sort(), 'the parts are the only files with vectors: staged copies are gone once promoted');
    assert.equal((await assertNoNullVectors(files)).filter((n) => n > 0).length, withVectors.length, 'every part has vector columns, all checked');
  });
});

describe('a single line far over --max-line-bytes is skipped with bounded memory', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => {
    ({ dir, cleanup } = await makeTempDir('hostile-longline'));
  });
  after(() => cleanup());

  it('a 256 MiB line (a sparse file: no disk cost) becomes one line_too_long row without being buffered', async () => {
    const model = await tinyModelDir();
    await makeDataset({ path: join(dir, 'good.tsv'), rows: 2, kind: 'pairs', seed: 5, imageSize: 32 });
    const [first, second] = readFileSync(join(dir, 'good.tsv'), 'latin1').trimEnd().split('\n');
    const path = join(dir, 'long.tsv');
    const hugeLine = 256 * 1024 * 1024;
    const fd = openSync(path, 'w');
    const head = Buffer.from(`${first}\nhuge\t`, 'latin1');
    writeSync(fd, head, 0, head.length, 0);
    ftruncateSync(fd, head.length + hugeLine);
    const tail = Buffer.from(`\n${second}\n`, 'latin1');
    writeSync(fd, tail, 0, tail.length, head.length + hugeLine);
    closeSync(fd);

    // Sampled, not maxRSS: the process's earlier peak could hide growth. Buffering the line would hold 256 MiB for much longer than one sample period.
    const start = process.memoryUsage.rss();
    let peak = start;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage.rss());
    }, 5);
    const r = await runEmbedded(
      runConfig(['--input', path, '--model', model, '--output', join(dir, 'out'), '--kind', 'pairs', '--max-line-bytes', '1MiB', '--split-size', '1GiB']),
      () => undefined,
    ).finally(() => clearInterval(sampler));
    const grew = peak - start;
    const { in: rowsIn, ok, failed, failedByReason } = r.manifest.rows;
    assert.deepEqual({ rowsIn, ok, failed, failedByReason }, { rowsIn: 3, ok: 2, failed: 1, failedByReason: { line_too_long: 1 } });
    assert.ok(grew < hugeLine * 0.6, `peak memory grew by ${Math.round(grew / 1048576)} MiB while skipping a ${hugeLine / 1048576} MiB line`);
  });
});

describe('real odd and broken files from the shared fixtures get their reasons', { skip: fixturesSkipReason() }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => {
    ({ dir, cleanup } = await makeTempDir('hostile-photos'));
  });
  after(() => cleanup());

  it('broken files fail with a stable reason; every odd but valid photo embeds', async () => {
    const broken: Record<string, string> = {
      'truncated.jpg': 'corrupt_image',
      'cut_in_half.jpg': 'corrupt_image',
      'random_bytes.bin': 'not_an_image',
      'not_an_image.txt': 'not_an_image',
      'empty.bin': 'missing_field',
    };
    const images = join(sharedFixturesDir() as string, 'images');
    const files = readFileSync(join(images, 'captions.tsv'), 'utf8').trim().split('\n').map((l) => l.split('\t') as [string, string]);
    writeFileSync(join(dir, 'photos.tsv'), files.map(([file, caption]) => `${caption}\t${readFileSync(join(images, file)).toString('base64')}\n`).join(''));
    const out = join(dir, 'out');
    const r = await runEmbedded(runConfig(['--input', join(dir, 'photos.tsv'), '--model', await tinyModelDir(), '--output', out, '--kind', 'pairs']), () => undefined);
    const rows = (await readParts(new LocalStore(out), r.manifest)).flatMap((t) => Array.from({ length: t.numRows }, (_, i) => t.row(i)));
    assert.equal(rows.length, files.length);
    files.forEach(([file], i) => {
      const row = rows[i]!;
      assert.equal(row.errorReason ?? 'ok', broken[file] ?? 'ok', `${file}: ${row.errorMessage ?? ''}`);
    });
  });
});
