import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '@vecmill/shared/errors';
import { describeKeyProblem, formatLocation, joinKey, parseLocation } from '@vecmill/shared/storage/location';

describe('parseLocation', () => {
  it('parses S3 objects, prefixes and whole buckets', () => {
    assert.deepEqual(parseLocation('s3://my-bucket/data/part-0.tsv'), { kind: 's3', bucket: 'my-bucket', key: 'data/part-0.tsv' });
    assert.deepEqual(parseLocation('s3://my-bucket/data/'), { kind: 's3', bucket: 'my-bucket', key: 'data/' });
    assert.deepEqual(parseLocation('s3://my-bucket'), { kind: 's3', bucket: 'my-bucket', key: '' });
    assert.deepEqual(parseLocation('s3://my-bucket/'), { kind: 's3', bucket: 'my-bucket', key: '' });
    assert.deepEqual(parseLocation('S3://my.bucket/a b/ü'), { kind: 's3', bucket: 'my.bucket', key: 'a b/ü' });
  });

  it('resolves local paths against the given cwd and accepts file URLs', () => {
    assert.deepEqual(parseLocation('data/in.tsv', '/work'), { kind: 'local', path: '/work/data/in.tsv' });
    assert.deepEqual(parseLocation('../x/', '/work/sub'), { kind: 'local', path: '/work/x' });
    assert.deepEqual(parseLocation('/abs/./dir/', '/work'), { kind: 'local', path: '/abs/dir' });
    assert.deepEqual(parseLocation('file:///abs/my%20file.tsv', '/work'), { kind: 'local', path: '/abs/my file.tsv' });
    assert.deepEqual(parseLocation('weird:name', '/work'), { kind: 'local', path: '/work/weird:name' });
  });

  it('rejects other schemes in one line naming the input and the accepted forms, never echoing a password', () => {
    for (const uri of ['http://example.com/x.tsv', 'gs://bucket/x', 'https://user:hunter2@example.com/x']) {
      assert.throws(
        () => parseLocation(uri),
        (err: unknown) =>
          err instanceof ConfigError &&
          err.message.includes('unsupported location scheme') &&
          err.message.includes('s3://bucket/key') &&
          err.message.includes('file:///') &&
          !err.message.includes('hunter2') &&
          !err.message.includes('\n'),
      );
    }
    assert.throws(() => parseLocation('http://example.com/x.tsv'), /http:\/\/example\.com\/x\.tsv/);
  });

  it('rejects bad buckets, keys escaping upwards, credentials in S3 URLs and empty input', () => {
    assert.throws(() => parseLocation('s3://'), ConfigError);
    assert.throws(() => parseLocation('s3://a'), /invalid S3 bucket name/);
    assert.throws(() => parseLocation('s3://bucket/a/../b'), /\.\. segment/);
    assert.throws(
      () => parseLocation('s3://AKIAXXXX:s3cr3t@bucket/key'),
      (err: unknown) => err instanceof ConfigError && !err.message.includes('s3cr3t') && !err.message.includes('AKIAXXXX'),
    );
    assert.throws(() => parseLocation('  '), ConfigError);
    assert.throws(() => parseLocation('file://remote-host/x'), /invalid file URL/);
  });
});

describe('formatLocation and joinKey', () => {
  it('formats both kinds', () => {
    assert.equal(formatLocation({ kind: 's3', bucket: 'b', key: 'p/' }), 's3://b/p/');
    assert.equal(formatLocation({ kind: 'local', path: '/data/out' }), '/data/out');
    assert.equal(formatLocation(parseLocation('s3://bkt/x/y.tsv')), 's3://bkt/x/y.tsv');
  });

  it('joins with exactly one slash', () => {
    assert.equal(joinKey('', 'a'), 'a');
    assert.equal(joinKey('p', 'a'), 'p/a');
    assert.equal(joinKey('p/', 'a/b'), 'p/a/b');
    assert.equal(joinKey('p//', '/a'), 'p/a');
    assert.equal(joinKey('p', ''), 'p/');
  });
});

describe('describeKeyProblem', () => {
  it('accepts canonical keys and, as prefixes, empty or slash-terminated ones', () => {
    for (const key of ['a', 'a/b.c', '.hidden', 'a..b', 'ü/😀']) assert.equal(describeKeyProblem(key), undefined, key);
    assert.equal(describeKeyProblem('', true), undefined);
    assert.equal(describeKeyProblem('a/b/', true), undefined);
  });

  it('names the problem of each bad key', () => {
    assert.match(describeKeyProblem('') ?? '', /empty/);
    assert.match(describeKeyProblem('/a') ?? '', /starts with \//);
    assert.match(describeKeyProblem('a/../b') ?? '', /\.\. segment/);
    assert.match(describeKeyProblem('a\0') ?? '', /NUL/);
    assert.match(describeKeyProblem('a\\b') ?? '', /backslash/);
    assert.match(describeKeyProblem('a//b') ?? '', /empty segment/);
    assert.match(describeKeyProblem('a/') ?? '', /ends with \//);
    assert.match(describeKeyProblem('a//', true) ?? '', /empty segment/);
  });
});
