import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as arrow from 'apache-arrow';
import { writeParquet } from '@vecmill/shared/formats/parquet-io';
import { utf8Data } from '@vecmill/shared/formats/utf8-data';

/** What Arrow's own builder makes of the same strings: utf8Data must match it exactly. */
function viaBuilder(values: readonly (string | null)[]): arrow.Data<arrow.Utf8> {
  return arrow.vectorFromArray(values, new arrow.Utf8()).data[0]!;
}

const cases: Record<string, (string | null)[]> = {
  ascii: ['a red bicycle', 'x', '', 'tab-free\nnewline inside'],
  unicode: ['一只猫坐在窗台上', 'plain', 'emoji 🚲🐈 and combining é', ''],
  nulls: [null, 'a', null, '日本', null, null, null, null, null, 'z'],
  allNull: [null, null, null],
  empty: [],
};

describe('utf8Data', () => {
  for (const [name, values] of Object.entries(cases)) {
    it(`builds the same column as Arrow's builder: ${name}`, () => {
      const mine = utf8Data(values);
      const theirs = viaBuilder(values);
      assert.equal(mine.length, theirs.length);
      assert.equal(mine.nullCount, theirs.nullCount);
      assert.deepEqual(Array.from(mine.valueOffsets), Array.from(theirs.valueOffsets.subarray(0, values.length + 1)));
      assert.deepEqual(Buffer.from(mine.values), Buffer.from(theirs.values.subarray(0, theirs.valueOffsets[values.length])));
      assert.deepEqual(new arrow.Vector([mine]).toArray(), values);
      const table = (data: arrow.Data<arrow.Utf8>): arrow.Table => new arrow.Table({ caption: new arrow.Vector([data]) });
      assert.deepEqual(Buffer.from(writeParquet(table(mine))), Buffer.from(writeParquet(table(theirs))));
    });
  }
});
