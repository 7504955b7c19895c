/**
 * Settings: flag > environment > config file > default.
 *
 * The config file is searched only in the user's config folder. Listing that folder is one
 * syscall; cosmiconfig (and its YAML and JS loaders) is imported only when a file is there,
 * because `match` runs for every ssh invocation.
 */
import { closeSync, constants, fstatSync, openSync, readdirSync, readFileSync, realpathSync, type Stats, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { ConfigError, describeFsError } from './errors.js';

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

/** The kind of setting `name` is in `keys`: own names only, so `__proto__` or `constructor` is an unknown setting. */
function settingKind(keys: Record<string, Kind>, name: string): Kind | undefined {
  return Object.hasOwn(keys, name) ? keys[name] : undefined;
}

/** Checks the settings of one object (the file, or a part of it): known names, values of the right kind. */
function checkSettings(config: unknown, keys: Record<string, Kind>, where: string): void {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new ConfigError(`${where} must hold an object with settings`);
  }
  for (const [name, value] of Object.entries(config)) {
    const kind = settingKind(keys, name);
    if (!kind) throw new ConfigError(`${where}: unknown setting "${name}" (known: ${Object.keys(keys).join(', ')})`);
    if (!KINDS[kind].valid(value)) throw new ConfigError(`${where}: "${name}" must be ${KINDS[kind].want}`);
  }
}

/** Whether a file or folder's owner is one OpenSSH trusts for our files: us, or root. */
function trustedOwner(stats: Stats): boolean {
  const uid = process.getuid?.();
  return uid === undefined || stats.uid === uid || stats.uid === 0;
}

/** The home folder with symlinks resolved, as the folders above a file are; undefined if it does not exist (the walk then goes up to /). */
function resolvedHome(): string | undefined {
  try {
    return realpathSync(homedir());
  } catch {
    return undefined;
  }
}

/**
 * Refuses a config file that someone else wrote or could write, as OpenSSH's StrictModes does
 * (safe_path() in misc.c): the file itself (`stats` of the open file) and each folder above it,
 * up to the home folder (or /), must belong to us or root and be writable by no one else. The
 * settings name commands to run (apiKeyCommand) and a .js config is code: whoever can write them
 * runs code as us, with our API key in the environment.
 */
function checkTrustedFile(path: string, stats: Stats): void {
  const real = realpathSync(path);
  if (!stats.isFile()) throw new ConfigError(`config file ${path} is not a regular file`);
  if (!trustedOwner(stats)) {
    throw new ConfigError(`config file ${path} belongs to another user (uid ${stats.uid}), so nothing in it is used`, { fix: 'remove it, or replace it with a file of your own' });
  }
  if ((stats.mode & 0o022) !== 0) {
    throw new ConfigError(`config file ${path} is writable by others, so nothing in it is used`, { fix: `chmod go-w ${path}` });
  }
  const realHome = resolvedHome();
  for (let dir = dirname(real); ; dir = dirname(dir)) {
    const folder = statSync(dir);
    if (!trustedOwner(folder)) {
      throw new ConfigError(`config file ${path} is in folder ${dir}, which belongs to another user (uid ${folder.uid}), so nothing in it is used`, { fix: 'move the config file to a folder of your own' });
    }
    if ((folder.mode & 0o022) !== 0) {
      throw new ConfigError(`config file ${path} is in folder ${dir}, which others can write, so nothing in it is used`, { fix: `chmod go-w ${dir}, or move the config file to a folder only you can write` });
    }
    if (dir === realHome || dir === dirname(dir)) break;
  }
}

/** Data formats, parsed from the checked descriptor; anything else (code) is loaded by path. */
const DATA_FORMATS: Record<string, 'json' | 'yaml'> = { '.json': 'json', '.yaml': 'yaml', '.yml': 'yaml', '': 'yaml' };

/**
 * Opens the config file once and judges the open file. A data file (JSON, YAML) is read from that
 * same descriptor, so what was checked is what is parsed; a code file is imported by path after
 * the checks (no loader takes a descriptor), so its folders must be ours too.
 */
async function loadConfigFile(path: string): Promise<FileConfig> {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO at the path is refused (not a regular file) instead of blocking us.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw new ConfigError(describeFsError(err, 'read config file', path));
  }
  let content: string | undefined;
  try {
    checkTrustedFile(path, fstatSync(fd));
    if (Object.hasOwn(DATA_FORMATS, extname(path))) content = readFileSync(fd, 'utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(describeFsError(err, 'read config file', path));
  } finally {
    closeSync(fd);
  }
  const { cosmiconfig, defaultLoaders } = await import('cosmiconfig');
  let config: unknown;
  try {
    if (content === undefined) {
      config = (await cosmiconfig(NAME, { searchPlaces: SEARCH_PLACES, searchStrategy: 'none', cache: false }).load(path))?.config;
    } else {
      config = DATA_FORMATS[extname(path)] === 'json' ? defaultLoaders['.json'](path, content) : defaultLoaders.noExt(path, content);
    }
  } catch (err) {
    const reason = (err as Error).message.split('\n', 1)[0];
    throw new ConfigError(`cannot read config file ${path}: ${reason}`);
  }
  checkSettings(config ?? {}, FILE_KEYS, `config file ${path}`);
  return config as FileConfig;
}

function envSeconds(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new ConfigError(`${name}=${raw} is not a number of seconds`);
  return value;
}

/** Whether a URL's host name is this machine, where plain http:// (a test double) exposes nothing. */
function isLoopback(hostname: string): boolean {
  // URL has normalised the forms: 127.1 is 127.0.0.1, and an IPv6 host keeps its brackets.
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

function checkUrl(url: string, from: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`${from}: "${url}" is not a URL`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new ConfigError(`${from}: "${url}" must be an https:// URL`);
  if (parsed.protocol === 'http:' && !isLoopback(parsed.hostname)) {
    throw new ConfigError(`${from}: "${url}" would send the API key unencrypted`, { fix: 'use https:// (plain http:// is only for loopback addresses: 127.0.0.0/8, ::1, localhost)' });
  }
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
