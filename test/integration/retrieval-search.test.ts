import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import { makeModel } from '@vecmill/tools/modelgen/make-model';
import { PublishedOutput } from '@vecmill/retrieval/output-reader';
import { QueryEmbedder } from '@vecmill/retrieval/query-embedder';
import type { Manifest } from '@vecmill/shared/manifest';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { runEmbedded } from 'vecmill/embedded-run';
import { projectRoot } from '../support/fixtures.js';
import { positionOf, runConfig } from '../support/run-helpers.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

interface Hit {
  id: number;
  score: number;
  caption: string;
  modality: string;
  index: string | null;
}

/**
 * Runs a compiled command module the way `vecmill` would, in a child process, and parses its JSON
 * lines. The entry is a file rather than `-e`: the inference worker thread inherits execArgv.
 */
function cli(runner: string, command: 'search' | 'index', args: readonly string[], env: NodeJS.ProcessEnv): { status: number | null; hits: Hit[]; stderr: string } {
  const r = spawnSync(process.execPath, [runner, command, ...args], { cwd: projectRoot, env: { ...process.env, ...env }, encoding: 'utf8' });
  const hits = command === 'search' ? r.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Hit) : [];
  return { status: r.status, hits, stderr: r.stderr };
}

/** The child's entry: imports the command module by file URL and reports errors the way main.ts does (one line, exit 1). */
function runnerSource(): string {
  const url = (name: string): string => pathToFileURL(join(projectRoot, 'packages', 'cli', 'dist', 'commands', `${name}-command.js`)).href;
  return `const [command, ...args] = process.argv.slice(2);
const modules = { search: ${JSON.stringify(url('search'))}, index: ${JSON.stringify(url('index'))} };
const m = await import(modules[command]);
try { process.exitCode = await m[command + 'Command'](args); } catch (err) { process.stderr.write(err.message + '\\n'); process.exitCode = 1; }
`;
}

describe('vecmill search: queries embedded with the run\'s own model', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  /** The run's manifest: search answers ids, the manifest turns them into input rows. */
  let published: Manifest;
  let out: string;
  let captions: string[];
  let env: NodeJS.ProcessEnv;
  let runner: string;
  const distinct = 8;

  before(async () => {
    ({ dir, cleanup } = await makeTempDir('retrieval-search'));
    ({ captions } = await makeDataset({ path: join(dir, 'pairs.tsv'), rows: 60, kind: 'pairs', seed: 4, imageSize: 40, distinctImages: distinct }));
    out = join(dir, 'out');
    published = (await runEmbedded(runConfig(['--input', join(dir, 'pairs.tsv'), '--model', await tinyModelDir(), '--output', out, '--split-size', '8KiB']), () => undefined)).manifest;
    env = { VECMILL_CACHE: join(dir, 'cache') };
    runner = join(dir, 'run-command.mjs');
    await writeFile(runner, runnerSource());
  });
  after(() => cleanup());

  it('finds a row by its own caption when searching the text embeddings', () => {
    for (const row of [0, 17, 59]) {
      const r = cli(runner, 'search', [out, '--text', captions[row]!, '--modality', 'text', '-k', '3', '--json'], env);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.hits.length, 3);
      assert.equal(positionOf(published, r.hits[0]!.id), row);
      assert.equal(r.hits[0]!.caption, captions[row]);
      assert.ok(Math.abs(r.hits[0]!.score - 1) < 1e-4, `score ${r.hits[0]!.score}`);
      assert.equal(r.hits[0]!.modality, 'text');
      assert.equal(r.hits[0]!.index, null, 'no index yet: exact search');
    }
  });

  it('searches the image embeddings by default, with an image file or a text query', async () => {
    const line = (await readFile(join(dir, 'pairs.tsv'), 'utf8')).split('\n')[5]!;
    await writeFile(join(dir, 'query.jpg'), Buffer.from(line.split('\t')[1]!, 'base64'));
    const byImage = cli(runner, 'search', [out, '--image', join(dir, 'query.jpg'), '-k', '2', '--json'], env);
    assert.equal(byImage.status, 0, byImage.stderr);
    assert.equal(byImage.hits[0]!.modality, 'image');
    assert.equal(positionOf(published, byImage.hits[0]!.id) % distinct, 5, 'the same picture (the dataset repeats 8 pictures)');
    assert.ok(byImage.hits[0]!.score > 0.999, `score ${byImage.hits[0]!.score}`);
    const byText = cli(runner, 'search', [out, '--text', 'a cat', '-k', '4', '--json'], env);
    assert.equal(byText.status, 0, byText.stderr);
    assert.equal(byText.hits.length, 4);
    assert.ok(byText.hits.every((h) => h.modality === 'image'));
  });

  it('uses the HNSW index once `vecmill index` built one', () => {
    assert.equal(cli(runner, 'index', [out, '--modality', 'text'], env).status, 0);
    const r = cli(runner, 'search', [out, '--text', captions[42]!, '--modality', 'text', '-k', '1', '--json'], env);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(positionOf(published, r.hits[0]!.id), 42);
    assert.equal(r.hits[0]!.index, 'indexes/text-cosine/index.usearch');
  });

  it('refuses a model that is not the run\'s, and an unpublished output, in one line each', async () => {
    const other = join(dir, 'other-model');
    await makeModel({ preset: 'tiny', outDir: other, seed: 43 });
    const output = await PublishedOutput.open(new LocalStore(out));
    await assert.rejects(QueryEmbedder.open(output.manifest, ['text'], { model: other, cacheDir: join(dir, 'cache'), s3: undefined }), (e: Error & { code?: string }) => e.code === 'E_MODEL' && /is not the model run .* was embedded with/.test(e.message));
    const unpublished = join(dir, 'unpublished');
    await cp(out, unpublished, { recursive: true });
    await rm(join(unpublished, '_SUCCESS'));
    const r = cli(runner, 'search', [unpublished, '--text', 'x', '--json'], env);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /holds no published run \(no _SUCCESS\)/);
  });
});
