import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './errors.js';

/** The flags a command accepts, in `node:util` parseArgs form. */
export type CommandOptions = NonNullable<ParseArgsConfig['options']>;

/** A required positional argument: its name in the usage line and what to pass there. */
export interface PositionalArg {
  readonly name: string;
  readonly what: string;
}

/** The typed flag values of a command with `options`. */
export type FlagValues<O extends CommandOptions> = ReturnType<typeof parseArgs<{ options: O; strict: true; allowPositionals: true }>>['values'];

/** A parsed command line: flag values typed by the command's options, and its positionals. */
export interface ParsedCommandLine<O extends CommandOptions> {
  readonly values: FlagValues<O>;
  readonly positionals: readonly string[];
}

/**
 * The one argument parser of every `vecmill` command. It checks each token itself, so every
 * mistake becomes a UsageError naming the flag or argument (`unknown flag --bogus`, `--model
 * needs a value`, `OUTPUT is required: ...`) rather than parseArgs' multi-line TypeError; the
 * CLI adds the usage hint and exits 2. `positionals` lists the required arguments in order; a
 * command given more arguments than it names is refused.
 */
export function parseCommandLine<const O extends CommandOptions>(
  argv: readonly string[],
  options: O,
  positionals: readonly PositionalArg[] = [],
): ParsedCommandLine<O> {
  const { tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
  const given: string[] = [];
  for (const token of tokens) {
    if (token.kind === 'positional') given.push(token.value);
    if (token.kind !== 'option') continue;
    const flag = token.rawName;
    const spec = Object.hasOwn(options, token.name) ? options[token.name] : undefined;
    if (spec === undefined) throw new UsageError(`unknown flag ${flag}`, { flag });
    if (spec.type === 'boolean' && token.value !== undefined) throw new UsageError(`${flag} takes no value (got ${JSON.stringify(token.value)})`, { flag });
    // A value that looks like a flag means the value was forgotten: `--model --output out`.
    if (spec.type === 'string' && (token.value === undefined || (!token.inlineValue && token.value.startsWith('-')))) {
      throw new UsageError(`${flag} needs a value${token.value === undefined ? '' : ` (to pass a value starting with '-', write --${token.name}=${token.value})`}`, { flag });
    }
  }
  const extra = given[positionals.length];
  if (extra !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(extra)}`, { argument: extra });
  const missing = positionals[given.length];
  if (missing !== undefined) throw new UsageError(`${missing.name} is required: ${missing.what}`, { argument: missing.name });
  const { values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: true });
  return { values, positionals: given };
}
