import { randomBytes } from 'node:crypto';
import { ConfigError, InputError } from '@vecmill/shared/errors';
import { checkRunId, outputKeys, readPlan, type EmbedSettings, type PlannedInput, type PlannedModel, type RunPlan } from '@vecmill/shared/run-plan';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { detectInputKind, type InputKind } from '@vecmill/shared/tsv/input-kind';
import { readSplitLines } from '@vecmill/shared/tsv/line-reader';
import { planSplits } from '@vecmill/shared/tsv/split-planner';

/** An input object the planner can read from: where it is and what it looked like when listed. */
export interface PlanInput {
  readonly uri: string;
  readonly store: ObjectStore;
  readonly key: string;
  readonly size: number;
  readonly etag: string;
  readonly modified: string;
}

/** What `planRun` needs. */
export interface PlanRunOptions {
  readonly inputs: readonly PlanInput[];
  readonly output: ObjectStore;
  readonly outputUri: string;
  readonly splitSize: number;
  readonly model: PlannedModel;
  readonly settings: EmbedSettings;
  readonly runId: string | undefined;
  /** Previous output to reuse embeddings from (`--reuse`), recorded so every worker sees it. */
  readonly reuse?: string;
}

/** The plan and whether it continues an earlier attempt at the same run. */
export interface PlanRunResult {
  readonly plan: RunPlan;
  readonly resumed: boolean;
}

/**
 * Plans a run from object sizes alone (no counting pass: a terabyte plans in the time of a
 * listing) and records it as plan.json. Re-running the same command on the same output finds the
 * same plan and resumes it; a different input, model or setting on that output is refused rather
 * than mixed into it.
 */
export async function planRun(options: PlanRunOptions): Promise<PlanRunResult> {
  if (options.inputs.length === 0) throw new InputError('no input objects to embed');
  const inputs: PlannedInput[] = options.inputs.map((i) => ({ uri: i.uri, size: i.size, etag: i.etag, modified: i.modified }));
  const settings = options.settings;
  const existing = await readPlan(options.output);
  if (existing !== undefined) {
    const diff = planDifference(existing, { inputs, settings, model: options.model, splitSize: options.splitSize });
    if (diff !== undefined) {
      throw new ConfigError(
        `output ${options.outputUri} already holds run ${existing.runId} with different ${diff}; choose a new --output or delete the old one`,
        { output: options.outputUri, runId: existing.runId },
      );
    }
    if (options.runId !== undefined && options.runId !== existing.runId) {
      throw new ConfigError(`output ${options.outputUri} already holds run ${existing.runId}, not ${options.runId}; choose a new --output`, { output: options.outputUri });
    }
    return { plan: existing, resumed: true };
  }
  const splits = planSplits(
    inputs.map((i, n) => ({ key: String(n), size: i.size, etag: i.etag })),
    options.splitSize,
  ).map((s) => ({ index: s.index, input: Number(s.key), start: s.start, end: s.end }));
  if (splits.length === 0) throw new InputError(`every input is empty (${inputs.map((i) => i.uri).join(', ')}); nothing to embed`);
  const plan: RunPlan = {
    version: 1,
    runId: options.runId === undefined ? newRunId() : checkRunId(options.runId),
    createdAt: new Date().toISOString(),
    output: options.outputUri,
    inputs,
    splits,
    splitSize: options.splitSize,
    model: options.model,
    settings,
    reuse: options.reuse,
  };
  const created = await options.output.putIfAbsent(outputKeys.plan, Buffer.from(JSON.stringify(plan, null, 1)));
  if (!created) return planRun(options);
  return { plan, resumed: false };
}

/** A short run id that sorts by time: `20261127-204501-a3f9`. */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${stamp}-${randomBytes(2).toString('hex')}`;
}

/** Names what differs between an existing plan and the requested one, or undefined when they match. */
function planDifference(
  plan: RunPlan,
  want: { inputs: readonly PlannedInput[]; settings: EmbedSettings; model: PlannedModel; splitSize: number },
): string | undefined {
  if (JSON.stringify(plan.inputs) !== JSON.stringify(want.inputs)) return 'inputs (a file was added, removed or changed)';
  if (plan.model.fingerprint.id !== want.model.fingerprint.id || plan.model.dtype !== want.model.dtype) return 'model';
  if (plan.splitSize !== want.splitSize) return '--split-size';
  if (plan.model.contextLength !== want.model.contextLength) return '--context-length';
  const a = plan.settings;
  const b = want.settings;
  for (const k of Object.keys(b) as (keyof EmbedSettings)[]) {
    if (k === 'batchSize') continue;
    if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) return `settings (${k})`;
  }
  return undefined;
}

/**
 * Detects the input kind from the first lines of the first non-empty input, so that the model
 * folder is checked for exactly the towers the run needs before planning.
 */
export async function sniffInputKind(inputs: readonly PlanInput[]): Promise<InputKind> {
  const first = inputs.find((i) => i.size > 0);
  if (first === undefined) throw new InputError('every input is empty; nothing to embed');
  const sample: Buffer[] = [];
  const split = { index: 0, key: first.key, etag: first.etag, start: 0, end: Math.min(first.size, 1024 * 1024), objectSize: first.size };
  for await (const line of readSplitLines(first.store, split, { maxLineBytes: 64 * 1024 * 1024 })) {
    if (line.bytes.length > 0) sample.push(Buffer.from(line.bytes));
    if (sample.length >= 5) break;
  }
  try {
    return detectInputKind(sample);
  } catch (err) {
    if (err instanceof InputError) throw new InputError(`${err.message} (input ${first.uri})`, { key: first.uri }, { cause: err });
    throw err;
  }
}
