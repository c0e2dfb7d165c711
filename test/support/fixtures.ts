import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root, found from this compiled file's place (test/dist/support/). */
export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/**
 * `../shared/fixtures` beside the project root: present in developer sessions and CI, absent on a
 * user's fresh clone. Tests that need it skip with the message from `fixturesSkipReason`.
 */
export function sharedFixturesDir(): string | undefined {
  const dir = join(projectRoot, '..', 'shared', 'fixtures');
  return existsSync(join(dir, 'README.md')) ? dir : undefined;
}

/** A `skip` option value for node:test: false when the shared fixtures exist, else the reason. */
export function fixturesSkipReason(): string | false {
  return sharedFixturesDir() === undefined
    ? 'skipped: ../shared/fixtures is not beside the project root (it ships with the development workspace, not the repository)'
    : false;
}
