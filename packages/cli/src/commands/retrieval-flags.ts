import { ConfigError } from '@vecmill/shared/errors';

/** A flag value that must be one of a few words; fails naming the flag and the choices. */
export function oneOf<const T extends string>(value: string, allowed: readonly T[], flag: string): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new ConfigError(`${flag} ${JSON.stringify(value)}: use ${allowed.join(' or ')}`, { flag });
}

/** A positive integer flag, or `fallback` when absent. */
export function positiveIntFlag(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new ConfigError(`${flag} ${JSON.stringify(value)}: use a positive integer`, { flag });
  return n;
}
