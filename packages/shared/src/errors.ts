/**
 * One error base class for everything a user can hit. The `code` is stable (tests, logs and
 * dashboards match on it); `context` names the input (key, split, line, file) so a message can
 * say which input failed without string parsing. Messages are one line: what failed, which
 * input, what to do.
 */
export type ErrorCode =
  | 'E_CONFIG'
  | 'E_INPUT'
  | 'E_MODEL'
  | 'E_STORAGE'
  | 'E_STORAGE_TRANSIENT'
  | 'E_NOT_FOUND'
  | 'E_PAYLOAD'
  | 'E_COMMIT'
  | 'E_MERGE'
  | 'E_REDIS'
  | 'E_DOWNLOAD'
  | 'E_DATABASE'
  | 'E_RESOURCE'
  | 'E_INTERNAL';

/** Context attached to an error: which input it concerns. Values must never hold secrets. */
export type ErrorContext = Readonly<Record<string, string | number | boolean | undefined>>;

export class VecmillError extends Error {
  readonly code: ErrorCode;
  readonly context: ErrorContext;

  constructor(code: ErrorCode, message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.context = context;
  }
}

/** A bad flag, environment variable or config file value: fix the command line. */
export class ConfigError extends VecmillError {
  constructor(message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super('E_CONFIG', message, context, options);
  }
}

/**
 * The command line itself is wrong: an unknown flag, a flag without its value, a bad value, a
 * missing argument. The CLI prints it with a usage hint and exits 2, before any work starts.
 */
export class UsageError extends ConfigError {}

/** The input data cannot be read as a whole (missing file, empty prefix, unknown kind). */
export class InputError extends VecmillError {
  constructor(message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super('E_INPUT', message, context, options);
  }
}

/** The model folder is incomplete or does not match what vecmill expects. */
export class ModelError extends VecmillError {
  constructor(message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super('E_MODEL', message, context, options);
  }
}

/**
 * A storage operation failed. `transient` marks failures worth retrying (5xx, SlowDown,
 * dropped connections); everything else is final.
 */
export class StorageError extends VecmillError {
  constructor(message: string, context: ErrorContext = {}, options?: { cause?: unknown; transient?: boolean }) {
    super(options?.transient === true ? 'E_STORAGE_TRANSIENT' : 'E_STORAGE', message, context, options);
  }
}

/** The object or file does not exist. Separate from StorageError so callers can branch on it. */
export class NotFoundError extends VecmillError {
  constructor(message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super('E_NOT_FOUND', message, context, options);
  }
}

/** A job payload failed validation: never retried, since a retry cannot make it valid. */
export class PayloadError extends VecmillError {
  constructor(message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super('E_PAYLOAD', message, context, options);
  }
}

/** Two attempts raced to commit the same shard, or a commit found inconsistent state. */
export class CommitError extends VecmillError {
  constructor(message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super('E_COMMIT', message, context, options);
  }
}

/** The merger refused to publish: counts do not balance, ids repeat, or a shard is missing. */
export class MergeError extends VecmillError {
  constructor(message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super('E_MERGE', message, context, options);
  }
}

/** Redis is unreachable or configured in a way that could lose jobs. */
export class RedisError extends VecmillError {
  constructor(message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super('E_REDIS', message, context, options);
  }
}

/** A model download from a hub failed. */
export class DownloadError extends VecmillError {
  constructor(message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super('E_DOWNLOAD', message, context, options);
  }
}

/**
 * A split needs more of a bounded resource (WebAssembly memory, the heap) than it has: retrying
 * fails the same way, so the message says which setting to change.
 */
export class ResourceError extends VecmillError {
  constructor(message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super('E_RESOURCE', message, context, options);
  }
}

/**
 * Why a single row could not be embedded. Rows with these reasons become error rows; they never
 * fail a batch or a run.
 */
export type RowErrorReason =
  | 'bad_base64'
  | 'not_an_image'
  | 'corrupt_image'
  | 'too_many_pixels'
  | 'unsupported_format'
  | 'bad_utf8'
  | 'missing_field'
  | 'extra_field'
  | 'line_too_long'
  | 'empty_text'
  | 'embed_failed';

/** A per-row failure: carried as data in the shard's `error` column, not thrown past the row. */
export class RowError extends Error {
  readonly reason: RowErrorReason;

  constructor(reason: RowErrorReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RowError';
    this.reason = reason;
  }
}

/** The one-line text shown to a user for any error, known or not. */
export function describeError(err: unknown): string {
  if (err instanceof VecmillError) return `${err.message}`;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

/** A database that an export writes to refused a connection, the credentials, a privilege or the table's shape. */
export class DatabaseError extends VecmillError {
  constructor(message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super('E_DATABASE', message, context, options);
  }
}
