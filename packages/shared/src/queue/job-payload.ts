import { posix } from 'node:path';
import { PayloadError } from '../errors.js';
import { checkRunId, type RunPlan } from '../run-plan.js';
import { parseLocation } from '../storage/location.js';

/**
 * What an embed job carries: references into the run (never image bytes), enough to check the
 * job against plan.json before anything is read.
 */
export interface EmbedPayload {
  readonly v: 1;
  readonly kind: 'embed';
  readonly runId: string;
  /** The run's output location, exactly as plan.json and the run registry record it. */
  readonly output: string;
  readonly split: number;
  readonly input: { readonly uri: string; readonly start: number; readonly end: number; readonly etag: string };
  readonly model: { readonly location: string; readonly fingerprint: string };
}

/** The flow's parent: publishes the run once every split is committed. */
export interface MergePayload {
  readonly v: 1;
  readonly kind: 'merge';
  readonly runId: string;
  readonly output: string;
  readonly splits: number;
}

/** The no-op child that keeps the merge waiting until the producer has enqueued every chunk. */
export interface GatePayload {
  readonly v: 1;
  readonly kind: 'gate';
  readonly runId: string;
}

export type JobPayload = EmbedPayload | MergePayload | GatePayload;

/** Builds the embed payload of one planned split. */
export function embedPayload(plan: RunPlan, splitIndex: number): EmbedPayload {
  const split = plan.splits[splitIndex];
  const input = split === undefined ? undefined : plan.inputs[split.input];
  if (split === undefined || input === undefined) throw new PayloadError(`split ${splitIndex} is not in the plan of run ${plan.runId}`, { split: splitIndex });
  return {
    v: 1,
    kind: 'embed',
    runId: plan.runId,
    output: plan.output,
    split: split.index,
    input: { uri: input.uri, start: split.start, end: split.end, etag: input.etag },
    model: { location: plan.model.location, fingerprint: plan.model.fingerprint.id },
  };
}

/** Builds the merge payload of a run. */
export function mergePayload(plan: RunPlan): MergePayload {
  return { v: 1, kind: 'merge', runId: plan.runId, output: plan.output, splits: plan.splits.length };
}

/**
 * Validates job data as it comes out of Redis, before any I/O: exact fields and types, a safe
 * run id, and locations in canonical form only (`s3://bucket/…` or a normalised absolute path;
 * no `..`, no `file://`, no other URL). Anyone who can write to Redis can add a job, so nothing
 * in it is trusted until it also matches the run (`checkEmbedAgainstPlan`).
 */
export function parseJobPayload(data: unknown): JobPayload {
  const o = record(data, 'job data');
  const kind = o['kind'];
  if (kind === 'embed') {
    exactKeys(o, ['v', 'kind', 'runId', 'output', 'split', 'input', 'model'], 'embed job');
    const input = record(o['input'], 'input');
    exactKeys(input, ['uri', 'start', 'end', 'etag'], 'input');
    const model = record(o['model'], 'model');
    exactKeys(model, ['location', 'fingerprint'], 'model');
    const start = count(input['start'], 'input.start');
    const end = count(input['end'], 'input.end');
    if (end <= start) throw new PayloadError(`input range [${start}, ${end}) is empty or reversed`);
    return {
      v: version(o['v']),
      kind,
      runId: checkRunId(o['runId']),
      output: location(o['output'], 'output'),
      split: count(o['split'], 'split'),
      input: { uri: location(input['uri'], 'input.uri'), start, end, etag: text(input['etag'], 'input.etag') },
      model: { location: modelLocation(model['location']), fingerprint: hex(model['fingerprint'], 'model.fingerprint') },
    };
  }
  if (kind === 'merge') {
    exactKeys(o, ['v', 'kind', 'runId', 'output', 'splits'], 'merge job');
    return { v: version(o['v']), kind, runId: checkRunId(o['runId']), output: location(o['output'], 'output'), splits: count(o['splits'], 'splits') };
  }
  if (kind === 'gate') {
    exactKeys(o, ['v', 'kind', 'runId'], 'gate job');
    return { v: version(o['v']), kind, runId: checkRunId(o['runId']) };
  }
  throw new PayloadError(`unknown job kind ${JSON.stringify(kind)}`);
}

/**
 * The job must name exactly what plan.json planned for its split: the same input object, byte
 * range, etag and model. Anything else (another bucket, another file, a wider range) is refused
 * before the input is opened.
 */
export function checkEmbedAgainstPlan(payload: EmbedPayload, plan: RunPlan): void {
  const where = `run ${payload.runId} split ${payload.split}`;
  if (plan.runId !== payload.runId) throw new PayloadError(`${where}: the output holds run ${plan.runId}`, { split: payload.split });
  const split = plan.splits[payload.split];
  const input = split === undefined ? undefined : plan.inputs[split.input];
  if (split === undefined || input === undefined) throw new PayloadError(`${where}: the plan has ${plan.splits.length} splits`, { split: payload.split });
  if (input.uri !== payload.input.uri) throw new PayloadError(`${where}: input ${payload.input.uri} is not the planned input of this split`, { split: payload.split });
  if (split.start !== payload.input.start || split.end !== payload.input.end || input.etag !== payload.input.etag) {
    throw new PayloadError(`${where}: byte range or etag differs from plan.json`, { split: payload.split });
  }
  if (plan.model.fingerprint.id !== payload.model.fingerprint || plan.model.location !== payload.model.location) {
    throw new PayloadError(`${where}: model differs from plan.json`, { split: payload.split });
  }
}

function record(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new PayloadError(`${what} must be an object`);
  return v as Record<string, unknown>;
}

function exactKeys(o: Record<string, unknown>, keys: readonly string[], what: string): void {
  const extra = Object.keys(o).filter((k) => !keys.includes(k));
  if (extra.length > 0) throw new PayloadError(`${what} has unknown field(s) ${extra.join(', ')}`);
  const missing = keys.filter((k) => !(k in o));
  if (missing.length > 0) throw new PayloadError(`${what} lacks field(s) ${missing.join(', ')}`);
}

function version(v: unknown): 1 {
  if (v !== 1) throw new PayloadError(`unsupported job version ${JSON.stringify(v)}; upgrade the worker or re-run produce`);
  return 1;
}

function count(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new PayloadError(`${what} must be a whole number ≥ 0`);
  return v;
}

function text(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '' || v.length > 1024 || v.includes('\0')) throw new PayloadError(`${what} must be a short non-empty string`);
  return v;
}

function hex(v: unknown, what: string): string {
  if (typeof v !== 'string' || !/^[0-9a-f]{64}$/.test(v)) throw new PayloadError(`${what} must be a sha256 hex digest`);
  return v;
}

/** A canonical `s3://` location or normalised absolute path; everything else is refused. */
function location(v: unknown, what: string): string {
  const s = text(v, what);
  if (/^s3:\/\//.test(s)) {
    let parsed;
    try {
      parsed = parseLocation(s, '/');
    } catch (err) {
      throw new PayloadError(`${what} ${JSON.stringify(s)} is not a valid S3 location`, {}, { cause: err });
    }
    if (parsed.kind !== 's3' || `s3://${parsed.bucket}/${parsed.key}` !== s) throw new PayloadError(`${what} ${JSON.stringify(s)} is not in canonical form`);
    return s;
  }
  if (/^[a-z][a-z0-9+.-]*:/i.test(s)) throw new PayloadError(`${what} ${JSON.stringify(s)} is a URL; only s3:// locations and local paths are allowed`);
  if (!s.startsWith('/') || posix.normalize(s) !== s || s.split('/').includes('..') || s.includes('\\')) {
    throw new PayloadError(`${what} ${JSON.stringify(s)} is not a normalised absolute path`);
  }
  return s;
}

/** Models may also be named by a Hugging Face repo id pulled into each worker's cache. */
function modelLocation(v: unknown): string {
  const s = text(v, 'model.location');
  if (/^[\w.-]+\/[\w.-]+$/.test(s) && !s.startsWith('.') && !s.includes('..')) return s;
  return location(s, 'model.location');
}
