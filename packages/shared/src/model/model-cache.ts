import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/**
 * The on-disk layout of pulled hub models, shared by `vecmill models pull` (which writes it) and
 * `--model REPO_ID` (which reads it offline):
 *
 *   {cacheDir}/{org}--{name}/{sha}/...        the repo's files at one commit, repo-relative paths
 *   {cacheDir}/{org}--{name}/refs/{revision}  the commit sha a branch or tag pointed to when pulled
 *
 * Snapshots are keyed by commit sha, so they never change once complete; the refs files are the
 * only mutable part, and they are written after every file of a pull is verified, so a ref never
 * points at a half-downloaded snapshot.
 */

/** Hub repo ids ("org/name"): each part starts alphanumeric, no "--" or "..", as the hub enforces. */
const repoIdPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}\/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;

/** Git commit ids as the hub reports them. */
const commitShaPattern = /^[0-9a-f]{40}$/;

/** Branch, tag or PR refs ("main", "v1.0", "refs/pr/3"): safe to use as a relative path. */
const revisionPattern = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;

/** True for "org/name" ids the hub accepts; anything else (a local path, a URL) is not a repo id. */
export function isRepoId(value: string): boolean {
  return repoIdPattern.test(value) && !value.includes('--') && !value.includes('..');
}

/** True for a full 40-hex commit sha, which pins a snapshot without needing a ref file. */
export function isCommitSha(value: string): boolean {
  return commitShaPattern.test(value);
}

/** True for revisions that can name a ref file without escaping the repo's cache folder. */
export function isSafeRevision(value: string): boolean {
  return revisionPattern.test(value) && !value.split('/').some((part) => part === '.' || part === '..');
}

/** `{cacheDir}/{org}--{name}`: one folder per repo, flat so it is easy to find and delete. */
export function repoCacheDir(cacheDir: string, repoId: string): string {
  return join(cacheDir, repoId.replace('/', '--'));
}

/** The snapshot folder for one commit: what `--model` points onnxruntime at. */
export function snapshotDir(cacheDir: string, repoId: string, sha: string): string {
  return join(repoCacheDir(cacheDir, repoId), sha);
}

/**
 * Records which commit `revision` resolved to. Written through a temporary file and a rename so
 * a reader never sees a truncated sha.
 */
export async function writeCachedRef(cacheDir: string, repoId: string, revision: string, sha: string): Promise<void> {
  const path = join(repoCacheDir(cacheDir, repoId), 'refs', revision);
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, sha);
  await rename(tmp, path);
}

/**
 * The local snapshot folder for `repoId` at `revision` (default "main"), or undefined when it was
 * never pulled. Needs no network, so `--model org/name` works on an offline machine once the model
 * was pulled (or the cache folder copied over). A full commit sha is looked up directly.
 */
export function resolveCachedModel(cacheDir: string, repoId: string, revision = 'main'): string | undefined {
  if (!isRepoId(repoId) || !isSafeRevision(revision)) return undefined;
  let sha = revision;
  if (!isCommitSha(revision)) {
    const refPath = join(repoCacheDir(cacheDir, repoId), 'refs', revision);
    if (!existsSync(refPath) || !statSync(refPath).isFile()) return undefined;
    sha = readFileSync(refPath, 'utf8').trim();
    if (!isCommitSha(sha)) return undefined;
  }
  const dir = snapshotDir(cacheDir, repoId, sha);
  return existsSync(dir) && statSync(dir).isDirectory() ? dir : undefined;
}
