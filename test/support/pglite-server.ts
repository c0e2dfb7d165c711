import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import pg from 'pg';

/** A PGlite (PostgreSQL 17 compiled to WebAssembly, with pgvector) served over TCP by pglite-socket. */
export interface PgliteTestServer {
  readonly port: number;
  /** `postgres://postgres:postgres@127.0.0.1:PORT/postgres` (PGlite accepts any password). */
  readonly url: string;
  /** A connected client for assertions (closed by `stop`). */
  client(): Promise<pg.Client>;
  /** Kills the server. Safe to call twice. */
  stop(): Promise<void>;
}

/** pglite-socket's own server script: PGlite in memory, `--extensions vector`, any port. */
const serverScript = join(dirname(createRequire(import.meta.url).resolve('@electric-sql/pglite-socket')), 'scripts', 'server.js');

/**
 * Starts pglite-socket's server in a child process on a port the OS picks, so the database does
 * its work off the test's event loop and is reached only over the wire protocol, as a real
 * PostgreSQL would be. Startup (compiling PGlite and running initdb) takes several seconds.
 */
export async function startPgliteServer(): Promise<PgliteTestServer> {
  const child: ChildProcess = spawn(process.execPath, [serverScript, '--port', '0', '--extensions', 'vector', '--max-connections', '8'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`pglite-server did not start within 120 s:\n${log}`)), 120_000);
    const onData = (chunk: string): void => {
      log += chunk;
      const m = /listening on (\{.*\})/.exec(log);
      if (m !== null) {
        clearTimeout(timer);
        resolve((JSON.parse(m[1]!) as { port: number }).port);
      }
    };
    child.stdout!.setEncoding('utf8').on('data', onData);
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (log += c));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`pglite-server exited with ${code}:\n${log}`));
    });
  });
  child.removeAllListeners('exit');
  child.stdout!.resume();
  const url = `postgres://postgres:postgres@127.0.0.1:${port}/postgres`;
  const clients: pg.Client[] = [];
  let stopped: Promise<void> | undefined;
  return {
    port,
    url,
    async client() {
      const c = new pg.Client({ connectionString: url });
      c.on('error', () => undefined);
      await c.connect();
      clients.push(c);
      return c;
    },
    stop() {
      stopped ??= (async () => {
        for (const c of clients) await c.end().catch(() => undefined);
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise((resolve) => child.once('exit', resolve));
          child.kill('SIGKILL');
          await exited;
        }
      })();
      return stopped;
    },
  };
}
