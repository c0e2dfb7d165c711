import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runCli } from '../support/distributed-helpers.js';

/**
 * The one-line error contract of a wrong command line, for every command: exactly one line on
 * stderr that names the flag or argument and says where the usage is, exit code 2, no stack
 * trace. Each case spawns the real CLI.
 */
describe('every command refuses a wrong command line in one line with exit 2', { concurrency: 4 }, () => {
  const cases: { command: string; args: string[]; names: string }[] = [
    { command: 'run', args: ['run', '--input', 'a.tsv', '--bogus'], names: '--bogus' },
    { command: 'run', args: ['run', '--model', 'm', '--output', 'o'], names: '--input' },
    { command: 'produce', args: ['produce', '--redis', 'redis://127.0.0.1:1', '--bogus'], names: '--bogus' },
    { command: 'produce', args: ['produce', '--redis', 'redis://127.0.0.1:1', '--input', 'a.tsv', '--output', 'o'], names: '--model' },
    { command: 'worker', args: ['worker', '--redis', 'redis://127.0.0.1:1', '--bogus'], names: '--bogus' },
    { command: 'worker', args: ['worker', '--concurrency', '1'], names: '--redis' },
    { command: 'status', args: ['status', '--run', 'r1', '--bogus'], names: '--bogus' },
    { command: 'status', args: ['status', '--redis', 'redis://127.0.0.1:1'], names: '--run' },
    { command: 'inspect', args: ['inspect', 'out', '--bogus'], names: '--bogus' },
    { command: 'inspect', args: ['inspect', '--json'], names: 'OUTPUT' },
    { command: 'index', args: ['index', 'out', '--bogus'], names: '--bogus' },
    { command: 'index', args: ['index', '--metric', 'ip'], names: 'OUTPUT' },
    { command: 'search', args: ['search', 'out', '--text', 'a cat', '--bogus'], names: '--bogus' },
    { command: 'search', args: ['search', '--text', 'a cat'], names: 'OUTPUT' },
    { command: 'eval', args: ['eval', 'out', '--bogus'], names: '--bogus' },
    { command: 'eval', args: ['eval', '--json'], names: 'OUTPUT' },
    { command: 'export', args: ['export', 'lancedb', 'out', '--db', 'db', '--table', 't', '--bogus'], names: '--bogus' },
    { command: 'export', args: ['export', 'lancedb', 'out', '--table', 't'], names: '--db' },
    { command: 'make-model', args: ['make-model', '--out', 'm', '--bogus'], names: '--bogus' },
    { command: 'make-model', args: ['make-model', '--preset', 'tiny'], names: '--out' },
    { command: 'models', args: ['models', 'pull', 'org/name', '--bogus'], names: '--bogus' },
    { command: 'models', args: ['models', 'pull', '--dtype', 'fp16'], names: 'REPO_ID' },
    { command: 'models', args: ['models'], names: 'SUBCOMMAND' },
    { command: 'run', args: ['run', '--input', 'a.tsv', '--model'], names: '--model' },
    { command: 'run', args: ['run', '--input', 'a.tsv', '--model', 'm', '--output', 'o', 'stray'], names: 'stray' },
    { command: 'index', args: ['index', 'out', '--metric', 'l2'], names: '--metric' },
  ];
  for (const c of cases) {
    it(`vecmill ${c.args.join(' ')} → names ${c.names}`, async () => {
      // No Redis URL from the environment: `--redis is required` must be reachable.
      const r = await runCli(c.args, { VECMILL_REDIS_URL: '' });
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^[^\n]+\n$/, `exactly one line on stderr: ${JSON.stringify(r.stderr)}`);
      assert.ok(r.stderr.startsWith(`vecmill ${c.command}: `), r.stderr);
      assert.ok(r.stderr.includes(c.names), `names ${c.names}: ${r.stderr}`);
      assert.ok(r.stderr.includes(`see \`vecmill ${c.command} --help\``), `usage hint: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /TypeError|\bat .*:\d+:\d+/, 'no stack trace');
    });
  }
});
