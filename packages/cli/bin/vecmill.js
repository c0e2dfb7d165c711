#!/usr/bin/env node
// Thin entry: size libuv's pool before anything starts it, then hand over to the compiled CLI.
// `vecmill run` first relaunches itself with glibc's malloc tuned (see relaunch.ts), which the
// allocator reads only at process start; the relaunched process runs the command.
import { tuneThreadPool } from '@vecmill/shared/config';

const argv = process.argv.slice(2);
const relaunched = argv[0] === 'run' ? await (await import('../dist/relaunch.js')).relaunchWithAllocatorSettings() : undefined;
if (relaunched !== undefined) {
  process.exitCode = relaunched;
} else {
  tuneThreadPool();
  const { main } = await import('../dist/main.js');
  main(argv).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`vecmill: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
