/**
 * `npm run bench:text-memory`: only the text-only memory row of the bench (it takes long on its
 * own), printed as the bench prints its table. `npm run bench` includes it.
 */
import { cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTextMemoryBench } from './text-memory-bench.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const rows: string[] = [];
runTextMemoryBench(root, join(root, 'bench', '.work'), (_key, name, value, unit, note = '') => {
  rows.push(`| ${name} | ${value.toFixed(unit === 'x' ? 3 : 1)} ${unit} | ${note} |`);
  process.stderr.write(`  ${name}: ${value.toFixed(3)} ${unit} ${note}\n`);
})
  .then(() => {
    process.stdout.write(`\nvecmill bench (text memory) — ${new Date().toISOString()}\n${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}\n\n`);
    process.stdout.write(`| measure | value | note |\n|---|---|---|\n${rows.join('\n')}\n`);
  })
  .catch((err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
