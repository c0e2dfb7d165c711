import { outputKeys, type OutputFormat, type RunPlan } from '@vecmill/shared/run-plan';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import type { InputKind } from '@vecmill/shared/tsv/input-kind';

/** What a test plan varies. */
export interface TestPlanOptions {
  readonly runId?: string;
  readonly splits: number;
  readonly kind?: InputKind;
  readonly dims?: number;
  readonly formats?: readonly OutputFormat[];
}

/**
 * A plan for `splits` splits of one input, as plan.json holds it, for tests that drive the shard
 * writer, the commit and the merger directly (no model, no input file is read).
 */
export function testPlan(o: TestPlanOptions): RunPlan {
  const fingerprint = { id: 'f'.repeat(64), files: { 'onnx/model.onnx': 'a'.repeat(64) } };
  return {
    version: 1,
    runId: o.runId ?? 'test-run',
    createdAt: '2026-01-01T00:00:00.000Z',
    output: '/unused',
    inputs: [{ uri: '/data/in.tsv', size: o.splits * 100, etag: 'e1', modified: '2026-01-01T00:00:00.000Z' }],
    splits: Array.from({ length: o.splits }, (_, i) => ({ index: i, input: 0, start: i * 100, end: (i + 1) * 100 })),
    splitSize: 100,
    model: { location: '/models/clip', dtype: 'fp32', fingerprint, dims: o.dims ?? 4, preprocessing: {}, contextLength: 77 },
    settings: {
      kind: o.kind ?? 'text',
      dtype: 'fp32',
      normalize: true,
      outDtype: 'float32',
      batchSize: 32,
      maxPixels: 50_000_000,
      fastDecode: false,
      maxLineBytes: 1 << 20,
      trimText: true,
      formats: o.formats ?? ['parquet', 'npy', 'tsv'],
    },
    reuse: undefined,
  };
}

/** Writes the plan into the output as plan.json, where workers read it. */
export async function storeTestPlan(store: ObjectStore, plan: RunPlan): Promise<void> {
  await store.put(outputKeys.plan, Buffer.from(JSON.stringify(plan, null, 1)));
}
