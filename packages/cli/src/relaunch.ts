import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { allocatorRelaunchEnv } from '@vecmill/shared/config';

/** Signals the launcher passes on to the process doing the work. */
const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** Whether this process runs on glibc, whose malloc reads `MALLOC_MMAP_THRESHOLD_`; musl and other systems do not. */
function onGlibc(): boolean {
  if (process.platform !== 'linux') return false;
  // Node 20.13+ can leave out the network part, which takes most of a report's 70 ms; its types lag.
  (process.report as { excludeNetwork?: boolean }).excludeNetwork = true;
  const header = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header;
  return header?.glibcVersionRuntime !== undefined;
}

/**
 * Runs this same script again, with the same arguments, in a child process that has the allocator
 * setting `allocatorRelaunchEnv` asks for, and resolves with its exit code; resolves undefined
 * when this process already is the one to do the work (setting in effect, set explicitly, or not
 * glibc). Meanwhile this process only waits (one idle Node, about 40 MiB) and passes SIGINT,
 * SIGTERM and SIGHUP on, so a signal may reach the child twice (a terminal's Ctrl-C reaches
 * both): only for commands that handle no signal, which is why `vecmill worker` is not
 * relaunched (its images set the variable). A child killed by a signal ends this process with
 * the same signal. SIGKILL cannot be passed on: a launcher killed that way leaves the child to
 * finish (or be killed) on its own.
 */
export async function relaunchWithAllocatorSettings(): Promise<number | undefined> {
  const env = allocatorRelaunchEnv(onGlibc());
  if (env === undefined) return undefined;
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env });
  const forward = (signal: NodeJS.Signals): void => {
    child.kill(signal);
  };
  for (const s of FORWARDED) process.on(s, forward);
  const [code, signal] = (await once(child, 'exit').finally(() => {
    for (const s of FORWARDED) process.off(s, forward);
  })) as [number | null, NodeJS.Signals | null];
  if (signal !== null) process.kill(process.pid, signal);
  return code ?? 1;
}
