/**
 * Child-process entry for the relaunch test: starts the way `vecmill run` starts
 * (`relaunchWithAllocatorSettings`), then prints one JSON line with its pid and the
 * `MALLOC_MMAP_THRESHOLD_` its process started with (from /proc, which is what glibc read), and
 * ends as its argument says: an exit code, `signal` (kills itself with SIGTERM), or `wait`
 * (waits to be signalled).
 */
import { readFileSync } from 'node:fs';
import { relaunchWithAllocatorSettings } from 'vecmill/relaunch';

const relaunched = await relaunchWithAllocatorSettings();
if (relaunched !== undefined) process.exit(relaunched);
const started = readFileSync('/proc/self/environ', 'utf8').split('\0');
const threshold = started.find((v) => v.startsWith('MALLOC_MMAP_THRESHOLD_='))?.split('=')[1] ?? null;
process.stdout.write(`${JSON.stringify({ pid: process.pid, threshold })}\n`);
const mode = process.argv[2] ?? '0';
if (mode === 'signal') process.kill(process.pid, 'SIGTERM');
else if (mode === 'wait') setInterval(() => undefined, 1000);
else process.exitCode = Number(mode);
