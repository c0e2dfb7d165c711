/**
 * Configuration of the distributed commands (`produce`, `worker`, `status`). Like config.ts it is
 * the only place these commands read the environment (through the `env` argument), and every bad
 * flag fails here with one line before Redis is touched. Embedding flags of `produce` are the
 * ones of `vecmill run`, parsed by `loadRunConfig`, so both modes plan a run identically.
 */
import { availableParallelism } from 'node:os';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { loadEnvSettings, loadRunConfig, type EnvSettings, type RunConfig } from './config.js';
import { ConfigError } from './errors.js';
import type { DeviceRequest } from './model/execution-provider.js';
import type { RedisTarget } from './queue/bullmq-connection.js';
import { DEFAULT_QUEUE_PREFIX, queuePrefixPattern, type QueueRole } from './queue/queue-names.js';
import { checkRunId } from './run-plan.js';

/** Settings shared by every command that talks to Redis. */
export interface RedisConfig {
  readonly redis: RedisTarget;
  /** BullMQ key prefix: runs under different prefixes never see each other's jobs. */
  readonly prefix: string;
}

/** `vecmill produce`. */
export interface ProduceConfig extends RedisConfig {
  /** The run to plan and enqueue; undefined with `--resume` alone, where plan.json is the source. */
  readonly run: RunConfig | undefined;
  /** `--resume ID`: re-enqueue the splits of an existing run that have no marker. */
  readonly resume: string | undefined;
  /** With `--resume`, the output holding plan.json when Redis no longer knows the run. */
  readonly output: string | undefined;
  /** Jobs added per Redis round trip. */
  readonly chunkSize: number;
  /** Tries per split before it fails the run. */
  readonly attempts: number;
  /** First retry delay; doubles per attempt, with jitter. */
  readonly backoffMs: number;
  readonly env: EnvSettings;
}

/** `vecmill worker`. */
export interface WorkerConfig extends RedisConfig {
  readonly queues: readonly QueueRole[];
  /** Embed jobs in flight in this process; they share one inference thread. */
  readonly concurrency: number;
  readonly device: DeviceRequest;
  readonly threads: number;
  /** Image preprocessing threads (decode + exact resize). */
  readonly decodeThreads: number;
  /** Port of the Prometheus endpoint (`/metrics`, `/healthz`); undefined = none. */
  readonly metricsPort: number | undefined;
  /** How long a job's lock lasts without renewal; a worker silent for longer loses its job. */
  readonly lockDurationMs: number;
  /** How often this worker looks for jobs whose lock expired. */
  readonly stalledIntervalMs: number;
  /** Stalls a job may survive before it fails (each kill -9 or network partition is one). */
  readonly maxStalled: number;
  /** Name recorded on each job this worker processes (default host:pid). */
  readonly name: string | undefined;
  readonly env: EnvSettings;
}

/** `vecmill status`. */
export interface StatusConfig extends RedisConfig {
  readonly runId: string;
  readonly watch: boolean;
  readonly json: boolean;
  readonly intervalMs: number;
}

/** Defaults of the distributed commands, documented once. */
export const distributedDefaults = {
  chunkSize: 1000,
  attempts: 5,
  backoffMs: 2000,
  concurrency: 2,
  lockDurationMs: 30_000,
  stalledIntervalMs: 30_000,
  maxStalled: 3,
  statusIntervalMs: 2000,
  queues: ['embed', 'merge'] as readonly QueueRole[],
};

const redisFlags = {
  redis: { type: 'string' },
  'redis-ca': { type: 'string' },
  prefix: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

const produceFlags = {
  ...redisFlags,
  resume: { type: 'string' },
  'chunk-size': { type: 'string' },
  attempts: { type: 'string' },
  backoff: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

/** Parses `vecmill produce` flags; embedding flags are those of `vecmill run`. */
export function loadProduceConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ProduceConfig {
  const { mine, rest } = takeFlags(argv, produceFlags);
  const v = parseFlags(mine, produceFlags, 'produce');
  const resume = v.resume === undefined ? undefined : checkRunIdFlag(v.resume, '--resume');
  const restFlags = new Set(rest.filter((a) => a.startsWith('--')).map((a) => a.split('=')[0]));
  const onlyOutput = [...restFlags].every((f) => f === '--output' || f === '--progress');
  let run: RunConfig | undefined;
  let output: string | undefined;
  if (resume !== undefined && onlyOutput) {
    output = flagValue(rest, '--output');
  } else {
    try {
      run = loadRunConfig(resume !== undefined ? [...rest, '--run-id', resume] : rest, env);
    } catch (err) {
      if (err instanceof ConfigError) throw new ConfigError(err.message.replace('vecmill run', 'vecmill produce').replace('`vecmill run --help`', '`vecmill produce --help`'), err.context, { cause: err });
      throw err;
    }
    output = run.output;
  }
  return {
    ...redisConfig(v, env),
    run,
    resume,
    output,
    chunkSize: v['chunk-size'] === undefined ? distributedDefaults.chunkSize : positiveInt(v['chunk-size'], '--chunk-size'),
    attempts: v.attempts === undefined ? distributedDefaults.attempts : positiveInt(v.attempts, '--attempts'),
    backoffMs: v.backoff === undefined ? distributedDefaults.backoffMs : positiveInt(v.backoff, '--backoff'),
    env: loadEnvSettings(env),
  };
}

/** Parses `vecmill worker` flags. */
export function loadWorkerConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const v = parseFlags(argv, {
    ...redisFlags,
    queues: { type: 'string' },
    concurrency: { type: 'string' },
    device: { type: 'string' },
    threads: { type: 'string' },
    'decode-threads': { type: 'string' },
    'metrics-port': { type: 'string' },
    'lock-duration': { type: 'string' },
    'stalled-interval': { type: 'string' },
    'max-stalled': { type: 'string' },
    name: { type: 'string' },
  }, 'worker');
  const queues = v.queues === undefined ? distributedDefaults.queues : [...new Set(v.queues.split(',').map((q) => oneOf(q.trim(), ['embed', 'merge'] as const, '--queues')))];
  const port = v['metrics-port'] === undefined ? undefined : Number(v['metrics-port']);
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) throw new ConfigError(`--metrics-port ${v['metrics-port']}: expected a port number 0-65535`);
  return {
    ...redisConfig(v, env),
    queues,
    concurrency: v.concurrency === undefined ? distributedDefaults.concurrency : positiveInt(v.concurrency, '--concurrency'),
    device: v.device === undefined ? 'cpu' : oneOf(v.device, ['cpu', 'cuda', 'auto'] as const, '--device'),
    threads: v.threads === undefined ? availableParallelism() : positiveInt(v.threads, '--threads'),
    decodeThreads: v['decode-threads'] === undefined ? availableParallelism() : positiveInt(v['decode-threads'], '--decode-threads'),
    metricsPort: port,
    lockDurationMs: v['lock-duration'] === undefined ? distributedDefaults.lockDurationMs : positiveInt(v['lock-duration'], '--lock-duration'),
    stalledIntervalMs: v['stalled-interval'] === undefined ? distributedDefaults.stalledIntervalMs : positiveInt(v['stalled-interval'], '--stalled-interval'),
    maxStalled: v['max-stalled'] === undefined ? distributedDefaults.maxStalled : positiveInt(v['max-stalled'], '--max-stalled'),
    name: v.name,
    env: loadEnvSettings(env),
  };
}

/** Parses `vecmill status` flags. */
export function loadStatusConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): StatusConfig {
  const v = parseFlags(argv, { ...redisFlags, run: { type: 'string' }, watch: { type: 'boolean' }, json: { type: 'boolean' }, interval: { type: 'string' } }, 'status');
  if (v.run === undefined) throw new ConfigError('--run is required: the run id printed by `vecmill produce`');
  return {
    ...redisConfig(v, env),
    runId: checkRunIdFlag(v.run, '--run'),
    watch: v.watch === true,
    json: v.json === true,
    intervalMs: v.interval === undefined ? distributedDefaults.statusIntervalMs : positiveInt(v.interval, '--interval'),
  };
}

function redisConfig(v: { redis?: string | undefined; 'redis-ca'?: string | undefined; prefix?: string | undefined }, env: NodeJS.ProcessEnv): RedisConfig {
  const url = v.redis ?? env['VECMILL_REDIS_URL'];
  if (url === undefined || url === '') throw new ConfigError('--redis is required (or set VECMILL_REDIS_URL): e.g. redis://127.0.0.1:6379');
  const prefix = v.prefix ?? DEFAULT_QUEUE_PREFIX;
  if (!queuePrefixPattern.test(prefix)) throw new ConfigError(`--prefix ${JSON.stringify(prefix)}: use 1-64 letters, digits, '.', '-' or '_'`);
  const caFile = v['redis-ca'] ?? env['VECMILL_REDIS_CA'];
  return { redis: { url, ...(caFile !== undefined ? { caFile } : {}) }, prefix };
}

/** Splits argv into the flags named in `options` (with their values) and everything else. */
function takeFlags(argv: readonly string[], options: NonNullable<ParseArgsConfig['options']>): { mine: string[]; rest: string[] } {
  const mine: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const name = a.startsWith('--') ? a.slice(2).split('=')[0] ?? '' : '';
    const spec = options[name];
    if (spec === undefined) {
      rest.push(a);
      continue;
    }
    mine.push(a);
    if (spec.type === 'string' && !a.includes('=') && i + 1 < argv.length) mine.push(argv[++i] as string);
  }
  return { mine, rest };
}

function flagValue(argv: readonly string[], flag: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === flag) return argv[i + 1];
    if (a.startsWith(`${flag}=`)) return a.slice(flag.length + 1);
  }
  return undefined;
}

function parseFlags<T extends NonNullable<ParseArgsConfig['options']>>(argv: readonly string[], options: T, command: string) {
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new ConfigError(`vecmill ${command}: ${(err as Error).message.split('\n')[0] ?? ''} (see \`vecmill ${command} --help\`)`, { command }, { cause: err });
  }
}

function checkRunIdFlag(value: string, flag: string): string {
  try {
    return checkRunId(value);
  } catch (err) {
    throw new ConfigError(`${flag} ${JSON.stringify(value)}: use 1-64 letters, digits, '-' or '_'`, { flag }, { cause: err });
  }
}

function oneOf<const T extends string>(value: string, allowed: readonly T[], flag: string): T {
  if (!(allowed as readonly string[]).includes(value)) throw new ConfigError(`${flag} ${value}: expected one of ${allowed.join(', ')}`, { flag });
  return value as T;
}

function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`${flag} ${text}: expected a whole number of at least 1`, { flag });
  return n;
}
