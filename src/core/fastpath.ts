/**
 * The hot path: what ssh runs for every invocation, answered synchronously by the CommonJS entry
 * without the ES module CLI, the config loader or the network. `cscs-sa match` with a fresh
 * certificate (when the Match line's shell check could not tell: src/ssh/freshcheck.ts), and
 * `cscs-sa proxy` for a plain relay. A JSON config file (the usual one, and the one with several
 * accounts) it reads and checks itself. Anything it does not handle (a refresh, --help, --agent, a
 * YAML or JS config file, a bad flag or file) goes to the full command, which looks again and
 * explains.
 */
import { parseArgs } from 'node:util';
import { checkFileConfig, findConfigFile, openTrustedConfig, type Settings, type SettingsFlags, settingsFrom } from './config.js';
import { inspect, keyPaths } from './store.js';

/** match's flags; --env only matters to a refresh, but a bad one is refused here too, fresh certificate or not. */
export const MATCH_OPTIONS = { key: { type: 'string', short: 'f' }, env: { type: 'string' }, account: { type: 'string' } } as const;
/** match's arguments: more are refused (by the full command), fresh certificate or not. */
export const MATCH_POSITIONALS = ['HOST'];

export const PROXY_OPTIONS = { agent: { type: 'boolean' }, account: { type: 'string' }, log: { type: 'string' }, 'connect-timeout': { type: 'string' } } as const;

/** The settings as the full command loads them, when no config loader is needed; throws what it would. */
function fastSettings(flags: SettingsFlags, env: NodeJS.ProcessEnv): Settings | undefined {
  const configFile = findConfigFile(env);
  if (configFile && !configFile.endsWith('.json')) return undefined;
  // Trusted like the full path trusts it (owner, mode, folders), read from the checked descriptor.
  const file = configFile ? checkFileConfig(JSON.parse(openTrustedConfig(configFile).content), configFile) : {};
  return settingsFrom(flags, env, file, configFile);
}

/** True when `match ARGS` has nothing to do: its certificate is fresh. */
export function matchIsFresh(args: string[], env: NodeJS.ProcessEnv = process.env): boolean {
  try {
    const { values, positionals } = parseArgs({ args, options: MATCH_OPTIONS, allowPositionals: true, strict: true });
    if (positionals.length > MATCH_POSITIONALS.length) return false;
    const settings = fastSettings({ key: values.key, env: values.env, account: values.account }, env);
    return settings !== undefined && inspect(keyPaths(settings.key), settings.refreshMargin, Date.now(), settings.user).status === 'fresh';
  } catch {
    return false;
  }
}

export interface PlainRelay {
  host: string;
  port: number;
  timeoutSeconds: number;
  log?: string;
}

/**
 * What `proxy ARGS` relays when it is a plain relay: HOST and a valid PORT, no --agent (flag or
 * setting), no --connect-timeout flag, no --help; undefined for the full command otherwise.
 */
export function plainRelay(args: string[], env: NodeJS.ProcessEnv = process.env): PlainRelay | undefined {
  try {
    const { values, positionals } = parseArgs({ args, options: PROXY_OPTIONS, allowPositionals: true, strict: true });
    const [host, portText] = positionals;
    if (positionals.length !== 2 || !host || values.agent || values['connect-timeout'] !== undefined) return undefined;
    const port = Number(portText);
    if (!/^\d+$/.test(portText!) || port < 1 || port > 65535) return undefined;
    const settings = fastSettings({ account: values.account }, env);
    if (!settings || settings.agent) return undefined;
    return { host, port, timeoutSeconds: settings.connectTimeout, log: values.log };
  } catch {
    return undefined;
  }
}
