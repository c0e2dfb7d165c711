import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { allocatorRelaunchEnv, MALLOC_MMAP_THRESHOLD_BYTES } from '@vecmill/shared/config';
import { projectRoot } from '../support/fixtures.js';

const probe = join(projectRoot, 'test', 'dist', 'support', 'relaunch-probe.js');
const glibc = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime !== undefined;
/** The test's own environment without the variable, so the launcher has something to do. */
const { MALLOC_MMAP_THRESHOLD_: _ignored, ...cleanEnv } = process.env;
const skip = glibc ? false : 'relaunching applies to glibc only';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * `vecmill run` (packages/cli/bin/vecmill.js) and the bench's measure-run relaunch themselves so
 * that glibc's malloc starts with a fixed mmap threshold (issue 10): the work happens in a child
 * that has it, exit codes and signals come back through the launcher, and an explicit setting is
 * left alone (no relaunch).
 */
describe('relaunching with the allocator setting', { skip }, () => {
  it('runs the work in a child that started with the threshold, and passes its exit code back', () => {
    assert.notEqual(allocatorRelaunchEnv(true, cleanEnv), undefined);
    const r = spawnSync(process.execPath, [probe, '3'], { encoding: 'utf8', env: cleanEnv });
    assert.equal(r.status, 3, r.stderr);
    const line = JSON.parse(r.stdout.trim()) as { pid: number; threshold: string | null };
    assert.equal(line.threshold, String(MALLOC_MMAP_THRESHOLD_BYTES));
    assert.notEqual(line.pid, r.pid, 'the work ran in a relaunched child');
  });

  it('does not relaunch when the threshold is set explicitly', () => {
    const r = spawnSync(process.execPath, [probe, '0'], { encoding: 'utf8', env: { ...cleanEnv, MALLOC_MMAP_THRESHOLD_: '131072' } });
    assert.equal(r.status, 0, r.stderr);
    const line = JSON.parse(r.stdout.trim()) as { pid: number; threshold: string | null };
    assert.deepEqual(line, { pid: r.pid, threshold: '131072' });
  });

  it('ends by the signal that ended the child', () => {
    const r = spawnSync(process.execPath, [probe, 'signal'], { encoding: 'utf8', env: cleanEnv });
    assert.equal(r.signal, 'SIGTERM', `status ${r.status}, ${r.stderr}`);
  });

  it('passes SIGTERM on to the child', { timeout: 30_000 }, async () => {
    const launcher = spawn(process.execPath, [probe, 'wait'], { env: cleanEnv, stdio: ['ignore', 'pipe', 'inherit'] });
    const [first] = (await once(launcher.stdout, 'data')) as [Buffer];
    const { pid } = JSON.parse(first.toString()) as { pid: number };
    assert.notEqual(pid, launcher.pid);
    const exited = once(launcher, 'exit');
    launcher.kill('SIGTERM');
    const [code, signal] = (await exited) as [number | null, string | null];
    assert.equal(signal, 'SIGTERM', `exit code ${code}`);
    for (let i = 0; i < 100 && alive(pid); i++) await sleep(20);
    assert.equal(alive(pid), false, 'the child is gone too');
  });
});
