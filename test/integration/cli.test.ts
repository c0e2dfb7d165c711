import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import { startFakeHub, type FakeHub } from '../support/fake-hub-server.js';
import { runCli } from '../support/distributed-helpers.js';
import { projectRoot } from '../support/fixtures.js';
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

  it('`npx vecmill` prints no npm warning about an unknown project config', async () => {
    // npm 11 warns about every .npmrc key it does not know, on every `npx vecmill ...`.
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn('npm', ['exec', '--offline', '--', 'vecmill', '--help'], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /usage: vecmill <command>/);
    assert.doesNotMatch(r.stderr, /Unknown (project|user|global|env|cli) config/);
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

  it('refuses a damaged or newer manifest.json, plan.json or shard marker in one line naming it', async () => {
    const published = join(dir, 'published');
    const runArgs = (out: string): string[] => ['run', '--input', join(dir, 'pairs.tsv'), '--model', model, '--output', out, '--progress', 'json', '--threads', '1'];
    const first = await runCli(runArgs(published));
    assert.equal(first.code, 0, first.stderr);
    const manifest = await readFile(join(published, 'manifest.json'), 'utf8');
    const plan = await readFile(join(published, 'plan.json'), 'utf8');
    const marker = await readFile(join(published, 'shards', 'split-000000.done.json'), 'utf8');
    const newer = (text: string): string => {
      const doc = JSON.parse(text) as { version: number };
      return JSON.stringify({ ...doc, version: doc.version + 1 });
    };
    const noRows = (text: string): string => JSON.stringify({ ...(JSON.parse(text) as object), rows: undefined });
    // Each case: a copy of the published output with one file replaced (and what the reader must reach it).
    const cases: { name: string; file: string; text: string; unpublish: boolean; commands: string[][]; says: RegExp }[] = [
      { name: 'truncated manifest', file: 'manifest.json', text: manifest.slice(0, 50), unpublish: false, commands: [['inspect'], ['index'], runArgs('')], says: /manifest\.json in .* is damaged \(it is not valid JSON\); delete manifest\.json and _SUCCESS/ },
      { name: 'manifest without rows', file: 'manifest.json', text: noRows(manifest), unpublish: false, commands: [['inspect'], runArgs('')], says: /manifest\.json in .* is damaged \(field rows is missing\)/ },
      { name: 'newer manifest', file: 'manifest.json', text: newer(manifest), unpublish: false, commands: [['inspect'], ['search', '--text', 'a cat'], runArgs('')], says: /manifest\.json in .* was written by a newer vecmill \(format version 3; this one reads up to 2\): upgrade vecmill/ },
      { name: 'truncated plan', file: 'plan.json', text: plan.slice(0, 50), unpublish: true, commands: [runArgs('')], says: /plan\.json in .* is damaged \(it is not valid JSON\); delete the output folder/ },
      { name: 'newer plan', file: 'plan.json', text: newer(plan), unpublish: true, commands: [runArgs('')], says: /plan\.json in .* was written by a newer vecmill/ },
      { name: 'newer marker', file: 'shards/split-000000.done.json', text: newer(marker), unpublish: true, commands: [runArgs('')], says: /shards\/split-000000\.done\.json in .* was written by a newer vecmill/ },
      { name: 'truncated marker', file: 'shards/split-000000.done.json', text: marker.slice(0, 30), unpublish: true, commands: [runArgs('')], says: /shards\/split-000000\.done\.json in .* is damaged \(it is not valid JSON\); delete it to recompute the split/ },
    ];
    for (const [i, c] of cases.entries()) {
      const out = join(dir, `damaged-${i}`);
      await cp(published, out, { recursive: true });
      await writeFile(join(out, c.file), c.text);
      if (c.unpublish) await rm(join(out, '_SUCCESS'));
      for (const command of c.commands) {
        const args = command[0] === 'run' ? runArgs(out) : [command[0]!, out, ...command.slice(1)];
        const r = await runCli(args, { VECMILL_CACHE: join(dir, 'empty-cache') });
        assert.equal(r.code, 1, `${c.name}, ${args[0]}: ${r.stderr}`);
        const lines = r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('{'));
        assert.equal(lines.length, 1, `${c.name}, ${args[0]}: one line besides progress events: ${r.stderr}`);
        assert.match(lines[0]!, new RegExp(`^vecmill ${args[0]}: ${c.says.source}.* \\[E_INPUT\\]$`), `${c.name}, ${args[0]}`);
      }
    }
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
