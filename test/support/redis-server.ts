import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { freePort } from './free-port.js';
import { makeTempDir } from './tmp.js';

/** How the test Redis is started. */
export interface RedisServerOptions {
  /** Append-only file on (survives `restart`, as a production Redis should). Default false. */
  readonly appendonly?: boolean;
  /** maxmemory-policy (default noeviction, what vecmill requires). */
  readonly maxmemoryPolicy?: string;
  /** `requirepass`: clients must send this password. */
  readonly password?: string;
  /** Serve TLS only (`rediss://`), with a certificate for 127.0.0.1 signed by a fresh private CA (`caFile`). Needs openssl. */
  readonly tls?: boolean;
}

/** A redis-server child process on a free port of 127.0.0.1, with its data in a temp folder. */
export interface RedisTestServer {
  readonly port: number;
  /** `redis://127.0.0.1:PORT` or `rediss://…` (with the password when one was set). */
  readonly url: string;
  /** PEM of the private CA that signed the server certificate, with `tls`. */
  readonly caFile: string | undefined;
  /** A connected client for assertions (closed by `stop`). */
  client(): Promise<Redis>;
  /** Stops the server with SIGTERM and starts it again on the same port (with AOF on, the data survives). */
  restart(): Promise<void>;
  /** SIGKILLs the server (a crash); `start` brings it back on the same port. */
  kill(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and deletes its folder. Safe to call twice. */
  stop(): Promise<void>;
}

/** True when `redis-server` is on PATH; tests skip with a message otherwise. */
export function redisSkipReason(): string | false {
  const found = (process.env['PATH'] ?? '').split(':').some((d) => d !== '' && existsSync(join(d, 'redis-server')));
  return found ? false : 'skipped: redis-server is not installed (apt-get install redis-server)';
}

/** Starts redis-server; call `stop()` in `after`. */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisTestServer> {
  const tmp = await makeTempDir('redis');
  const port = await freePort();
  const auth = options.password !== undefined ? `:${encodeURIComponent(options.password)}@` : '';
  const url = `${options.tls === true ? 'rediss' : 'redis'}://${auth}127.0.0.1:${port}`;
  const caFile = options.tls === true ? makeCertificates(tmp.dir) : undefined;
  const tlsClient = caFile !== undefined ? { tls: { ca: readFileSync(caFile, 'utf8') } } : {};
  const args = [
    ...(caFile !== undefined
      ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', join(tmp.dir, 'server.pem'), '--tls-key-file', join(tmp.dir, 'server.key'), '--tls-ca-cert-file', caFile, '--tls-auth-clients', 'no']
      : ['--port', String(port)]),
    '--bind', '127.0.0.1',
    '--dir', tmp.dir,
    '--save', '',
    '--appendonly', options.appendonly === true ? 'yes' : 'no',
    '--appendfsync', 'always',
    '--maxmemory-policy', options.maxmemoryPolicy ?? 'noeviction',
    ...(options.password !== undefined ? ['--requirepass', options.password] : []),
  ];
  let child: ChildProcess | undefined;
  const clients: Redis[] = [];
  const start = async (): Promise<void> => {
    child = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'inherit'] });
    const deadline = Date.now() + 10_000;
    for (;;) {
      const probe = new Redis({ host: '127.0.0.1', port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, ...tlsClient, ...(options.password !== undefined ? { password: options.password } : {}) });
      probe.on('error', () => undefined);
      try {
        await probe.connect();
        const loading = (await probe.info('persistence')).includes('loading:1');
        probe.disconnect();
        if (!loading) return;
      } catch {
        probe.disconnect();
      }
      if (Date.now() > deadline) throw new Error(`redis-server did not start on port ${port}`);
      await sleep(50);
    }
  };
  const exited = (): Promise<void> =>
    new Promise((resolve) => {
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
  await start();
  let stopped: Promise<void> | undefined;
  return {
    port,
    url,
    caFile,
    async client() {
      const c = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: null, ...tlsClient, ...(options.password !== undefined ? { password: options.password } : {}) });
      c.on('error', () => undefined);
      clients.push(c);
      return c;
    },
    async restart() {
      const done = exited();
      child?.kill('SIGTERM');
      await done;
      await start();
    },
    async kill() {
      const done = exited();
      child?.kill('SIGKILL');
      await done;
    },
    start,
    stop() {
      stopped ??= (async () => {
        for (const c of clients) c.disconnect();
        const done = exited();
        child?.kill('SIGKILL');
        await done;
        await tmp.cleanup();
      })();
      return stopped;
    },
  };
}

/** A CA and a server certificate for 127.0.0.1 in `dir`; returns the CA's PEM path. */
function makeCertificates(dir: string): string {
  const run = (args: readonly string[]): void => {
    const r = spawnSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
  };
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=vecmill test CA', '-keyout', 'ca.key', '-out', 'ca.pem']);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'server.key', '-out', 'server.csr']);
  writeFileSync(join(dir, 'san.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'san.cnf', '-out', 'server.pem']);
  return join(dir, 'ca.pem');
}
