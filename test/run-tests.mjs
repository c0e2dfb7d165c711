// Runs every compiled test file with node's built-in runner. Node 20's `--test` takes no globs,
// so the files are listed here. Pass `unit` or `integration` to run one folder.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), 'dist');
const only = process.argv[2];
const files = [];
function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.js')) files.push(p);
  }
}
for (const folder of ['unit', 'integration']) {
  if (only !== undefined && only !== folder) continue;
  try { walk(join(root, folder)); } catch { /* folder not built yet */ }
}
if (files.length === 0) {
  console.error('no compiled tests found under test/dist: run `tsc -b` first');
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
