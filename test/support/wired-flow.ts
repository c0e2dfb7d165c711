import type { ModelFolder } from '@vecmill/shared/model/model-folder';
import type { Manifest } from '@vecmill/shared/manifest';
import { LocalQueue } from '@vecmill/shared/queue/local-queue';
import type { RunEvent } from '@vecmill/shared/queue/run-events';
import type { RunPlan } from '@vecmill/shared/run-plan';
import type { ReadBufferPool } from '@vecmill/shared/storage/read-buffer-pool';
import type { ObjectStore } from '@vecmill/shared/storage/object-store';
import { LocalStore } from '@vecmill/shared/storage/local-store';
import { createEmbedProcessor } from '@vecmill/worker/embed-processor';
import { mergeRun } from '@vecmill/worker/merge-processor';
import { ClipTokenizer } from '@vecmill/worker/model/clip-tokenizer';
import type { Embedder } from '@vecmill/worker/model/embedder';
import type { ImagePreprocessor } from '@vecmill/worker/model/image-preprocessor';

/** What a test wires into `vecmill run`'s embed path by hand, to reach or replace its ports. */
export interface WiredFlow {
  readonly plan: RunPlan;
  readonly folder: ModelFolder;
  readonly output: ObjectStore;
  /** The folder holding the run's one input file, `input`. */
  readonly dir: string;
  readonly input: string;
  readonly embedder: Embedder;
  readonly images: ImagePreprocessor;
  readonly readBuffers?: ReadBufferPool;
  readonly attempts: number;
  readonly sink: (e: RunEvent) => void;
}

/** Embeds every split of the plan through `createEmbedProcessor` on a LocalQueue (one split at a time), then merges; resolves with the manifest. */
export function runWiredFlow(w: WiredFlow): Promise<Manifest> {
  const processSplit = createEmbedProcessor({
    plan: w.plan,
    openInput: () => ({ store: new LocalStore(w.dir), key: w.input }),
    output: w.output,
    embedder: w.embedder,
    tokenizer: new ClipTokenizer(w.folder.tokenizerJson, w.folder.tokenizerConfig, { contextLength: w.folder.config.contextLength }),
    images: w.images,
    ...(w.readBuffers !== undefined ? { readBuffers: w.readBuffers } : {}),
  });
  return new LocalQueue({ concurrency: 1, attempts: w.attempts, backoffMs: 1 }).runFlow(
    w.plan.splits.map((s) => ({ split: s.index, bytes: s.end - s.start })),
    async (job) => void (await processSplit(job.split)),
    () => mergeRun({ plan: w.plan, output: w.output }),
    w.sink,
  );
}
