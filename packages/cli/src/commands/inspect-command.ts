import { ConfigError } from '@vecmill/shared/errors';
import { loadEnvSettings } from '@vecmill/shared/config';
import { formatLocation, parseLocation } from '@vecmill/shared/storage/location';
import { openStore } from '@vecmill/shared/storage/open-store';
import { readManifestIfPublished } from '@vecmill/worker/merge-processor';
import { summarizeManifest } from '../manifest-summary.js';


/** Usage text for `vecmill --help`. */
export const help = `vecmill inspect OUTPUT [--json]
  Print the summary of a published output's manifest.json.`;

/** `vecmill inspect OUTPUT [--json]`: what a published output holds. */
export async function inspectCommand(argv: readonly string[]): Promise<number> {
  const json = argv.includes('--json');
  const target = argv.find((a) => !a.startsWith('--'));
  if (target === undefined) throw new ConfigError('inspect needs an output location: vecmill inspect OUTPUT');
  const loc = parseLocation(target);
  const manifest = await readManifestIfPublished(openStore(loc, loadEnvSettings().s3));
  if (manifest === undefined) {
    throw new ConfigError(`${formatLocation(loc)} holds no published run (no _SUCCESS); it is still running, failed, or is not a vecmill output`);
  }
  process.stdout.write(json ? `${JSON.stringify(manifest, null, 2)}\n` : `${summarizeManifest(manifest, formatLocation(loc))}\n`);
  return 0;
}
