/**
 * Settings: flag > environment > config file > default; global ones (timeouts, margin) and those
 * of one account (src/core/account.ts: key pair, gateway, login name, API key source).
 *
 * The config file is searched only in the user's config folder. Listing that folder is one
 * syscall; a JSON file is parsed here, and cosmiconfig (its YAML and JS loaders) is imported
 * only for the other formats, because `match` and `proxy` run for every ssh invocation.
 */
import { closeSync, constants, fstatSync, openSync, readdirSync, readFileSync, realpathSync, type Stats, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { apiKeyVariable, DEFAULT_ACCOUNT, defaultKey, isAccountName, ACCOUNT_NAME_RULE } from './account.js';
import { ConfigError, describeFsError, UsageError } from '../base/errors.js';

/** The CSCS gateways: production, and the test and development system (TDS). */
export const AUTHX_URLS = { prod: 'https://authx-gateway.svc.cscs.ch', tds: 'https://authx-gateway.tds.cscs.ch' } as const;
export type Environment = keyof typeof AUTHX_URLS;

/** Settings shared by every account: how long to wait, when to refresh. */
export interface GlobalSettings {
  /** Refresh when fewer than this many seconds of validity are left. */
  refreshMargin: number;
  /** Total deadline in seconds for one refresh (both gateway calls, retries included). */
  timeout: number;
  /** Connect timeout in seconds, for the gateway and for `proxy`. */
  connectTimeout: number;
  /** proxy loads certificates into ssh-agent (as with --agent). */
  agent: boolean;
  /** The config file the settings came from, if any. */
  configFile?: string;
}

/** What belongs to one service account: its key pair, gateway, login name and API key source. */
export interface AccountSettings {
  /** The account's name (src/core/account.ts): `sa` is the default account. */
  account: string;
  /** Private key path; the certificate is `${key}-cert.pub`. */
  key: string;
  /** Which CSCS gateway authxUrl defaults to. */
  env: Environment;
  authxUrl: string;
  /** The login name, for setup (else the certificate's principal). */
  user?: string;
  /** The environment variable holding this account's API key (never another account's). */
  apiKeyVariable: string;
  apiKeyFile?: string;
  /** A command that prints the API key, run without a shell: a string or an argv array. */
  apiKeyCommand?: string | string[];
}

/** One account's settings with the global ones: what a command for that account needs. */
export interface Settings extends GlobalSettings, AccountSettings {}

export type SettingsFlags = { key?: string; env?: string; account?: string };

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
  if (explicit) {
    // ssh runs match in whatever folder the user is in: a relative path would name another file there.
    if (!isAbsolute(explicit) && explicit !== '~' && !explicit.startsWith('~/')) {
      throw new ConfigError(`${ENV.configFile}=${explicit} is a relative path`, { fix: 'set it to an absolute path (or one under ~/)' });
    }
    return expandHome(explicit);
  }
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

type AccountKeys = 'key' | 'env' | 'authxUrl' | 'user' | 'apiKeyFile' | 'apiKeyCommand';
/** An account's own settings in the config file, under `accounts.NAME`. */
export type AccountFileConfig = Partial<Pick<AccountSettings, AccountKeys>>;
/** The config file: the global settings, the default account's at the top level, the others under `accounts`. */
export type FileConfig = Partial<Omit<GlobalSettings, 'configFile'>> & AccountFileConfig & { accounts?: Record<string, AccountFileConfig> };

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

const ACCOUNT_KEYS: Record<AccountKeys, Kind> = {
  key: 'string',
  env: 'string',
  authxUrl: 'string',
  user: 'string',
  apiKeyFile: 'string',
  apiKeyCommand: 'command',
};

const FILE_KEYS: Record<Exclude<keyof FileConfig, 'accounts'>, Kind> = {
  ...ACCOUNT_KEYS,
  refreshMargin: 'refreshMargin',
  timeout: 'timeout',
  connectTimeout: 'connectTimeout',
  agent: 'boolean',
};

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Refuses unknown keys (own keys only: `__proto__` is unknown, not Object.prototype) and wrong types. */
function checkKeys(object: Record<string, unknown>, keys: Record<string, Kind>, where: string): void {
  for (const [name, value] of Object.entries(object)) {
    const kind = Object.hasOwn(keys, name) ? keys[name] : undefined;
    if (!kind) throw new ConfigError(`${where}: unknown setting "${name}"`, { fix: `remove it or use one of ${Object.keys(keys).join(', ')}` });
    if (!KINDS[kind].valid(value)) throw new ConfigError(`${where}: "${name}" is not ${KINDS[kind].want}`, { fix: `set "${name}" to ${KINDS[kind].want}` });
  }
}

/** Checks a parsed config file; synchronous, so the hot path can use it on a JSON file it read itself. */
export function checkFileConfig(config: unknown, path: string): FileConfig {
  if (!isObject(config)) throw new ConfigError(`config file ${path} does not hold an object with settings`, { fix: 'write its settings as one object, e.g. {"key": "~/.ssh/cscs-key-sa"}' });
  const { accounts, ...rest } = config;
  checkKeys(rest, FILE_KEYS, `config file ${path}`);
  if (accounts !== undefined) {
    if (!isObject(accounts)) throw new ConfigError(`config file ${path}: "accounts" does not map account names to their settings`, { fix: 'write it as {"accounts": {"NAME": {...}}}' });
    for (const [name, settings] of Object.entries(accounts)) {
      if (!isAccountName(name)) throw new ConfigError(`config file ${path}: "${name}" is not an account name`, { fix: `use ${ACCOUNT_NAME_RULE}` });
      if (name === DEFAULT_ACCOUNT) throw new ConfigError(`config file ${path}: accounts.${name}: the default account's settings are the top-level ones`, { fix: 'move them there' });
      if (!isObject(settings)) throw new ConfigError(`config file ${path}: accounts.${name} does not hold an object with settings`, { fix: `write it as {"accounts": {"${name}": {...}}}` });
      checkKeys(settings, ACCOUNT_KEYS, `config file ${path}: accounts.${name}`);
    }
  }
  return config as FileConfig;
}


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

/** Whether a file or folder's owner is one OpenSSH trusts for our files: us, or root. */
export function trustedOwner(stats: Pick<Stats, 'uid'>): boolean {
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
  if (!stats.isFile()) throw new ConfigError(`config file ${path} is not a regular file`, { fix: 'point CSCS_SA_CONFIG at a file, or remove what is there' });
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
 * Opens the config file once and judges the open file: a data file (JSON, YAML) comes back as the
 * text read from that same descriptor, so what was checked is what is parsed (the fast path of
 * match parses a JSON one itself); a code file is imported by path after the checks (no loader
 * takes a descriptor), so its folders must be ours too.
 */
export function openTrustedConfig(path: string): { content?: string } {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO at the path is refused (not a regular file) instead of blocking us.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw new ConfigError(describeFsError(err, 'read config file', path), { cause: err });
  }
  try {
    checkTrustedFile(path, fstatSync(fd));
    return Object.hasOwn(DATA_FORMATS, extname(path)) ? { content: readFileSync(fd, 'utf8') } : {};
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(describeFsError(err, 'read config file', path), { cause: err });
  } finally {
    closeSync(fd);
  }
}

/** A JSON config file's text as settings: parsed here, by the hot path too, without cosmiconfig (a byte order mark is ignored). */
export function parseJsonConfig(text: string): unknown {
  return JSON.parse(text.replace(/^\uFEFF/, ''));
}

async function loadConfigFile(path: string): Promise<FileConfig> {
  const { content } = openTrustedConfig(path);
  let config: unknown;
  try {
    if (content !== undefined && DATA_FORMATS[extname(path)] === 'json') {
      config = parseJsonConfig(content);
    } else {
      // YAML and code need cosmiconfig's loaders: imported only for them.
      const { cosmiconfig, defaultLoaders } = await import('cosmiconfig');
      config = content === undefined ? (await cosmiconfig(NAME, { searchPlaces: SEARCH_PLACES, searchStrategy: 'none', cache: false }).load(path))?.config : defaultLoaders.noExt(path, content);
    }
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${loadFailure(path, err as Error)}`, { fix: 'correct or remove the file', cause: err });
  }
  return checkFileConfig(config ?? {}, path);
}

/** The config file and what it holds ({} without one). */
export async function loadConfig(env: NodeJS.ProcessEnv = process.env): Promise<{ file: FileConfig; configFile?: string }> {
  const configFile = findConfigFile(env);
  return { file: configFile ? await loadConfigFile(configFile) : {}, configFile };
}

/** The accounts the config file names (the default account not among them). */
export function configuredAccounts(file: FileConfig): string[] {
  return Object.keys(file.accounts ?? {});
}

/** RAW as a number of seconds within the limits of `setting`, or undefined when it is none. */
function parseSeconds(raw: string, setting: Duration): number | undefined {
  const value = raw.trim() === '' ? NaN : Number(raw);
  return validSeconds(value, setting) ? value : undefined;
}

/** A duration from its environment variable (empty is unset), checked against its setting's limits. */
function envSeconds(env: NodeJS.ProcessEnv, setting: Duration): number | undefined {
  const [from, raw] = [ENV[setting], env[ENV[setting]]];
  if (raw === undefined || raw === '') return undefined;
  const value = parseSeconds(raw, setting);
  if (value === undefined) throw new ConfigError(`${from}=${raw} is not ${wantSeconds(setting)}`, { fix: `set ${from} to ${wantSeconds(setting)}, or unset it` });
  return value;
}

/** A duration from a command's flag, with the limits of the setting it overrides: a wrong one is a usage error. */
export function flagSeconds(raw: string | undefined, setting: Duration, flag: string): number | undefined {
  if (raw === undefined) return undefined;
  const value = parseSeconds(raw, setting);
  if (value === undefined) throw new UsageError(`${flag} takes ${wantSeconds(setting)}, not "${raw}"`);
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
  const { file, configFile } = await loadConfig(env);
  return settingsFrom(flags, env, file, configFile);
}

function checkEnvironment(value: string, from: string): Environment {
  if (!Object.hasOwn(AUTHX_URLS, value)) throw new ConfigError(`${from}: "${value}" is not a CSCS environment`, { fix: `use ${Object.keys(AUTHX_URLS).join(' or ')}` });
  return value as Environment;
}

/** The account a --account flag names: the default without one. */
export function accountName(flag: string | undefined): string {
  if (flag === undefined) return DEFAULT_ACCOUNT;
  if (!isAccountName(flag)) throw new UsageError(`--account: "${flag}" is not an account name (${ACCOUNT_NAME_RULE})`);
  return flag;
}

function ownSettings(account: string, file: FileConfig): AccountFileConfig {
  if (account === DEFAULT_ACCOUNT) return file;
  return file.accounts && Object.hasOwn(file.accounts, account) ? file.accounts[account]! : {};
}

/** An account's key pair without a --key flag: CSCS_SA_KEY (the default account's), its "key" setting, else its default. */
function accountKey(account: string, env: NodeJS.ProcessEnv, file: FileConfig): string {
  return expandHome((account === DEFAULT_ACCOUNT && env[ENV.key]) || ownSettings(account, file).key || defaultKey(account));
}

/**
 * Merges flags, environment and a loaded config file over the defaults; synchronous, for the hot
 * path. The default account reads the top-level settings and CSCS_SA_KEY; another account only
 * its own `accounts.NAME` and key path, so that nothing of one account's identity (key pair, API
 * key source) ever applies to another. The gateway variables (CSCS_SA_ENV, CSCS_AUTHX_URL)
 * name no identity and apply to every account.
 */
export function settingsFrom(flags: SettingsFlags, env: NodeJS.ProcessEnv, file: FileConfig, configFile?: string): Settings {
  const account = accountName(flags.account);
  const isDefault = account === DEFAULT_ACCOUNT;
  const own = ownSettings(account, file);
  const from = `config file ${configFile}${isDefault ? '' : ` (accounts.${account})`}`;
  const cscsEnv = flags.env
    ? checkEnvironment(flags.env, '--env')
    : env[ENV.env]
      ? checkEnvironment(env[ENV.env]!, ENV.env)
      : own.env
        ? checkEnvironment(own.env, from)
        : 'prod';
  // An explicit --env picks its gateway; otherwise an explicit URL (a proxy, a double) wins.
  const authxUrl = flags.env ? undefined : env[ENV.authxUrl] || own.authxUrl;
  const key = flags.key ? expandHome(flags.key) : accountKey(account, env, file);
  // An API key signs only its own account's key pair: another account's certificate would be
  // overwritten with this account's login name.
  const owner = [DEFAULT_ACCOUNT, ...configuredAccounts(file)].find((other) => other !== account && accountKey(other, env, file) === key);
  if (owner) throw new ConfigError(`account ${account} would use ${key}, the key pair of account ${owner}`, { fix: 'give each account a key pair of its own ("key" in the config file, --key)' });
  return {
    account,
    key,
    env: cscsEnv,
    authxUrl: authxUrl ? checkUrl(authxUrl, env[ENV.authxUrl] ? ENV.authxUrl : from) : AUTHX_URLS[cscsEnv],
    user: own.user,
    apiKeyVariable: apiKeyVariable(account),
    apiKeyFile: own.apiKeyFile && expandHome(own.apiKeyFile),
    apiKeyCommand: own.apiKeyCommand,
    refreshMargin: envSeconds(env, 'refreshMargin') ?? file.refreshMargin ?? 20,
    timeout: envSeconds(env, 'timeout') ?? file.timeout ?? 10,
    connectTimeout: envSeconds(env, 'connectTimeout') ?? file.connectTimeout ?? 5,
    agent: file.agent ?? false,
    configFile,
  };
}
