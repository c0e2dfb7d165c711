import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeDataset } from '@vecmill/tools/datagen/make-dataset';
import { StorageError, VecmillError, describeError } from '@vecmill/shared/errors';
import { parseNpyHeader } from '@vecmill/shared/formats/npy-writer';
import { readParquet } from '@vecmill/shared/formats/parquet-io';
import type { Manifest } from '@vecmill/shared/manifest';
import { outputKeys } from '@vecmill/shared/run-plan';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { runEmbedded } from 'vecmill/embedded-run';
import { eventLog, readParts, runConfig } from '../support/run-helpers.js';
import { tinyModelDir } from '../support/tiny-model.js';
import { makeTempDir } from '../support/tmp.js';

/** Mounts a tmpfs of `size` at `dir` (mode `ro` for read-only); returns the error text, or undefined on success. */
function mountTmpfs(dir: string, size: string, mode: 'rw' | 'ro' = 'rw'): string | undefined {
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},${mode}`, 'tmpfs', dir], { encoding: 'utf8' });
  return r.status === 0 ? undefined : `${r.stderr || r.error?.message || `exit ${r.status}`}`.trim();
}

function umount(dir: string): void {
  spawnSync('umount', [dir]);
}

/** Whether this process may mount a tmpfs (root in a container usually may; CI runners often may not). */
function mountSkipReason(probeRoot: string): string | false {
  const probe = join(probeRoot, 'mount-probe');
  mkdirSync(probe, { recursive: true });
  const failed = mountTmpfs(probe, '64k');
  if (failed !== undefined) return `skipped: cannot mount a tmpfs here (${failed.split('\n')[0]}); run as root or with CAP_SYS_ADMIN`;
  umount(probe);
  return false;
}

/** Every file below `dir`, relative, `/`-separated. */
function filesBelow(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesBelow(path).map((f) => `${entry.name}/${f}`));
    else out.push(relative(dir, path));
  }
  return out;
}

/** Captions and a hash of all embeddings, in row order: what two runs must agree on. */
async function contentOf(out: string, manifest: Manifest): Promise<{ texts: (string | null)[]; vectors: string }> {
  const texts: (string | null)[] = [];
  const hash = createHash('sha256');
  for (const t of await readParts(new LocalStore(out), manifest)) {
    for (let i = 0; i < t.numRows; i++) {
      const r = t.row(i);
      texts.push(r.text);
      const v = r.textEmbedding!;
      hash.update(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
    }
  }
  return { texts, vectors: hash.digest('hex') };
}

const probe = await makeTempDir('disk-probe');
const skip = mountSkipReason(probe.dir);
await probe.cleanup();

describe('output folder not writable or full', { skip }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let model: string;
  let input: string;
  const mounted: string[] = [];
  const rows = 4000;
  const args = (out: string): string[] => ['--input', input, '--model', model, '--output', out, '--kind', 'text', '--split-size', '32KiB', '--formats', 'npy,tsv'];

  before(async () => {
    ({ dir, cleanup } = await makeTempDir('disk'));
    model = await tinyModelDir();
    input = join(dir, 'captions.tsv');
    await makeDataset({ path: input, rows, kind: 'text', seed: 17 });
  });
  after(async () => {
    for (const m of mounted) umount(m);
    await cleanup();
  });

  const mount = (name: string, size: string, mode: 'rw' | 'ro' = 'rw'): string => {
    const at = join(dir, name);
    mkdirSync(at, { recursive: true });
    const failed = mountTmpfs(at, size, mode);
    assert.equal(failed, undefined, `mount ${at}: ${failed}`);
    mounted.push(at);
    return at;
  };

  it('a full disk fails the run with one clear line, leaves no corrupt or partial file, and a re-run after freeing space completes', async () => {
    const reference = join(dir, 'reference');
    const clean = await runEmbedded(runConfig(args(reference)), () => undefined);
    const needed = filesBelow(reference).reduce((n, f) => n + statSync(join(reference, f)).size, 0);
    assert.ok(needed > 2.5 * 1024 * 1024, `the output needs ${needed} bytes, well over the 2 MiB disk`);

    const out = mount('full', '2m');
    const { events, sink } = eventLog();
    const err = await runEmbedded(runConfig(args(out)), sink).then(
      () => assert.fail('the run cannot fit in 2 MiB'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof VecmillError, String(err));
    const message = describeError(err);
    assert.doesNotMatch(message, /\n/, 'one line');
    assert.match(message, /no space left on the device/);
    assert.ok(message.includes(out), `names the folder: ${message}`);
    assert.ok(events.some((e) => e.type === 'run-start'), 'it failed while writing, not before starting');

    const left = filesBelow(out);
    assert.ok(!left.includes(outputKeys.success) && !left.includes(outputKeys.manifest), 'nothing published');
    assert.deepEqual(left.filter((f) => /(^|\/)\./.test(f)), [], 'temp files of failed writes are removed');
    for (const f of left) {
      const bytes = readFileSync(join(out, f));
      if (f.endsWith('.parquet')) assert.ok(readParquet(bytes).numRows >= 0, `${f} is whole`);
      else if (f.endsWith('.npy')) {
        const h = parseNpyHeader(bytes);
        const [n, d] = h.shape;
        assert.equal(bytes.length, h.dataOffset + (n ?? 0) * (d ?? 0) * (h.descr === '<f2' ? 2 : 4), `${f} is whole`);
      } else if (f.endsWith('.json')) JSON.parse(bytes.toString('utf8'));
    }

    spawnSync('mount', ['-o', 'remount,size=64m', out]);
    const rerun = await runEmbedded(runConfig(args(out)), () => undefined);
    assert.equal(rerun.manifest.rows.in, rows);
    assert.equal(rerun.manifest.rows.ok, rows);
    assert.ok(rerun.splitsReused > 0, 'splits committed before the disk filled are kept');
    assert.deepEqual(await contentOf(out, rerun.manifest), await contentOf(reference, clean.manifest));
  });

  it('a read-only output folder fails before any embedding with one clear line', async () => {
    const out = mount('readonly', '1m', 'ro');
    const { events, sink } = eventLog();
    const err = await runEmbedded(runConfig(args(out)), sink).then(
      () => assert.fail('a read-only output cannot be written'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof StorageError, String(err));
    assert.doesNotMatch(err.message, /\n/);
    assert.match(err.message, /not writable.*read-only/);
    assert.deepEqual(events, [], 'no run started');
  });

  it(
    'a new output folder on a read-only file system is reported as read-only',
    async () => {
      const out = mounted.find((m) => m.endsWith('readonly')) ?? mount('readonly', '1m', 'ro');
      const err = await runEmbedded(runConfig(args(join(out, 'run'))), () => undefined).then(
        () => assert.fail('a read-only output cannot be written'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof StorageError, String(err));
      assert.match(err.message, /not writable.*read-only/);
    },
  );

  it('an output path through a regular file fails before any embedding with one clear line', async () => {
    writeFileSync(join(dir, 'a-file'), 'not a folder');
    const { events, sink } = eventLog();
    const err = await runEmbedded(runConfig(args(join(dir, 'a-file', 'out'))), sink).then(
      () => assert.fail('a file cannot hold an output folder'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof StorageError, String(err));
    assert.doesNotMatch(err.message, /\n/);
    assert.match(err.message, /not writable.*is a file, not a folder/);
    assert.deepEqual(events, []);
  });
});
