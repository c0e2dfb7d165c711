/**
 * Child-process entry for memory tests and the bench: runs `vecmill run` with the given argv in
 * this process and prints one JSON line with the peak RSS, the rows, the wall time, the
 * embedding-phase time (run start to merge start), the CPU time of all its threads (whole run and
 * embedding phase) and the longest event-loop delay meanwhile.
 *
 * Peak RSS is the kernel's VmHWM of the address space of the process that runs `vecmill run`
 * (the relaunched one; not the idle launcher's, about 40 MiB). getrusage's maxRSS is not used:
 * Linux carries it over from the parent across fork and exec, so a child of a large process
 * would report the parent's size.
 */
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { relaunchWithAllocatorSettings } from 'vecmill/relaunch';

// As `vecmill run` does (packages/cli/bin/vecmill.js): the measured process is the relaunched one,
// with glibc's malloc tuned, so the figures are what a user of `vecmill run` gets.
const relaunched = await relaunchWithAllocatorSettings();
if (relaunched !== undefined) process.exit(relaunched);
const { loadRunConfig, tuneThreadPool } = await import('@vecmill/shared/config');
const { runEmbedded } = await import('vecmill/embedded-run');
tuneThreadPool();
let sampled = 0;
const timer = setInterval(() => {
  sampled = Math.max(sampled, process.memoryUsage.rss());
}, 50);
const loop = monitorEventLoopDelay({ resolution: 10 });
const t0 = performance.now();
let embedStart = t0;
let embedEnd = t0;
let embedCpuStart = process.cpuUsage();
let embedCpu = embedCpuStart;
const result = await runEmbedded(loadRunConfig(process.argv.slice(2)), (e) => {
  if (e.type === 'run-start') {
    embedStart = performance.now();
    embedCpuStart = process.cpuUsage();
    loop.enable();
  }
  if (e.type === 'merge-start') {
    embedEnd = performance.now();
    embedCpu = process.cpuUsage(embedCpuStart);
    loop.disable();
  }
});
const seconds = (performance.now() - t0) / 1000;
clearInterval(timer);
const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
const maxRssBytes = Math.max(sampled, hwm === null ? 0 : Number(hwm[1]) * 1024);
process.stdout.write(
  `${JSON.stringify({
    maxRssBytes,
    rows: result.manifest.rows.in,
    ok: result.manifest.rows.ok,
    seconds,
    embedSeconds: (embedEnd - embedStart) / 1000,
    cpuSeconds: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
    embedCpuSeconds: (embedCpu.user + embedCpu.system) / 1e6,
    maxEventLoopDelayMs: loop.max / 1e6,
    timings: result.manifest.timings,
  })}\n`,
);
