import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelError } from '../errors.js';
import { parseLocation } from '../storage/location.js';
import { openStore } from '../storage/open-store.js';
import type { S3ClientOptions } from '../storage/s3-store.js';
import { materializeModelFolder, type ModelDtype, type ModelNeeds } from './model-folder.js';
import { isRepoId, resolveCachedModel } from './model-cache.js';

/** Where `--model` may point. */
export interface ModelLookup {
  readonly spec: string;
  readonly dtype: ModelDtype;
  readonly needs: ModelNeeds;
  readonly cacheDir: string;
  readonly s3: S3ClientOptions | undefined;
  readonly cwd: string;
}

/**
 * Turns `--model` into a local folder: a local path as is, an `s3://` folder copied into the
 * cache, or a Hugging Face repo id already fetched by `vecmill models pull` (runs never download
 * on their own, so a night's run cannot stall on the hub).
 */
export async function resolveModelDir(lookup: ModelLookup): Promise<string> {
  const loc = parseLocation(lookup.spec, lookup.cwd);
  if (loc.kind === 's3') {
    const prefix = loc.key === '' || loc.key.endsWith('/') ? loc.key : `${loc.key}/`;
    const store = openStore({ kind: 's3', bucket: loc.bucket, key: prefix }, lookup.s3);
    return materializeModelFolder(store, lookup.dtype, lookup.needs, join(lookup.cacheDir, 's3', loc.bucket, prefix));
  }
  const local = await stat(loc.path).catch(() => undefined);
  if (local?.isDirectory() === true) return loc.path;
  if (isRepoId(lookup.spec)) {
    const cached = resolveCachedModel(lookup.cacheDir, lookup.spec);
    if (cached !== undefined) return cached;
    throw new ModelError(`model ${lookup.spec} is neither a local folder nor in the cache ${lookup.cacheDir}; run \`vecmill models pull ${lookup.spec}\` first`, { model: lookup.spec });
  }
  throw new ModelError(`model folder not found: ${loc.path}; make one with \`vecmill make-model --preset tiny --out DIR\` or pass a Hugging Face CLIP ONNX folder`, { model: lookup.spec });
}
