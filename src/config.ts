/**
 * Settings: flag > environment > config file > default.
 *
 * The config file is searched only in the user's config folder. Listing that folder is one
 * syscall; cosmiconfig (and its YAML and JS loaders) is imported only when a file is there,
 * because `match` runs for every ssh invocation.
 */
import { readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { ConfigError } from './errors.js';

/** The CSCS gateways: production, and the test and development system (TDS). */
export const AUTHX_URLS = { prod: 'https://authx-gateway.svc.cscs.ch', tds: 'https://authx-gateway.tds.cscs.ch' } as const;
export type Environment = keyof typeof AUTHX_URLS;

export interface Settings {
  /** Private key path; the certificate is `${key}-cert.pub`. */
  key: string;
  /** Which CSCS gateway authxUrl defaults to. */
  env: Environment;
  authxUrl: string;
  /** Refresh when fewer than this many seconds of validity are left. */
  refreshMargin: number;
  /** Total deadline in seconds for one refresh (both gateway calls, retries included). */
  timeout: number;
  /** Connect timeout in seconds, for the gateway and for `proxy`. */
  connectTimeout: number;
  apiKeyFile?: string;
  /** A command that prints the API key, run without a shell: a string or an argv array. */
  apiKeyCommand?: string | string[];
  /** proxy loads certificates into ssh-agent (as with --agent). */
  agent: boolean;
  /** The config file the settings came from, if any. */
  configFile?: string;
}

export type SettingsFlags = { key?: string; env?: string };

const NAME = 'cscs-sa';
const SEARCH_PLACES = ['config.json', 'config.yaml', 'config.yml', 'config.js', 'config.mjs', 'config.cjs'];

const ENV = {
  key: 'CSCS_SA_KEY',
  env: 'CSCS_SA_ENV',
  authxUrl: 'CSCS_AUTHX_URL',
  refreshMargin: 'CSCS_SA_REFRESH_MARGIN',
  timeout: 'CSCS_SA_TIMEOUT',
  connectTimeout: 'CSCS_SA_CONNECT_TIMEOUT',
  configFile: 'CSCS_SA_CONFIG',
} as const;

function configDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  return join(xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.config'), NAME);
}

export function expandHome(path: string): string {
  if (path === '~') return homedir();
  if (path.startsWith('~/')) return join(homedir(), path.slice(2));
  return resolve(path);
}

/** The config file to load, without loading anything: CSCS_SA_CONFIG, else the first search place present. */
export function findConfigFile(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const explicit = env[ENV.configFile];
  if (explicit) return expandHome(explicit);
  const dir = configDir(env);
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return undefined;
  }
  const found = SEARCH_PLACES.find((place) => entries.includes(place));
  return found && join(dir, found);
}

export type FileConfig = Partial<Omit<Settings, 'configFile'>>;

type Kind = 'string' | 'boolean' | 'command' | 'timeout' | 'connectTimeout' | 'refreshMargin';

/**
 * Limits of the duration settings, from flag, environment and file alike. A zero timeout would
 * mean "fail at once"; beyond Node's timer range (about 24.8 days) a timer fires after 1 ms; and
 * a deadline of minutes is already longer than any ssh user waits. A refresh margin of 0 is
 * allowed: it means "refresh only once expired", a choice, not a mistake.
 */
const DURATIONS = {
  timeout: { min: 0, minIncluded: false, max: 300 },
  connectTimeout: { min: 0, minIncluded: false, max: 120 },
  refreshMargin: { min: 0, minIncluded: true, max: 3600 },
} as const;
type Duration = keyof typeof DURATIONS;

function validSeconds(value: unknown, name: Duration): value is number {
  const { min, minIncluded, max } = DURATIONS[name];
  return typeof value === 'number' && Number.isFinite(value) && (minIncluded ? value >= min : value > min) && value <= max;
}

function wantSeconds(name: Duration): string {
  const { min, minIncluded, max } = DURATIONS[name];
  return `a number of seconds ${minIncluded ? `from ${min}` : `above ${min}`} to ${max}`;
}

const durationKind = (name: Duration) => ({ valid: (v: unknown) => validSeconds(v, name), want: wantSeconds(name) });

const KINDS: Record<Kind, { valid: (value: unknown) => boolean; want: string }> = {
  timeout: durationKind('timeout'),
  connectTimeout: durationKind('connectTimeout'),
  refreshMargin: durationKind('refreshMargin'),
  boolean: { valid: (v) => typeof v === 'boolean', want: 'true or false' },
  string: { valid: (v) => typeof v === 'string' && v !== '', want: 'a non-empty string' },
  command: {
    valid: (v) => (typeof v === 'string' && v.trim() !== '') || (Array.isArray(v) && v.length > 0 && v.every((part) => typeof part === 'string')),
    want: 'a command string or an array of strings',
  },
};

const FILE_KEYS: Record<keyof FileConfig, Kind> = {
  key: 'string',
  env: 'string',
  authxUrl: 'string',
  refreshMargin: 'refreshMargin',
  timeout: 'timeout',
  connectTimeout: 'connectTimeout',
  apiKeyFile: 'string',
  apiKeyCommand: 'command',
  agent: 'boolean',
};

async function loadConfigFile(path: string): Promise<FileConfig> {
  const { cosmiconfig } = await import('cosmiconfig');
  let result;
  try {
    result = await cosmiconfig(NAME, { searchPlaces: SEARCH_PLACES, searchStrategy: 'none', cache: false }).load(path);
  } catch (err) {
    const reason = (err as Error).message.split('\n', 1)[0];
    throw new ConfigError(`cannot read config file ${path}: ${reason}`);
  }
  const config: unknown = result?.config ?? {};
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new ConfigError(`config file ${path} must hold an object with settings`);
  }
  for (const [name, value] of Object.entries(config)) {
    const kind = FILE_KEYS[name as keyof FileConfig];
    if (!kind) throw new ConfigError(`config file ${path}: unknown setting "${name}" (known: ${Object.keys(FILE_KEYS).join(', ')})`);
    if (!KINDS[kind].valid(value)) throw new ConfigError(`config file ${path}: "${name}" must be ${KINDS[kind].want}`);
  }
  return config as FileConfig;
}

/** A duration from `from` (an environment variable or a flag), checked against its setting's limits. */
export function checkSeconds(raw: string | undefined, setting: Duration, from: string): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const value = raw.trim() === '' ? NaN : Number(raw);
  if (!validSeconds(value, setting)) throw new ConfigError(`${from}=${raw} is not ${wantSeconds(setting)}`);
  return value;
}

function envSeconds(env: NodeJS.ProcessEnv, setting: Duration): number | undefined {
  return checkSeconds(env[ENV[setting]], setting, ENV[setting]);
}

function checkUrl(url: string, from: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`${from}: "${url}" is not a URL`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new ConfigError(`${from}: "${url}" must be an https:// URL`);
  return url.replace(/\/+$/, '');
}

export async function loadSettings(flags: SettingsFlags = {}, env: NodeJS.ProcessEnv = process.env): Promise<Settings> {
  const configFile = findConfigFile(env);
  return settingsFrom(flags, env, configFile ? await loadConfigFile(configFile) : {}, configFile);
}

function checkEnvironment(value: string, from: string): Environment {
  if (!Object.hasOwn(AUTHX_URLS, value)) throw new ConfigError(`${from}: "${value}" is not a CSCS environment (${Object.keys(AUTHX_URLS).join(' or ')})`);
  return value as Environment;
}

/** Merges flags, environment and a loaded config file over the defaults; synchronous, for the hot path. */
export function settingsFrom(flags: SettingsFlags, env: NodeJS.ProcessEnv, file: FileConfig, configFile?: string): Settings {
  const cscsEnv = flags.env
    ? checkEnvironment(flags.env, '--env')
    : env[ENV.env]
      ? checkEnvironment(env[ENV.env]!, ENV.env)
      : file.env
        ? checkEnvironment(file.env, `config file ${configFile}`)
        : 'prod';
  // An explicit --env picks its gateway; otherwise an explicit URL (a proxy, a double) wins.
  const authxUrl = flags.env ? undefined : env[ENV.authxUrl] || file.authxUrl;
  return {
    key: expandHome(flags.key ?? (env[ENV.key] || file.key || '~/.ssh/cscs-key-sa')),
    env: cscsEnv,
    authxUrl: authxUrl ? checkUrl(authxUrl, env[ENV.authxUrl] ? ENV.authxUrl : `config file ${configFile}`) : AUTHX_URLS[cscsEnv],
    refreshMargin: envSeconds(env, 'refreshMargin') ?? file.refreshMargin ?? 20,
    timeout: envSeconds(env, 'timeout') ?? file.timeout ?? 10,
    connectTimeout: envSeconds(env, 'connectTimeout') ?? file.connectTimeout ?? 5,
    apiKeyFile: file.apiKeyFile && expandHome(file.apiKeyFile),
    apiKeyCommand: file.apiKeyCommand,
    agent: file.agent ?? false,
    configFile,
  };
}
