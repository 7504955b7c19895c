import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../base/errors.js';
import { didYouMean } from './suggest.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * node:util parseArgs, with its errors turned into one-line usage errors naming the command.
 * `positionals` names the arguments the command takes (as its usage does); more are refused,
 * so that a misplaced word is not silently ignored.
 */
export function parseCommandArgs<O extends Options>(command: string, args: string[], options: O, positionals: readonly string[]) {
  const see = `see cscs-sa ${command} --help`;
  let parsed;
  try {
    parsed = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (err) {
    const message = `${command}: ${(err as Error).message.split(/\.\s|\n/, 1)[0]}`;
    const unknown = (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /'(--[^'=]+)/.exec(message)?.[1] : undefined;
    const meant = unknown && didYouMean(unknown, [...Object.keys(options), 'help'].map((name) => `--${name}`));
    if (meant) throw new UsageError(message, { fix: `did you mean "${meant}"? (${see})`, cause: err });
    throw new UsageError(`${message} (${see})`, { cause: err });
  }
  const extra = parsed.positionals[positionals.length];
  if (extra !== undefined) {
    const takes = positionals.length === 0 ? 'no arguments' : `only ${positionals.join(' ')}`;
    throw new UsageError(`${command}: unexpected argument "${extra}"`, { fix: `${command} takes ${takes} (${see})` });
  }
  return parsed;
}
