import { loadPullConfig } from '@vecmill/shared/config';
import { UsageError } from '@vecmill/shared/errors';
import { pullModel } from '@vecmill/shared/model/hub-download';


/** Usage text for `vecmill --help`. */
export const help = `vecmill models pull REPO_ID [--revision R] [--dtype fp32|fp16|q8]
  Download a CLIP ONNX folder from the Hugging Face hub (HF_ENDPOINT, HF_TOKEN) into the cache.`;

/** `vecmill models pull REPO_ID`: fetch a CLIP ONNX folder from the hub into the cache. */
export async function modelsCommand(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'pull') {
    throw new UsageError(sub === undefined ? 'SUBCOMMAND is required: pull' : `unknown subcommand ${JSON.stringify(sub)}: the one there is, pull`, { argument: sub ?? 'SUBCOMMAND' });
  }
  const config = loadPullConfig(rest);
  let lastFile = '';
  const pulled = await pullModel({
    repoId: config.repoId,
    revision: config.revision,
    dtype: config.dtype,
    cacheDir: config.env.cacheDir,
    endpoint: config.env.hfEndpoint,
    ...(config.env.hfToken !== undefined ? { token: config.env.hfToken } : {}),
    onProgress: (p) => {
      if (p.file !== lastFile) process.stderr.write(`${lastFile === '' ? '' : '\n'}${p.file}`);
      lastFile = p.file;
      process.stderr.write(`\r${p.file} ${(p.received / 1e6).toFixed(1)}${p.total === undefined ? '' : `/${(p.total / 1e6).toFixed(1)}`} MB`);
    },
  });
  if (lastFile !== '') process.stderr.write('\n');
  process.stdout.write(
    `${config.repoId}@${pulled.sha.slice(0, 12)} in ${pulled.dir} (${pulled.files.length} files, ${pulled.downloadedBytes === 0 ? 'already up to date' : `${(pulled.downloadedBytes / 1e6).toFixed(1)} MB downloaded`}); use --model ${config.repoId}\n`,
  );
  return 0;
}
