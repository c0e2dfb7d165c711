import { ConfigError } from '@vecmill/shared/errors';
import { parseCommandLine } from '@vecmill/shared/parse-command-line';
import { loadEnvSettings } from '@vecmill/shared/config';
import { formatLocation, parseLocation } from '@vecmill/shared/storage/location';
import { openStore } from '@vecmill/shared/storage/open-store';
import { readManifestIfPublished } from '@vecmill/shared/manifest';
import { summarizeManifest } from '../manifest-summary.js';


/** Usage text for `vecmill --help`. */
export const help = `vecmill inspect OUTPUT [--json]
  Print the summary of a published output's manifest.json.`;

/** `vecmill inspect OUTPUT [--json]`: what a published output holds. */
export async function inspectCommand(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(argv, { json: { type: 'boolean' } }, [
    { name: 'OUTPUT', what: 'the output to inspect (a folder or s3://bucket/prefix/)' },
  ]);
  const loc = parseLocation(positionals[0] as string);
  const manifest = await readManifestIfPublished(openStore(loc, loadEnvSettings().s3));
  if (manifest === undefined) {
    throw new ConfigError(`${formatLocation(loc)} holds no published run (no _SUCCESS); it is still running, failed, or is not a vecmill output`);
  }
  process.stdout.write(values.json === true ? `${JSON.stringify(manifest, null, 2)}\n` : `${summarizeManifest(manifest, formatLocation(loc))}\n`);
  return 0;
}
