import { rename, rm, writeFile } from 'node:fs/promises';

/**
 * Writes `data` to `path` through a temporary sibling and a rename, so a reader (or a crashed
 * generator) never leaves a half-written config or tokenizer under the final name.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmpPath = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmpPath, data);
    await rename(tmpPath, path);
  } catch (err) {
    await rm(tmpPath, { force: true });
    throw err;
  }
}
