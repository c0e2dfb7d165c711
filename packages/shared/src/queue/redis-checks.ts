import type { Redis } from 'ioredis';
import { describeError, RedisError } from '../errors.js';

/**
 * Refuses a Redis that may evict keys: under memory pressure an evicting policy silently drops
 * job hashes and locks, and a run would hang or lose splits with no error anywhere. Managed
 * Redis and ACL users often may not run CONFIG GET; then the policy cannot be seen, so this warns
 * and trusts the operator rather than refusing a service it cannot inspect.
 */
export async function checkRedisSettings(redis: Redis, where: string, onWarning: (line: string) => void): Promise<void> {
  let reply: unknown;
  try {
    reply = await redis.config('GET', 'maxmemory-policy');
  } catch (err) {
    onWarning(`cannot read maxmemory-policy of Redis at ${where} (${describeError(err)}); make sure it is noeviction, or jobs may be evicted under memory pressure`);
    return;
  }
  const policy = Array.isArray(reply) ? reply[1] : undefined;
  if (typeof policy !== 'string') {
    onWarning(`Redis at ${where} did not report its maxmemory-policy; make sure it is noeviction`);
    return;
  }
  if (policy !== 'noeviction') {
    throw new RedisError(
      `Redis at ${where} has maxmemory-policy ${policy}, which may evict queued jobs; set it to noeviction (CONFIG SET maxmemory-policy noeviction, or in redis.conf)`,
      { redis: where, policy },
    );
  }
}
