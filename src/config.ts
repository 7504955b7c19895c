/**
 * Settings: flag > environment > config file > default.
 *
 * The config file is searched only in the user's config folder. Listing that folder is one
 * syscall; cosmiconfig (and its YAML and JS loaders) is imported only when a file is there,
 * because `match` runs for every ssh invocation.
 */
import { readdirSync, readFileSync } from 'node:fs';
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

type Kind = 'string' | 'number' | 'boolean' | 'command';

const KINDS: Record<Kind, { valid: (value: unknown) => boolean; want: string }> = {
  number: { valid: (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0, want: 'a number of seconds (>= 0)' },
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
  refreshMargin: 'number',
  timeout: 'number',
  connectTimeout: 'number',
  apiKeyFile: 'string',
  apiKeyCommand: 'command',
  agent: 'boolean',
};

/**
 * Why a config file did not load, in one line. cosmiconfig puts a header ("YAML Error in FILE:")
 * and a code frame of the file around the parser's reason; for JSON the reason also echoes the
 * file's text, which may name a secret command. So: YAML's reason (it has line:column), and
 * for JSON the reason and position from parsing it again, without the text.
 */
function loadFailure(path: string, err: Error): string {
  const reason = err.message.split('\n').find((line) => line.trim() !== '' && !/^\w+ Error in .*:\s*$/.test(line)) ?? err.message;
  if (!path.endsWith('.json')) return reason;
  let text;
  try {
    text = readFileSync(path, 'utf8').replace(/^\uFEFF/, '');
  } catch {
    return reason; // unreadable: cosmiconfig's reason says why
  }
  try {
    JSON.parse(text);
    return reason;
  } catch (parseErr) {
    // V8 says "REASON at position N" (Node 22 adds "(line L column C)"), "Unexpected token 'x',
    // "TEXT" is not valid JSON", or "Unexpected end of JSON input".
    const message = (parseErr as Error).message;
    const at = /^(.*?) at position (\d+)/.exec(message);
    if (!at) return `invalid JSON: ${message.replace(/, ".*" is not valid JSON$/s, '')}`;
    const before = text.slice(0, Number(at[2]));
    const line = before.split('\n').length;
    const column = before.length - before.lastIndexOf('\n');
    return `invalid JSON at line ${line}, column ${column}: ${at[1]!.replace(/ in JSON$/, '')}`;
  }
}

async function loadConfigFile(path: string): Promise<FileConfig> {
  const { cosmiconfig } = await import('cosmiconfig');
  let result;
  try {
    result = await cosmiconfig(NAME, { searchPlaces: SEARCH_PLACES, searchStrategy: 'none', cache: false }).load(path);
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${loadFailure(path, err as Error)}`, { cause: err });
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

function envSeconds(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new ConfigError(`${name}=${raw} is not a number of seconds`);
  return value;
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
    refreshMargin: envSeconds(env, ENV.refreshMargin) ?? file.refreshMargin ?? 20,
    timeout: envSeconds(env, ENV.timeout) ?? file.timeout ?? 10,
    connectTimeout: envSeconds(env, ENV.connectTimeout) ?? file.connectTimeout ?? 5,
    apiKeyFile: file.apiKeyFile && expandHome(file.apiKeyFile),
    apiKeyCommand: file.apiKeyCommand,
    agent: file.agent ?? false,
    configFile,
  };
}
