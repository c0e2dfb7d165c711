/**
 * The configuration loader: the one module that reads `process.env`. Each command turns its argv
 * and the environment into one typed, validated object here, so a bad flag fails before any work
 * starts (before Redis or S3 is touched), with one line that says which flag and what to do.
 * `produce` takes the embedding flags of `run`, parsed by `loadRunConfig`, so both modes plan a
 * run identically.
 */
import { availableParallelism, homedir } from 'node:os';
import { join } from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { UsageError } from './errors.js';
import { parseCommandLine, type FlagValues } from './parse-command-line.js';
import type { RedisTarget } from './queue/bullmq-connection.js';
import { DEFAULT_QUEUE_PREFIX, queuePrefixPattern, type QueueRole } from './queue/queue-names.js';
import type { DeviceRequest } from './model/execution-provider.js';
import { MODEL_FAMILIES, type ModelFamily } from './model/model-family.js';
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
  /**
   * `VECMILL_FAULT_INFERENCE_EXIT=n`: fault injection for crash-recovery tests, never for use. The
   * first inference thread exits on its n-th request, as a crash in onnxruntime would end it.
   */
  readonly faultInferenceExit: number | undefined;
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
  /** `--context-length N`: tokens per caption instead of the model's own truncation length. */
  readonly contextLength: number | undefined;
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
  'context-length': { type: 'string' },
  device: { type: 'string' },
  threads: { type: 'string' },
  'decode-threads': { type: 'string' },
  progress: { type: 'string' },
  'run-id': { type: 'string' },
  reuse: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

/** Parses `vecmill run` flags. */
export function loadRunConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): RunConfig {
  return runConfigFrom(parseCommandLine(argv, runOptions).values, env);
}

/** The run settings from parsed flags: shared by `run` and `produce`, so both plan a run identically. */
function runConfigFrom(v: FlagValues<typeof runOptions>, env: NodeJS.ProcessEnv): RunConfig {
  const inputs = v.input ?? [];
  if (inputs.length === 0) throw new UsageError('--input is required: a TSV file, a folder, a glob, s3://bucket/key or s3://bucket/prefix/', { flag: '--input' });
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
    contextLength: v['context-length'] === undefined ? undefined : positiveInt(v['context-length'], '--context-length'),
    device: v.device === undefined ? runDefaults.device : oneOf(v.device, ['cpu', 'cuda', 'auto'] as const, '--device'),
    threads: v.threads === undefined ? availableParallelism() : positiveInt(v.threads, '--threads'),
    decodeThreads: v['decode-threads'] === undefined ? availableParallelism() : positiveInt(v['decode-threads'], '--decode-threads'),
    progress: v.progress === undefined ? (envSettings.isTty ? 'bar' : 'json') : oneOf(v.progress, ['bar', 'json'] as const, '--progress'),
    runId: v['run-id'],
    reuse: v.reuse,
    env: envSettings,
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
  const { values: v, positionals } = parseCommandLine(argv, { revision: { type: 'string' }, dtype: { type: 'string' } }, [
    { name: 'REPO_ID', what: 'a Hugging Face repository id like Xenova/clip-vit-base-patch32' },
  ]);
  const repoId = positionals[0] as string;
  if (!/^[\w.-]+\/[\w.-]+$/.test(repoId)) {
    throw new UsageError(`REPO_ID ${JSON.stringify(repoId)}: expected a repository id like Xenova/clip-vit-base-patch32`, { argument: 'REPO_ID' });
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
    faultInferenceExit: env['VECMILL_FAULT_INFERENCE_EXIT'] === undefined ? undefined : positiveInt(env['VECMILL_FAULT_INFERENCE_EXIT'], 'VECMILL_FAULT_INFERENCE_EXIT'),
  };
}

/**
 * Sizes libuv's pool (sharp decodes on it) to the cores before any async I/O starts it. Called
 * first thing by the CLI entry; an explicit UV_THREADPOOL_SIZE wins.
 */
export function tuneThreadPool(env: NodeJS.ProcessEnv = process.env): void {
  if (env['UV_THREADPOOL_SIZE'] === undefined) env['UV_THREADPOOL_SIZE'] = String(Math.max(4, availableParallelism()));
}

/**
 * glibc's mmap threshold that `vecmill run` and `vecmill worker` run with (issue 10): a fixed
 * 256 KiB, so every buffer of that size or more (a chunk's builder columns, Arrow IPC copy, encoded
 * Parquet and `.npy` bytes: a few MB each, allocated per chunk by each split in flight) is mapped on
 * its own and returned to the system when freed. With glibc's default, the threshold rises to the
 * largest buffer freed so far, so after the first chunk these come from the main heap, where two
 * splits interleaving them leave it fragmented and the peak grows with the run's length.
 */
export const MALLOC_MMAP_THRESHOLD_BYTES = 262_144;

/**
 * The environment to start a fresh process with so that `MALLOC_MMAP_THRESHOLD_BYTES` applies, or
 * undefined when it would change nothing: the C library is not glibc (`glibc` false), or the
 * threshold is already set (`MALLOC_MMAP_THRESHOLD_`, or `GLIBC_TUNABLES` naming it: an explicit
 * setting wins, as in the container images). glibc reads it once, at process start, so a process
 * cannot set it for itself.
 */
export function allocatorRelaunchEnv(glibc: boolean, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv | undefined {
  if (!glibc || env['MALLOC_MMAP_THRESHOLD_'] !== undefined || (env['GLIBC_TUNABLES'] ?? '').includes('glibc.malloc.mmap_threshold')) return undefined;
  return { ...env, MALLOC_MMAP_THRESHOLD_: String(MALLOC_MMAP_THRESHOLD_BYTES) };
}

/** Parses `64MiB`, `1G`, `512k`, `1000` into bytes. */
export function parseSize(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(text.trim());
  if (m === null) throw new UsageError(`${flag} ${text}: expected a size such as 64MiB, 512k or 1000000`, { flag });
  const unit = (m[2] ?? '').toLowerCase();
  const mult = unit === '' ? 1 : 1024 ** ('kmgt'.indexOf(unit) + 1);
  const bytes = Math.floor(Number(m[1]) * mult);
  if (bytes < 1) throw new UsageError(`${flag} ${text}: must be at least one byte`, { flag });
  return bytes;
}

function parseFormats(text: string): OutputFormat[] {
  const out = new Set<OutputFormat>(['parquet']);
  for (const f of text.split(',').map((s) => s.trim()).filter((s) => s !== '')) out.add(oneOf(f, ['parquet', 'npy', 'tsv'] as const, '--formats'));
  return [...out];
}

/** A flag's value, or a one-line error naming the missing flag and what it is for. */
export function required(value: string | undefined, flag: string, what: string): string {
  if (value === undefined || value === '') throw new UsageError(`${flag} is required: ${what}`, { flag });
  return value;
}

/** A flag value that must be one of a few words; fails naming the flag and the choices. */
export function oneOf<const T extends string>(value: string, allowed: readonly T[], flag: string): T {
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`${flag} ${value}: expected one of ${allowed.join(', ')}`, { flag });
  return value as T;
}

/** A whole-number flag of at least 1; fails naming the flag. */
export function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} ${text}: expected a whole number of at least 1`, { flag });
  return n;
}

/** A whole-number flag of at least 0; fails naming the flag. */
export function nonNegativeInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flag} ${text}: expected a whole number of at least 0`, { flag });
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
  const v = parseCommandLine(argv, { ...runOptions, ...produceFlags }).values;
  const resume = v.resume === undefined ? undefined : checkRunIdFlag(v.resume, '--resume');
  // `--resume ID [--output OUT]` alone re-enqueues from plan.json; any other embedding flag means a full run config.
  const embedFlags = Object.keys(v).filter((k) => Object.hasOwn(runOptions, k) && k !== 'output' && k !== 'progress');
  let run: RunConfig | undefined;
  let output: string | undefined;
  if (resume !== undefined && embedFlags.length === 0) {
    output = v.output;
  } else {
    if (resume !== undefined && v['run-id'] !== undefined && v['run-id'] !== resume) {
      throw new UsageError(`--run-id ${v['run-id']} and --resume ${resume} name different runs; give one of them`, { flag: '--run-id' });
    }
    run = runConfigFrom(resume === undefined ? v : { ...v, 'run-id': resume }, env);
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
  const v = parseCommandLine(argv, {
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
  }).values;
  const queues = v.queues === undefined ? distributedDefaults.queues : [...new Set(v.queues.split(',').map((q) => oneOf(q.trim(), ['embed', 'merge'] as const, '--queues')))];
  const port = v['metrics-port'] === undefined ? undefined : Number(v['metrics-port']);
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) throw new UsageError(`--metrics-port ${v['metrics-port']}: expected a port number 0-65535`, { flag: '--metrics-port' });
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
  const v = parseCommandLine(argv, { ...redisFlags, run: { type: 'string' }, watch: { type: 'boolean' }, json: { type: 'boolean' }, interval: { type: 'string' } }).values;
  if (v.run === undefined) throw new UsageError('--run is required: the run id printed by `vecmill produce`', { flag: '--run' });
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
  if (url === undefined || url === '') throw new UsageError('--redis is required (or set VECMILL_REDIS_URL): e.g. redis://127.0.0.1:6379', { flag: '--redis' });
  const prefix = v.prefix ?? DEFAULT_QUEUE_PREFIX;
  if (!queuePrefixPattern.test(prefix)) throw new UsageError(`--prefix ${JSON.stringify(prefix)}: use 1-64 letters, digits, '.', '-' or '_'`, { flag: '--prefix' });
  const caFile = v['redis-ca'] ?? env['VECMILL_REDIS_CA'];
  return { redis: { url, ...(caFile !== undefined ? { caFile } : {}) }, prefix };
}

function checkRunIdFlag(value: string, flag: string): string {
  try {
    return checkRunId(value);
  } catch (err) {
    throw new UsageError(`${flag} ${JSON.stringify(value)}: use 1-64 letters, digits, '-' or '_'`, { flag }, { cause: err });
  }
}
