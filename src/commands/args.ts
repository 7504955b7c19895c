import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** node:util parseArgs, with its errors turned into one-line usage errors naming the command. */
export function parseCommandArgs<O extends Options>(command: string, args: string[], options: O) {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${command}: ${(err as Error).message.split(/\.\s|\n/, 1)[0]} (see cscs-sa ${command} --help)`);
  }
}

export function seconds(value: string | undefined, flag: string, max = 120): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  // Beyond Node's timer range a timer fires after 1 ms: a bound keeps "wait long" from meaning "do not wait".
  if (!Number.isFinite(n) || n <= 0 || n > max) throw new UsageError(`${flag} takes a number of seconds above 0 to ${max}, not "${value}"`);
  return n;
}
