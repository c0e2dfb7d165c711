/**
 * The configuration loader: the one module that reads `process.env`. Each command turns its argv
 * and the environment into one typed, validated object here, so a bad flag fails before any work
 * starts (before Redis or S3 is touched), with one line that says which flag and what to do.
 * `produce` takes the embedding flags of `run`, parsed by `loadRunConfig`, so both modes plan a
 * run identically.
 */
import { availableParallelism, homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from './errors.js';
import type { RedisTarget } from './queue/bullmq-connection.js';
import { DEFAULT_QUEUE_PREFIX, queuePrefixPattern, type QueueRole } from './queue/queue-names.js';
import type { DeviceRequest } from './model/execution-provider.js';
import type { ModelDtype } from './model/model-folder.js';
import { checkRunId, type OutputFormat } from './run-plan.js';
import type { S3ClientOptions } from './storage/s3-store.js';
import type { InputKind } from './tsv/input-kind.js';

/** Settings that come from the environment rather than flags. */
export interface EnvSettings {
  readonly s3: S3ClientOptions;
  /** Hugging Face endpoint (`HF_ENDPOINT`), for mirrors. */
  readonly hfEndpoint: string;
  /** `HF_TOKEN`: sent to the hub only, never logged. */
  readonly hfToken: string | undefined;
  /** Where pulled models and S3 model folders are cached (`VECMILL_CACHE`, default ~/.cache/vecmill). */
  readonly cacheDir: string;
  /** Whether stderr is a terminal (decides progress bar versus JSON lines). */
  readonly isTty: boolean;
}

/** `vecmill run`: the embedded mode. */
export interface RunConfig {
  readonly inputs: readonly string[];
  readonly model: string;
  readonly output: string;
  readonly kind: InputKind | undefined;
  readonly splitSize: number;
  readonly concurrency: number;
  readonly batchSize: number | undefined;
  readonly dtype: ModelDtype;
  readonly normalize: boolean;
  readonly outDtype: 'float32' | 'float16';
  readonly formats: readonly OutputFormat[];
  readonly maxPixels: number;
  readonly fastDecode: boolean;
  readonly maxLineBytes: number;
  readonly trimText: boolean;
  readonly device: DeviceRequest;
  readonly threads: number;
  /** Image preprocessing threads (decode + exact resize), default: all cores. */
  readonly decodeThreads: number;
  readonly progress: 'bar' | 'json';
  readonly runId: string | undefined;
  /** A previous published output whose embeddings are reused for unchanged rows. */
  readonly reuse: string | undefined;
  readonly env: EnvSettings;
}

/** Defaults, documented in one place (README's flag table mirrors these). */
export const runDefaults = {
  splitSize: 64 * 1024 * 1024,
  concurrency: 2,
  dtype: 'fp32' as ModelDtype,
  outDtype: 'float32' as const,
  formats: ['parquet', 'npy'] as readonly OutputFormat[],
  maxPixels: 50_000_000,
  maxLineBytes: 64 * 1024 * 1024,
  device: 'cpu' as DeviceRequest,
};

const runOptions = {
  input: { type: 'string', multiple: true, short: 'i' },
  model: { type: 'string', short: 'm' },
  output: { type: 'string', short: 'o' },
  kind: { type: 'string' },
  'split-size': { type: 'string' },
  concurrency: { type: 'string' },
  'batch-size': { type: 'string' },
  dtype: { type: 'string' },
  'no-normalize': { type: 'boolean' },
  'out-dtype': { type: 'string' },
  formats: { type: 'string' },
  'max-pixels': { type: 'string' },
  'fast-decode': { type: 'boolean' },
  'max-line-bytes': { type: 'string' },
  'no-trim-text': { type: 'boolean' },
  device: { type: 'string' },
  threads: { type: 'string' },
  'decode-threads': { type: 'string' },
  progress: { type: 'string' },
  'run-id': { type: 'string' },
  reuse: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

/** Parses `vecmill run` flags. */
export function loadRunConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): RunConfig {
  const v = parseFlags(argv, runOptions, 'run');
  const inputs = v.input ?? [];
  if (inputs.length === 0) throw new ConfigError('--input is required: a TSV file, a folder, a glob, s3://bucket/key or s3://bucket/prefix/');
  const envSettings = loadEnvSettings(env);
  return {
    inputs,
    model: required(v.model, '--model', 'a model folder (make one with `vecmill make-model --preset tiny --out DIR`), s3:// folder or a pulled Hugging Face repo id'),
    output: required(v.output, '--output', 'a local folder or s3://bucket/prefix/ for the results'),
    kind: v.kind === undefined ? undefined : oneOf(v.kind, ['pairs', 'text', 'image'] as const, '--kind'),
    splitSize: v['split-size'] === undefined ? runDefaults.splitSize : parseSize(v['split-size'], '--split-size'),
    concurrency: v.concurrency === undefined ? runDefaults.concurrency : positiveInt(v.concurrency, '--concurrency'),
    batchSize: v['batch-size'] === undefined ? undefined : positiveInt(v['batch-size'], '--batch-size'),
    dtype: v.dtype === undefined ? runDefaults.dtype : oneOf(v.dtype, ['fp32', 'fp16', 'q8'] as const, '--dtype'),
    normalize: v['no-normalize'] !== true,
    outDtype: v['out-dtype'] === undefined ? runDefaults.outDtype : oneOf(v['out-dtype'], ['float32', 'float16'] as const, '--out-dtype'),
    formats: v.formats === undefined ? runDefaults.formats : parseFormats(v.formats),
    maxPixels: v['max-pixels'] === undefined ? runDefaults.maxPixels : positiveInt(v['max-pixels'], '--max-pixels'),
    fastDecode: v['fast-decode'] === true,
    maxLineBytes: v['max-line-bytes'] === undefined ? runDefaults.maxLineBytes : parseSize(v['max-line-bytes'], '--max-line-bytes'),
    trimText: v['no-trim-text'] !== true,
    device: v.device === undefined ? runDefaults.device : oneOf(v.device, ['cpu', 'cuda', 'auto'] as const, '--device'),
    threads: v.threads === undefined ? availableParallelism() : positiveInt(v.threads, '--threads'),
    decodeThreads: v['decode-threads'] === undefined ? availableParallelism() : positiveInt(v['decode-threads'], '--decode-threads'),
    progress: v.progress === undefined ? (envSettings.isTty ? 'bar' : 'json') : oneOf(v.progress, ['bar', 'json'] as const, '--progress'),
    runId: v['run-id'],
    reuse: v.reuse,
    env: envSettings,
  };
}

/** `vecmill make-model`. */
export interface MakeModelConfig {
  readonly preset: 'tiny' | 'vit-b-32' | 'host-bench';
  readonly out: string;
  readonly seed: number;
  readonly tokenizer: string | undefined;
}

/** Parses `vecmill make-model` flags. */
export function loadMakeModelConfig(argv: readonly string[]): MakeModelConfig {
  const v = parseFlags(argv, { preset: { type: 'string' }, out: { type: 'string' }, seed: { type: 'string' }, tokenizer: { type: 'string' } }, 'make-model');
  return {
    preset: v.preset === undefined ? 'tiny' : oneOf(v.preset, ['tiny', 'vit-b-32', 'host-bench'] as const, '--preset'),
    out: required(v.out, '--out', 'the folder to write the model into'),
    seed: v.seed === undefined ? 42 : nonNegativeInt(v.seed, '--seed'),
    tokenizer: v.tokenizer,
  };
}

/** `vecmill models pull`. */
export interface PullConfig {
  readonly repoId: string;
  readonly revision: string;
  readonly dtype: ModelDtype;
  readonly env: EnvSettings;
}

/** Parses `vecmill models pull REPO_ID` flags. */
export function loadPullConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): PullConfig {
  const { values: v, positionals } = parseArgs({
    args: [...argv],
    options: { revision: { type: 'string' }, dtype: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  });
  const repoId = positionals[0];
  if (repoId === undefined || !/^[\w.-]+\/[\w.-]+$/.test(repoId)) {
    throw new ConfigError('models pull needs a repository id like `Xenova/clip-vit-base-patch32`');
  }
  return {
    repoId,
    revision: v.revision ?? 'main',
    dtype: v.dtype === undefined ? 'fp32' : oneOf(v.dtype, ['fp32', 'fp16', 'q8'] as const, '--dtype'),
    env: loadEnvSettings(env),
  };
}

/** Reads the environment once. Credentials stay in this object and the S3 client; never in logs. */
export function loadEnvSettings(env: NodeJS.ProcessEnv = process.env): EnvSettings {
  const endpoint = env['VECMILL_S3_ENDPOINT'] ?? env['AWS_ENDPOINT_URL_S3'] ?? env['AWS_ENDPOINT_URL'];
  const accessKeyId = env['AWS_ACCESS_KEY_ID'];
  const secretAccessKey = env['AWS_SECRET_ACCESS_KEY'];
  const sessionToken = env['AWS_SESSION_TOKEN'];
  const forcePathStyle = env['VECMILL_S3_FORCE_PATH_STYLE'];
  const s3: S3ClientOptions = {
    region: env['AWS_REGION'] ?? env['AWS_DEFAULT_REGION'] ?? 'us-east-1',
    ...(endpoint !== undefined ? { endpoint } : {}),
    ...(forcePathStyle !== undefined ? { forcePathStyle: forcePathStyle === '1' || forcePathStyle === 'true' } : endpoint !== undefined ? { forcePathStyle: true } : {}),
    ...(accessKeyId !== undefined && secretAccessKey !== undefined
      ? { credentials: { accessKeyId, secretAccessKey, ...(sessionToken !== undefined ? { sessionToken } : {}) } }
      : {}),
  };
  return {
    s3,
    hfEndpoint: (env['HF_ENDPOINT'] ?? 'https://huggingface.co').replace(/\/+$/, ''),
    hfToken: env['HF_TOKEN'] ?? env['HUGGING_FACE_HUB_TOKEN'],
    cacheDir: env['VECMILL_CACHE'] ?? join(env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'vecmill'),
    isTty: process.stderr.isTTY === true && env['CI'] === undefined,
  };
}

/**
 * Sizes libuv's pool (sharp decodes on it) to the cores before any async I/O starts it. Called
 * first thing by the CLI entry; an explicit UV_THREADPOOL_SIZE wins.
 */
export function tuneThreadPool(env: NodeJS.ProcessEnv = process.env): void {
  if (env['UV_THREADPOOL_SIZE'] === undefined) env['UV_THREADPOOL_SIZE'] = String(Math.max(4, availableParallelism()));
}

/** Parses `64MiB`, `1G`, `512k`, `1000` into bytes. */
export function parseSize(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(text.trim());
  if (m === null) throw new ConfigError(`${flag} ${text}: expected a size such as 64MiB, 512k or 1000000`, { flag });
  const unit = (m[2] ?? '').toLowerCase();
  const mult = unit === '' ? 1 : 1024 ** ('kmgt'.indexOf(unit) + 1);
  const bytes = Math.floor(Number(m[1]) * mult);
  if (bytes < 1) throw new ConfigError(`${flag} ${text}: must be at least one byte`, { flag });
  return bytes;
}

function parseFormats(text: string): OutputFormat[] {
  const out = new Set<OutputFormat>(['parquet']);
  for (const f of text.split(',').map((s) => s.trim()).filter((s) => s !== '')) out.add(oneOf(f, ['parquet', 'npy', 'tsv'] as const, '--formats'));
  return [...out];
}

function parseFlags<T extends NonNullable<ParseArgsConfig['options']>>(argv: readonly string[], options: T, command: string) {
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new ConfigError(`vecmill ${command}: ${(err as Error).message.split('\n')[0] ?? ''} (see \`vecmill ${command} --help\`)`, { command }, { cause: err });
  }
}

function required(value: string | undefined, flag: string, what: string): string {
  if (value === undefined || value === '') throw new ConfigError(`${flag} is required: ${what}`, { flag });
  return value;
}

/** A flag value that must be one of a few words; fails naming the flag and the choices. */
export function oneOf<const T extends string>(value: string, allowed: readonly T[], flag: string): T {
  if (!(allowed as readonly string[]).includes(value)) throw new ConfigError(`${flag} ${value}: expected one of ${allowed.join(', ')}`, { flag });
  return value as T;
}

/** A whole-number flag of at least 1; fails naming the flag. */
export function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`${flag} ${text}: expected a whole number of at least 1`, { flag });
  return n;
}

function nonNegativeInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new ConfigError(`${flag} ${text}: expected a whole number of at least 0`, { flag });
  return n;
}

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

function checkRunIdFlag(value: string, flag: string): string {
  try {
    return checkRunId(value);
  } catch (err) {
    throw new ConfigError(`${flag} ${JSON.stringify(value)}: use 1-64 letters, digits, '-' or '_'`, { flag }, { cause: err });
  }
}
