/**
 * `npm run bench:publish`: only the publish rows of the bench, printed as the bench prints its
 * table. `npm run bench` includes them.
 */
import { cpus, totalmem } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runPublishBench } from './publish-bench.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const rows: string[] = [];
runPublishBench(root, (_key, name, value, unit, note = '') => {
  rows.push(`| ${name} | ${value.toFixed(3)} ${unit} | ${note} |`);
  process.stderr.write(`  ${name}: ${value.toFixed(3)} ${unit} ${note}\n`);
}, process.argv.includes('--quick'))
  .then(() => {
    process.stdout.write(`\nvecmill bench (publish) — ${new Date().toISOString()}\n${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}\n\n`);
    process.stdout.write(`| measure | value | note |\n|---|---|---|\n${rows.join('\n')}\n`);
  })
  .catch((err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
