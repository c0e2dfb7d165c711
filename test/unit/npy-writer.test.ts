import assert from 'node:assert/strict';
import type { Readable } from 'node:stream';
import { setImmediate as tick } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { InputError, MergeError, StorageError } from '@vecmill/shared/errors';
import { float32ToFloat16 } from '@vecmill/shared/formats/float16';
import { NpyWriter, npyHeader, parseNpyHeader } from '@vecmill/shared/formats/npy-writer';

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('npyHeader', () => {
  it('matches the bytes numpy writes for shape (3, 4) <f4', () => {
    const dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }";
    const expected = Buffer.concat([
      Buffer.from([0x93]),
      Buffer.from('NUMPY', 'latin1'),
      Buffer.from([1, 0, 118, 0]), // version 1.0, header length 118 = 128 - 10
      Buffer.from(dict.padEnd(117, ' ') + '\n', 'latin1'),
    ]);
    assert.equal(expected.length, 128);
    assert.deepEqual(npyHeader([3, 4], '<f4'), expected);
  });

  it('pads every shape to a multiple of 64 bytes and keeps room for the row count to grow', () => {
    for (const [rows, dims] of [[0, 512], [1, 1], [123_456_789_012, 768], [2 ** 53 - 1, 65_536]] as const) {
      for (const dtype of ['<f4', '<f2'] as const) {
        const header = npyHeader([rows, dims], dtype);
        assert.equal(header.length % 64, 0);
        assert.equal(header[header.length - 1], 0x0a);
        assert.deepEqual(parseNpyHeader(header), { version: '1.0', descr: dtype, fortranOrder: false, shape: [rows, dims], dataOffset: header.length });
      }
    }
    assert.equal(npyHeader([2 ** 53 - 1, 65_536], '<f4').length, 128);
  });

  it('rejects a header that is not one', () => {
    assert.throws(() => parseNpyHeader(Buffer.from('PK\x03\x04 a zip file'), 'x.npy'), InputError);
    assert.throws(() => parseNpyHeader(npyHeader([3, 4], '<f4').subarray(0, 60), 'x.npy'), /x\.npy is not a \.npy file: the header needs 128 bytes/);
  });
});

describe('NpyWriter', () => {
  it('streams the header then the rows, little-endian', async () => {
    const writer = new NpyWriter(3, 2, '<f4', 'out/img_emb_0.npy');
    const done = collect(writer.stream);
    await writer.write(Float32Array.of(1, 2, 3, 4));
    await writer.write(Float32Array.of(-0.5, 65504));
    writer.end();
    const bytes = await done;
    const header = parseNpyHeader(bytes);
    assert.deepEqual(header.shape, [3, 2]);
    assert.equal(bytes.length, writer.byteLength);
    const body = bytes.subarray(header.dataOffset);
    assert.deepEqual(Array.from({ length: 6 }, (_, i) => body.readFloatLE(4 * i)), [1, 2, 3, 4, -0.5, 65504]);
  });

  it('converts float32 rows for a <f2 file and writes halves as given', async () => {
    const writer = new NpyWriter(2, 2, '<f2');
    const done = collect(writer.stream);
    await writer.write(Float32Array.of(1, 65520));
    await writer.write(float32ToFloat16(Float32Array.of(-2, 0.5)));
    writer.end();
    const bytes = await done;
    const body = bytes.subarray(parseNpyHeader(bytes).dataOffset);
    assert.deepEqual(Array.from({ length: 4 }, (_, i) => body.readUInt16LE(2 * i)), [0x3c00, 0x7c00, 0xc000, 0x3800]);
  });

  it('writes a zero-row file that is just the header', async () => {
    const writer = new NpyWriter(0, 512, '<f2');
    const done = collect(writer.stream);
    writer.end();
    const bytes = await done;
    assert.deepEqual(bytes, npyHeader([0, 512], '<f2'));
  });

  it('fails the upload with MergeError when the row count differs from the declared one', async () => {
    const tooMany = new NpyWriter(1, 2, '<f4', 'a.npy');
    const tooManyDone = collect(tooMany.stream);
    await assert.rejects(tooMany.write(new Float32Array(4)), (err: unknown) => err instanceof MergeError && /a\.npy was declared with 1 rows but more arrived/.test(err.message));
    await assert.rejects(tooManyDone, MergeError);

    const tooFew = new NpyWriter(2, 2, '<f4', 'b.npy');
    const tooFewDone = collect(tooFew.stream);
    await tooFew.write(new Float32Array(2));
    assert.throws(() => tooFew.end(), /b\.npy was declared with 2 rows but only 1 arrived/);
    await assert.rejects(tooFewDone, MergeError);
  });

  it('waits for the consumer before accepting more data', async () => {
    const writer = new NpyWriter(2, 16_384, '<f4');
    let settled = false;
    const pending = writer.write(new Float32Array(16_384)).then(() => (settled = true));
    await tick();
    await tick();
    assert.equal(settled, false, 'a 64 KiB chunk exceeds the stream buffer, so write waits for a reader');
    const done = collect(writer.stream);
    await pending;
    await writer.write(new Float32Array(16_384));
    writer.end();
    assert.equal((await done).length, writer.byteLength);
  });

  it('rejects with StorageError when the upload stops midway', async () => {
    const writer = new NpyWriter(4, 16_384, '<f4', 'c.npy');
    const pending = writer.write(new Float32Array(16_384));
    writer.stream.destroy();
    await assert.rejects(pending, (err: unknown) => err instanceof StorageError && /upload of c\.npy stopped/.test(err.message));
    await assert.rejects(writer.write(new Float32Array(16_384)), StorageError);
  });
});
