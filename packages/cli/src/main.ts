import { describeError, UsageError, VecmillError } from '@vecmill/shared/errors';
import * as evalCmd from './commands/eval-command.js';
import * as exportCmd from './commands/export-command.js';
import * as indexCmd from './commands/index-command.js';
import * as inspectCmd from './commands/inspect-command.js';
import * as makeModelCmd from './commands/make-model-command.js';
import * as modelsCmd from './commands/models-command.js';
import * as produceCmd from './commands/produce-command.js';
import * as runCmd from './commands/run-command.js';
import * as searchCmd from './commands/search-command.js';
import * as statusCmd from './commands/status-command.js';
import * as workerCmd from './commands/worker-command.js';

/** The command table: one entry per `vecmill` verb, each in its own file under commands/. */
const commands: Readonly<Record<string, { run: (argv: readonly string[]) => Promise<number>; help: string }>> = {
  run: { run: runCmd.runCommand, help: runCmd.help },
  produce: { run: produceCmd.produceCommand, help: produceCmd.help },
  worker: { run: workerCmd.workerCommand, help: workerCmd.help },
  status: { run: statusCmd.statusCommand, help: statusCmd.help },
  inspect: { run: inspectCmd.inspectCommand, help: inspectCmd.help },
  index: { run: indexCmd.indexCommand, help: indexCmd.help },
  search: { run: searchCmd.searchCommand, help: searchCmd.help },
  eval: { run: evalCmd.evalCommand, help: evalCmd.help },
  export: { run: exportCmd.exportCommand, help: exportCmd.help },
  'make-model': { run: makeModelCmd.makeModelCommand, help: makeModelCmd.help },
  models: { run: modelsCmd.modelsCommand, help: modelsCmd.help },
};

function usage(): string {
  return `vecmill: CLIP embeddings for very large image-text TSV datasets

usage: vecmill <command> [flags]

${Object.values(commands)
  .map((c) => c.help)
  .join('\n\n')}
`;
}

/**
 * Parses the verb, runs it, and turns any error into one line and a non-zero exit code: 2 for a
 * wrong command line (with a usage hint), 1 for everything else.
 */
export async function main(argv: readonly string[]): Promise<number> {
  const [verb, ...rest] = argv;
  if (verb === undefined || verb === '--help' || verb === '-h' || verb === 'help') {
    process.stdout.write(usage());
    return verb === undefined ? 2 : 0;
  }
  const command = commands[verb];
  if (command === undefined) {
    process.stderr.write(`vecmill: unknown command ${JSON.stringify(verb)}; run \`vecmill --help\`\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${command.help}\n`);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    // A usage error comes before any output; other errors may follow a progress bar, so on a terminal they start a new line.
    const usage = err instanceof UsageError;
    const lead = !usage && process.stderr.isTTY === true ? '\n' : '';
    const hint = usage ? `; see \`vecmill ${verb} --help\`` : '';
    process.stderr.write(`${lead}vecmill ${verb}: ${describeError(err)}${hint}${err instanceof VecmillError ? ` [${err.code}]` : ''}\n`);
    if (!(err instanceof VecmillError) && err instanceof Error && err.stack !== undefined) process.stderr.write(`${err.stack}\n`);
    return usage ? 2 : 1;
  }
}
