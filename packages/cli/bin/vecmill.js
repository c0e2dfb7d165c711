#!/usr/bin/env node
// Thin entry: size libuv's pool before anything starts it, then hand over to the compiled CLI.
import { tuneThreadPool } from '@vecmill/shared/config';

tuneThreadPool();
const { main } = await import('../dist/main.js');
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`vecmill: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
