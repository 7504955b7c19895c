/**
 * Counts what a user cannot see but pays for: every Node process started with an environment
 * from `recordNodeStarts` appends its arguments to a file (NODE_OPTIONS --require).
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface NodeStarts {
  /** The arguments of each Node start since the last reset, one string each. */
  list(): string[];
  /** Those that ran `cscs-sa COMMAND`. */
  of(command: string): string[];
  reset(): void;
}

/** Adds the recorder to `env` (in place); the log and the recorder live in `dir`. */
export function recordNodeStarts(env: Record<string, string>, dir: string): NodeStarts {
  const recorder = join(dir, 'record-node.cjs');
  const log = join(dir, 'node-starts');
  writeFileSync(recorder, "require('node:fs').appendFileSync(process.env.CSCS_SA_TEST_NODE_LOG, process.argv.slice(1).join(' ') + '\\n');\n");
  Object.assign(env, { NODE_OPTIONS: `--require ${recorder}`, CSCS_SA_TEST_NODE_LOG: log });
  const list = () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []);
  return {
    list,
    of: (command) => list().filter((args) => args.split(' ')[1] === command),
    reset: () => rmSync(log, { force: true }),
  };
}
