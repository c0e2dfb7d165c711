import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import { ConfigError, describeError, RedisError } from '../errors.js';

/** Where Redis is and how to trust it; built by the config loader from `--redis` and `--redis-ca`. */
export interface RedisTarget {
  /** `redis://[user:password@]host:port[/db]` or `rediss://…` for TLS. May hold a password: never log it, use `redactRedisUrl`. */
  readonly url: string;
  /** PEM file of a private CA for `rediss://` (managed Redis with its own CA). */
  readonly caFile?: string | undefined;
}

/**
 * Who holds the connection. Workers wait out Redis outages (`maxRetriesPerRequest: null`, as
 * BullMQ requires, and endless reconnects), since their jobs survive in Redis; producers and
 * `status` are run by a person or a script that wants an answer, so their commands fail fast.
 */
export type ConnectionRole = 'worker' | 'client';

/** How long a fail-fast connection tries before giving up. */
export const CLIENT_CONNECT_TIMEOUT_MS = 5_000;

/** `redis://user:secret@host:6379/0` → `redis://user:***@host:6379/0`: the form every message and log uses. */
export function redactRedisUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^/@]*)@/i, (_m, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    return colon === -1 ? `${scheme}***@` : `${scheme}${userinfo.slice(0, colon)}:***@`;
  });
}

/** ioredis options as BullMQ and `new Redis()` both take them (reply mapping stays ioredis' default). */
export type ConnectionSettings = Omit<RedisOptions, 'replyMapping'>;

/** ioredis options for a role, parsed from the URL (so TLS and the CA apply however the URL is spelt). */
export function redisOptions(target: RedisTarget, role: ConnectionRole): ConnectionSettings {
  let u: URL;
  try {
    u = new URL(target.url);
  } catch (err) {
    throw new ConfigError(`--redis ${redactRedisUrl(target.url)} is not a URL: use redis://host:6379 or rediss://host:6380`, {}, { cause: err });
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new ConfigError(`--redis ${redactRedisUrl(target.url)}: expected a redis:// or rediss:// URL`);
  }
  const db = u.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) throw new ConfigError(`--redis ${redactRedisUrl(target.url)}: the path must be a database number`);
  if (target.caFile !== undefined && u.protocol !== 'rediss:') throw new ConfigError('--redis-ca needs a rediss:// URL (TLS)');
  let ca: string | undefined;
  if (target.caFile !== undefined) {
    try {
      ca = readFileSync(target.caFile, 'utf8');
    } catch (err) {
      throw new ConfigError(`--redis-ca ${target.caFile} cannot be read: ${describeError(err)}`, {}, { cause: err });
    }
  }
  const base: ConnectionSettings = {
    host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: u.port === '' ? 6379 : Number(u.port),
    db: db === '' ? 0 : Number(db),
    ...(u.username !== '' ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password !== '' ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: ca !== undefined ? { ca } : {} } : {}),
  };
  if (role === 'worker') {
    return { ...base, maxRetriesPerRequest: null, retryStrategy: (times) => Math.min(200 * times, 5_000) };
  }
  return {
    ...base,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    connectTimeout: CLIENT_CONNECT_TIMEOUT_MS,
    retryStrategy: () => null,
  };
}

/**
 * Opens a fail-fast connection and waits until it is ready: an unreachable Redis becomes one
 * clear E_REDIS error within seconds instead of a silent hang.
 */
export async function connectRedis(target: RedisTarget): Promise<Redis> {
  const redis = new Redis({ ...redisOptions(target, 'client'), lazyConnect: true });
  // ioredis rejects connect() with a bare "Connection is closed"; the socket's own error says why.
  let cause: unknown;
  redis.on('error', (err) => (cause ??= err));
  try {
    await redis.connect();
    return redis;
  } catch (err) {
    redis.disconnect();
    const why = (cause as NodeJS.ErrnoException | undefined)?.code ?? describeError(cause ?? err);
    throw new RedisError(`cannot reach Redis at ${redactRedisUrl(target.url)} (${why}); check --redis and that redis-server is running`, {
      redis: redactRedisUrl(target.url),
    }, { cause: cause ?? err });
  }
}
