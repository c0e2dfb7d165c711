import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeDataset } from '@vecmill/shared/datagen/make-dataset';
import { startFakeHub, type FakeHub } from '../support/fake-hub-server.js';
import { runCli } from '../support/distributed-helpers.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

describe('the vecmill command line', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let hub: FakeHub;
  let model: string;

  before(async () => {
    ({ dir, cleanup } = await makeTempDir('cli'));
    model = await tinyModelDir();
    hub = await startFakeHub({ repos: [{ id: 'test-org/tiny-clip', dir: model, sha: 'a'.repeat(40) }] });
    await makeDataset({ path: join(dir, 'pairs.tsv'), rows: 20, kind: 'pairs', seed: 1, imageSize: 32 });
  });
  after(async () => {
    await hub.close();
    await cleanup();
  });

  it('--help lists every command and exits 0', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0);
    for (const c of ['vecmill run', 'vecmill make-model', 'vecmill inspect', 'vecmill models pull']) assert.ok(r.stdout.includes(c), c);
  });

  it('pulls a model from a hub endpoint into the cache, then runs with --model REPO_ID, then inspects', async () => {
    const env = { HF_ENDPOINT: hub.endpoint, VECMILL_CACHE: join(dir, 'cache') };
    const pull = await runCli(['models', 'pull', 'test-org/tiny-clip'], env);
    assert.equal(pull.code, 0, pull.stderr);
    assert.match(pull.stdout, /use --model test-org\/tiny-clip/);
    const run = await runCli(['run', '--input', join(dir, 'pairs.tsv'), '--model', 'test-org/tiny-clip', '--output', join(dir, 'out'), '--progress', 'json'], env);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /20 rows in, 20 ok/);
    const events = run.stderr.trim().split('\n').map((l) => JSON.parse(l) as { type: string });
    assert.equal(events[0]?.type, 'run-start');
    assert.equal(events.at(-1)?.type, 'merge-done');
    const inspect = await runCli(['inspect', join(dir, 'out')], env);
    assert.equal(inspect.code, 0);
    assert.match(inspect.stdout, /20 rows in, 20 ok/);
  });

  const failures: [string, string[], RegExp][] = [
    ['an unknown flag', ['run', '--bogus'], /vecmill run: .*bogus.*\[E_CONFIG\]/],
    ['a missing input', ['run', '--input', '/nonexistent/x.tsv', '--model', '/tmp', '--output', '/tmp/o'], /input not found: \/nonexistent\/x\.tsv.*\[E_INPUT\]/],
    ['a repo id that was never pulled', ['run', '--input', '__DATA__', '--model', 'nobody/nothing', '--output', '__OUT__'], /run `vecmill models pull nobody\/nothing` first.*\[E_MODEL\]/],
    ['an unknown command', ['frobnicate'], /unknown command "frobnicate"/],
  ];
  for (const [name, args, message] of failures) {
    it(`fails with one clear line and a non-zero exit on ${name}`, async () => {
      const r = await runCli(args.map((a) => a.replace('__DATA__', join(dir, 'pairs.tsv')).replace('__OUT__', join(dir, 'o-fail'))), { VECMILL_CACHE: join(dir, 'empty-cache') });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    });
  }
});
