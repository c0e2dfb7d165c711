import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { chown, mkdir, writeFile } from 'node:fs/promises';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { freePort } from './free-port.js';
import { makeTempDir } from './tmp.js';

/** A real PostgreSQL server (Debian's `postgresql` package) in a temp folder, with password authentication. */
export interface PostgresTestServer {
  readonly port: number;
  /** The superuser's name and password. */
  readonly user: string;
  readonly password: string;
  /** `postgres://USER:PASSWORD@127.0.0.1:PORT/postgres`. */
  readonly url: string;
  /** Stops the server and deletes its folder. Safe to call twice. */
  stop(): Promise<void>;
}

/** The newest installed server's bin folder (`/usr/lib/postgresql/N/bin`), if any. */
function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin');
}

/** False when a PostgreSQL server can be started here; otherwise why tests that need one skip. */
export function postgresSkipReason(): string | false {
  if (postgresBinDir() === undefined) return 'skipped: no PostgreSQL server installed (apt-get install postgresql)';
  if (process.getuid?.() === 0 && spawnSync('id', ['-u', 'postgres']).status !== 0) return 'skipped: running as root and there is no postgres user to run the server as';
  return false;
}

/**
 * initdb a fresh cluster with scram-sha-256 authentication on TCP and start it on a free port of
 * 127.0.0.1. PostgreSQL refuses to run as root, so as root the server runs as the `postgres`
 * user. It has only what the installed package ships (no pgvector unless it is installed).
 */
export async function startPostgresServer(): Promise<PostgresTestServer> {
  const bin = postgresBinDir();
  if (bin === undefined) throw new Error('no PostgreSQL server installed');
  const tmp = await makeTempDir('postgres');
  const data = join(tmp.dir, 'data');
  const user = 'vecmill_admin';
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  const port = await freePort();
  const asPostgres: SpawnOptions = {};
  if (process.getuid?.() === 0) {
    const uid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());
    const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
    await chown(tmp.dir, uid, gid);
    Object.assign(asPostgres, { uid, gid });
  }
  await writeFile(join(tmp.dir, 'pw'), `${password}\n`, { mode: 0o644 });
  await mkdir(data, { mode: 0o700 });
  if (asPostgres.uid !== undefined) await chown(data, asPostgres.uid, asPostgres.gid!);
  const init = spawnSync(join(bin, 'initdb'), ['-D', data, '-U', user, '--auth=scram-sha-256', `--pwfile=${join(tmp.dir, 'pw')}`, '-E', 'UTF8', '--no-sync'], {
    ...asPostgres,
    encoding: 'utf8',
    cwd: tmp.dir,
  });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
  const child: ChildProcess = spawn(join(bin, 'postgres'), ['-D', data, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-k', tmp.dir, '-c', 'fsync=off'], {
    ...asPostgres,
    cwd: tmp.dir,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (log += c));
  const url = `postgres://${user}:${password}@127.0.0.1:${port}/postgres`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const probe = new pg.Client({ connectionString: url });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      await probe.end();
      break;
    } catch {
      await probe.end().catch(() => undefined);
    }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`postgres did not start on port ${port}: ${log}`);
    await sleep(100);
  }
  let stopped: Promise<void> | undefined;
  return {
    port,
    user,
    password,
    url,
    stop() {
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise((resolve) => child.once('exit', resolve));
          child.kill('SIGINT');
          await exited;
        }
        await tmp.cleanup();
      })();
      return stopped;
    },
  };
}
