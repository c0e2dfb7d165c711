import { ConfigError, DatabaseError } from '@vecmill/shared/errors';

/**
 * A PostgreSQL connection URL as messages may show it: the password (in the authority or a
 * `password=` query parameter) is replaced by `***` in every text that leaves the exporter,
 * including the driver's own error messages, so no log line ever carries a credential.
 */
export interface PgTarget {
  /**
   * The URL to hand to the driver: as given, plus `uselibpqcompat=true` when it sets `sslmode`, so
   * `sslmode` means what it means to libpq and psql (`require` encrypts without verifying the
   * certificate, `verify-full` verifies it) rather than node-postgres's older reading, where every
   * mode verified like `verify-full` and printed a multi-line deprecation warning.
   */
  readonly url: string;
  /** The URL with its password replaced by `***`: what messages show. */
  readonly shown: string;
  /** The user the URL names, when it names one (else the driver takes PGUSER or the OS user). */
  readonly user: string | undefined;
  /** Removes every secret of the URL from a text. */
  scrub(text: string): string;
}

const SECRET_PARAMS = ['password', 'sslpassword'];

/** Parses and redacts `--url`; a value that is not a postgres:// URL is refused without echoing it (it may hold a password). */
export function pgTarget(url: string): PgTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (err) {
    throw new ConfigError('--url is not a URL: expected postgres://USER:PASSWORD@HOST:PORT/DATABASE (the password may come from PGPASSWORD instead)', {}, { cause: err });
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new ConfigError(`--url must start with postgres:// or postgresql://, not ${parsed.protocol}//`);
  }
  const secrets: string[] = [];
  if (parsed.password !== '') {
    secrets.push(parsed.password, safeDecode(parsed.password));
    parsed.password = '***';
  }
  for (const name of SECRET_PARAMS) {
    const value = parsed.searchParams.get(name);
    if (value !== null && value !== '') {
      secrets.push(value, encodeURIComponent(value));
      parsed.searchParams.set(name, '***');
    }
  }
  const shown = parsed.toString().replace(/%2A%2A%2A/g, '***');
  const libpq = parsed.searchParams.has('sslmode') && !parsed.searchParams.has('uselibpqcompat');
  const sorted = [...new Set(secrets)].filter((s) => s !== '').sort((a, b) => b.length - a.length);
  return {
    url: libpq ? `${url}${url.includes('?') ? '&' : '?'}uselibpqcompat=true` : url,
    shown,
    user: parsed.username === '' ? undefined : safeDecode(parsed.username),
    scrub: (text) => sorted.reduce((t, s) => t.split(s).join('***'), text),
  };
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** The fields of a node-postgres or socket error that tell what failed. */
interface DriverError {
  readonly code?: string;
  readonly message?: string;
  readonly errors?: readonly DriverError[];
}

/**
 * Turns a driver or server failure into one line that says what failed at which (redacted)
 * target and what to do. `during` names the step ("connecting", "creating the extension", …).
 */
export function pgFailure(err: unknown, target: PgTarget, during: string): DatabaseError {
  const e = (err ?? {}) as DriverError;
  const code = e.code ?? e.errors?.find((x) => x.code !== undefined)?.code;
  const raw = (e.message ?? '') !== '' ? String(e.message) : (e.errors?.map((x) => x.message).join('; ') ?? String(err));
  const message = target.scrub(raw.split('\n')[0] ?? '');
  const at = `PostgreSQL at ${target.shown}`;
  const user = target.user !== undefined ? `user "${target.user}"` : 'the user (PGUSER or the OS user)';
  const line = ((): string => {
    switch (code) {
      case 'ECONNREFUSED':
        return `cannot connect to ${at}: connection refused; check the host and port, and that the server is running`;
      case 'ENOTFOUND':
      case 'EAI_AGAIN':
        return `cannot connect to ${at}: the host name does not resolve; check the URL's host`;
      case 'ETIMEDOUT':
        return `cannot connect to ${at}: timed out; check the host, port and firewall`;
      case '28P01':
        return `${at} refused the password for ${user}: check the password in the URL or PGPASSWORD`;
      case '28000':
        return `${at} refused ${user}: ${message}; check the user, or the server's pg_hba.conf`;
      case '3D000':
        return `${at}: ${message}; create the database or fix the URL's database name`;
      case '42501':
        return `${at}: permission denied while ${during} (${message}); ask the database owner or a superuser to grant it, or to run CREATE EXTENSION vector once`;
      default:
        if (/extension "vector" is not available|could not open extension control file/.test(raw)) {
          return `${at} does not have pgvector installed (${message}); install pgvector on the server (or use a PostgreSQL that ships it), then run again`;
        }
        if (/does not support SSL/i.test(raw)) return `cannot connect to ${at}: the server does not support SSL; use sslmode=disable (or PGSSLMODE=disable) if that is acceptable`;
        if (/timeout/i.test(raw)) return `cannot connect to ${at}: timed out; check the host, port and firewall`;
        return `${during} failed on ${at}: ${message}`;
    }
  })();
  return new DatabaseError(line, { sqlstate: code }, { cause: err });
}
