import { loadRunConfig } from '@vecmill/shared/config';
import { runEmbedded } from '../embedded-run.js';
import { createProgressReporter } from '../progress-reporter.js';
import { summarizeManifest } from '../manifest-summary.js';


/** Usage text for `vecmill --help`. */
export const help = `vecmill run --input PATH|s3://... --model DIR --output DIR|s3://...
  Embed a TSV dataset in this process (no Redis, no S3 needed).
  --input, -i      TSV file, folder, glob, s3://bucket/key or s3://bucket/prefix/ (repeatable)
  --model, -m      model folder (Hugging Face ONNX layout: clip, chinese_clip, siglip), s3:// folder, or a pulled repo id
  --output, -o     output folder or s3://bucket/prefix/
  --kind           pairs|text|image (default: detected from the first lines)
  --split-size     bytes per split, e.g. 64MiB (default 64MiB)
  --concurrency    splits in flight (default 2)
  --batch-size     rows per model batch (default 32 on CPU, 256 on CUDA)
  --dtype          fp32|fp16|q8: which ONNX files to load (default fp32)
  --device         cpu|cuda|auto (default cpu)
  --threads        onnxruntime intra-op threads (default: all cores)
  --decode-threads image decode + resize threads (default: all cores)
  --out-dtype      float32|float16 for stored embeddings (default float32)
  --formats        extra outputs: npy,tsv (default parquet,npy)
  --no-normalize   keep raw embeddings (default: L2-normalized)
  --no-trim-text   pad text to the full context instead of the batch's longest caption
  --context-length tokens per caption (default: tokenizer_config model_max_length, else the text config's)
  --fast-decode    JPEG shrink-on-load before the exact resize (faster, not bit-exact)
  --max-pixels     refuse images declaring more pixels (default 50000000)
  --max-line-bytes lines longer than this become error rows (default 64MiB)
  --progress       bar|json (default: bar on a terminal)
  --run-id         name the run (default: a time-based id)
  --reuse OUTPUT   copy embeddings of unchanged rows (same content hash) from a previous output`;

/** `vecmill run`: the embedded mode, start to finish in this process. */
export async function runCommand(argv: readonly string[]): Promise<number> {
  const config = loadRunConfig(argv);
  const progress = createProgressReporter({ mode: config.progress, write: (t) => process.stderr.write(t) });
  const result = await runEmbedded(config, progress);
  progress.finish();
  if (result.alreadyPublished) process.stderr.write(`${result.outputUri} already holds the published run ${result.runId}; nothing to do\n`);
  process.stdout.write(`${summarizeManifest(result.manifest, result.outputUri)}\n`);
  return 0;
}
