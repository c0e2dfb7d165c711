import { createHash } from 'node:crypto';
import type { Manifest } from '@vecmill/shared/manifest';
import { outputKeys, type RunPlan } from '@vecmill/shared/run-plan';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { forEachLimited } from '@vecmill/worker/for-each-limited';
import { commitShard, type StagedFile } from '@vecmill/worker/shard-commit';
import { ShardWriter } from '@vecmill/worker/shard-writer';

/** How a synthetic split is filled: small tables, so a run of hundreds of splits commits in seconds. */
export interface SyntheticSplitOptions {
  /** Rows per split (default 6); line 1 of every split with more than one row fails. */
  readonly rows?: number;
  /** Rows per chunk (default 4), so splits have several chunks. */
  readonly chunkRows?: number;
  /** Goes into every caption: two attempts with different variants write different bytes. */
  readonly variant?: string;
  /** Runs between staging and the commit: where a fault test kills its process. */
  readonly afterStaged?: () => void;
}

/**
 * Embeds nothing but drives the real write path of a split: a `ShardWriter` fed deterministic
 * text-only rows (dims from the plan), which builds and stages the chunks' final files as plan.json
 * asks. Returns the staged files and counts, ready for `commitShard`.
 */
async function stageSyntheticSplit(
  store: ObjectStore,
  plan: RunPlan,
  split: number,
  attempt: string,
  o: SyntheticSplitOptions = {},
): Promise<{ files: StagedFile[]; rowsIn: number; rowsOk: number; failedByReason: Record<string, number> }> {
  const rows = o.rows ?? 6;
  const dims = plan.model.dims;
  const writer = new ShardWriter(store, { splitIndex: split, attempt, table: { dims, outDtype: 'float32', hasText: true, hasImage: false }, chunk: { maxRows: o.chunkRows ?? 4 } });
  const lines = Array.from({ length: rows }, (_, i) => i);
  const failed = (l: number): boolean => l === 1 && rows > 1;
  if (rows > 0) {
    await writer.append({
      splitIndex: split,
      source: plan.inputs[0]!.uri,
      lineIndex: lines,
      offset: lines.map((l) => split * 1000 + l * 10),
      text: lines.map((l) => `split ${split} line ${l}${o.variant ?? ''}`),
      textEmbedding: Float32Array.from({ length: rows * dims }, (_, i) => ((split * 31 + i) % 97) / 97),
      errors: lines.map((l) => (failed(l) ? { reason: 'empty_text', message: 'caption is empty' } : null)),
    });
  }
  const nFailed = lines.filter(failed).length;
  return { files: await writer.finish(), rowsIn: rows, rowsOk: rows - nFailed, failedByReason: nFailed > 0 ? { empty_text: nFailed } : {} };
}

/** Stages and commits one synthetic split as a worker attempt would; true when this attempt won. */
export async function commitSyntheticSplit(store: ObjectStore, plan: RunPlan, split: number, attempt: string, o: SyntheticSplitOptions = {}): Promise<boolean> {
  const staged = await stageSyntheticSplit(store, plan, split, attempt, o);
  o.afterStaged?.();
  const { committed } = await commitShard(store, {
    runId: plan.runId,
    splitIndex: split,
    attempt,
    files: staged.files,
    rowsIn: staged.rowsIn,
    rowsOk: staged.rowsOk,
    rowsReused: 0,
    failedByReason: staged.failedByReason,
    timings: () => ({ read: 1, decode: 0, tokenize: 1, infer: 2, write: 1 }),
    worker: 'synthetic',
  });
  return committed;
}

/** Commits every split of the plan (but `skip`) with `parallel` splits in flight. */
export async function commitSyntheticRun(store: ObjectStore, plan: RunPlan, o: SyntheticSplitOptions & { readonly parallel?: number; readonly skip?: readonly number[] } = {}): Promise<void> {
  const splits = plan.splits.map((s) => s.index).filter((i) => !(o.skip ?? []).includes(i));
  await forEachLimited(splits, o.parallel ?? 16, async (split) => {
    await commitSyntheticSplit(store, plan, split, `attempt-${split}`, o);
  });
}

/**
 * What two publishes of the same run must agree on: the manifest without its clock fields, and
 * every final file under its key with the sha256 of its bytes as stored.
 */
export async function publishedContent(store: ObjectStore): Promise<{ manifest: unknown; files: Record<string, string> }> {
  const manifest = JSON.parse((await store.read(outputKeys.manifest)).toString('utf8')) as Manifest;
  const { completedAt: _completedAt, timings: _timings, ...rest } = manifest;
  const files: Record<string, string> = {};
  for (const prefix of outputKeys.finalPrefixes) {
    for await (const info of store.list(prefix)) files[info.key] = createHash('sha256').update(await store.read(info.key)).digest('hex');
  }
  return { manifest: rest, files };
}
