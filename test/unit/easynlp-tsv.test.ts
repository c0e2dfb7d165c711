import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InputError } from '@vecmill/shared/errors';
import { featureTsvLines, formatFloat32, parseFeatureLine } from '@vecmill/shared/formats/easynlp-tsv';
import { EmbeddingTable, EmbeddingTableBuilder, type EmbeddingDtype } from '@vecmill/shared/formats/embedding-table';
import { float16ToFloat32, float32ToFloat16 } from '@vecmill/shared/formats/float16';

const D = 6;

function embeddings(rows: number): Float32Array {
  return Float32Array.from({ length: rows * D }, (_, i) => Math.fround(Math.cos(i * 1.7) * 10 ** ((i % 7) - 4)));
}

/** `rows` rows of split 0; every third row failed. */
function table(rows: number, dtype: EmbeddingDtype): EmbeddingTable {
  const builder = new EmbeddingTableBuilder({ dims: D, outDtype: dtype, hasText: true, hasImage: false });
  builder.appendBatch({
    splitIndex: 0,
    lineIndex: Array.from({ length: rows }, (_, i) => i),
    source: 'in.tsv',
    offset: new Array(rows).fill(0),
    textEmbedding: embeddings(rows),
    errors: Array.from({ length: rows }, (_, i) => (i % 3 === 2 ? { reason: 'empty_text', message: 'caption is empty' } : null)),
  });
  return new EmbeddingTable(builder.build());
}

describe('formatFloat32', () => {
  it("prints what numpy's str(np.float32(x)) prints", () => {
    const cases: [number, string][] = [
      [0.1, '0.1'], [1, '1.0'], [-0, '-0.0'], [0, '0.0'], [100, '100.0'], [123456, '123456.0'], [999999, '999999.0'],
      [1e6, '1e+06'], [1234567, '1.234567e+06'], [1e-7, '1e-07'], [1e-4, '1e-04'], [0.00012, '0.00012'], [-2.5e-5, '-2.5e-05'],
      [3.4028234663852886e38, '3.4028235e+38'], [1.401298464324817e-45, '1e-45'], [1.0000001, '1.0000001'],
      [54386.3125, '54386.312'], [-324638.625, '-324638.62'], [Infinity, 'inf'], [-Infinity, '-inf'], [NaN, 'nan'],
    ];
    for (const [value, text] of cases) assert.equal(formatFloat32(Math.fround(value)), text, `value ${value}`);
  });

  it('always reads back as the same float32', () => {
    for (const value of embeddings(500)) assert.equal(Math.fround(Number(formatFloat32(value))), value);
  });
});

describe('featureTsvLines', () => {
  for (const dtype of ['float32', 'float16'] as const) {
    it(`writes one line per row and parses back exactly (${dtype})`, () => {
      const rows = 10;
      const text = [...featureTsvLines(table(rows, dtype), 'text')].join('');
      assert.ok(text.endsWith('\n'));
      const lines = text.slice(0, -1).split('\n');
      assert.equal(lines.length, rows);
      const stored = dtype === 'float16' ? float16ToFloat32(float32ToFloat16(embeddings(rows))) : embeddings(rows);
      lines.forEach((line, r) => {
        const parsed = parseFeatureLine(line);
        if (r % 3 === 2) {
          assert.equal(line, '');
          assert.equal(parsed, null);
        } else {
          assert.equal(line.split('\t').length, D);
          assert.deepEqual(parsed, stored.subarray(r * D, (r + 1) * D));
        }
      });
    });
  }

  it('yields bounded chunks whose concatenation is the whole file', () => {
    const t = table(9, 'float32');
    const chunks = [...featureTsvLines(t, 'text', 4)];
    assert.equal(chunks.length, 3);
    assert.equal(chunks[0]!.split('\n').length - 1, 4);
    assert.equal(chunks.join(''), [...featureTsvLines(t, 'text')].join(''));
  });

  it('yields nothing for an empty table', () => {
    assert.deepEqual([...featureTsvLines(table(0, 'float32'), 'text')], []);
  });
});

describe('parseFeatureLine', () => {
  it('rejects a field that is not a number', () => {
    assert.throws(() => parseFeatureLine('0.5\tabc', 'text_feat.tsv'), (err: unknown) => err instanceof InputError && /text_feat\.tsv: field 2/.test(err.message));
    assert.throws(() => parseFeatureLine('0.5\t\t1.0'), InputError);
  });
});
