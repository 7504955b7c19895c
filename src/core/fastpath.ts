/**
 * The hot path: `cscs-sa match` with a fresh certificate, which ssh runs for every invocation
 * (`ssh -G` included). Synchronous, no config-file loader, no network: a JSON config file (the
 * usual one, and the one with several accounts) it reads and checks itself. Anything it does not
 * handle (a refresh, --help, a YAML or JS config file, a bad flag or file) goes to the full
 * command, which looks again and explains.
 */
import { parseArgs } from 'node:util';
import { checkFileConfig, findConfigFile, openTrustedConfig, settingsFrom } from './config.js';
import { inspect, keyPaths } from './store.js';

/** match's flags; --env only matters to a refresh, but a bad one is refused here too, fresh certificate or not. */
export const MATCH_OPTIONS = { key: { type: 'string', short: 'f' }, env: { type: 'string' }, account: { type: 'string' } } as const;
/** match's arguments: more are refused (by the full command), fresh certificate or not. */
export const MATCH_POSITIONALS = ['HOST'];

/** True when `match ARGS` has nothing to do: its certificate is fresh. */
export function matchIsFresh(args: string[], env: NodeJS.ProcessEnv = process.env): boolean {
  try {
    const { values, positionals } = parseArgs({ args, options: MATCH_OPTIONS, allowPositionals: true, strict: true });
    if (positionals.length > MATCH_POSITIONALS.length) return false;
    const configFile = findConfigFile(env);
    // JSON.parse reads a .json file as cosmiconfig does; other formats need its loaders.
    if (configFile && !configFile.endsWith('.json')) return false;
    // Trusted like the full path trusts it (owner, mode, folders), read from the checked descriptor.
    const file = configFile ? checkFileConfig(JSON.parse(openTrustedConfig(configFile).content!), configFile) : {};
    const settings = settingsFrom({ key: values.key, env: values.env, account: values.account }, env, file, configFile);
    return inspect(keyPaths(settings.key), settings.refreshMargin).status === 'fresh';
  } catch {
    return false;
  }
}
