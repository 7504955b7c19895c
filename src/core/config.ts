/**
 * Settings: flag > environment > config file > default; global ones (timeouts, margin) and those
 * of one account (src/core/account.ts: key pair, gateway, login name, API key source).
 *
 * The config file is searched only in the user's config folder. Listing that folder is one
 * syscall; a JSON file is parsed here, and cosmiconfig's YAML loader (src/core/configcode.ts for a
 * .js file) is imported only for the other formats, because `match` and `proxy` run for every
 * ssh invocation.
 */
import { readdirSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { extname, isAbsolute, join, resolve } from 'node:path';
import { accountOfApiKeyVariable, apiKeyVariable, DEFAULT_ACCOUNT, defaultKey, isAccountName, ACCOUNT_NAME_RULE } from './account.js';
import { pairIdentity } from './store.js';
import { ConfigError, UsageError } from '../base/errors.js';
import { type FileRules, readTrusted } from '../base/trust.js';

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
  /** The login name: what setup writes as User, and what a certificate must name to be used. */
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
  user: 'CSCS_SA_USERNAME',
} as const;

export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  return join(xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.config'), NAME);
}

/**
 * `~` and `~/...` under the home folder; `~NAME/...` only for our own login name: Node cannot ask
 * the password database about another user, and taken literally it would make a folder named
 * `~NAME` wherever cscs-sa runs. Anything else relative to the current folder (for flags typed
 * at a shell). `from` names where the path came from, for the error.
 */
export function expandHome(path: string, from = path): string {
  const tilde = /^~([^/]*)(\/.*)?$/.exec(path);
  if (!tilde) return resolve(path);
  const [, name, rest] = tilde;
  if (name !== '' && name !== userInfo().username) {
    throw new ConfigError(`${from} names the home folder of user ${name}, which cscs-sa does not look up`, { fix: 'write the absolute path (~/ is your own home folder)' });
  }
  const home = name === '' ? homedir() : userInfo().homedir;
  return rest ? join(home, rest) : home;
}

/**
 * A path from a setting (`from` names it, e.g. `CSCS_SA_KEY=keys/sa`): absolute, or under ~/.
 * ssh runs match in whatever folder the user is in, so a relative path would name another file in
 * each (a key pair created in a repository checkout while ssh offers another).
 */
export function settingPath(path: string, from: string): string {
  if (!isAbsolute(path) && !path.startsWith('~')) {
    throw new ConfigError(`${from} is a relative path, which would name another file in each folder ssh runs in`, { fix: 'make it absolute (or start it with ~/)' });
  }
  return expandHome(path, from);
}

/** The config file to load, without loading anything: CSCS_SA_CONFIG, else the first search place present. */
export function findConfigFile(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const explicit = env[ENV.configFile];
  if (explicit) return settingPath(explicit, `${ENV.configFile}=${explicit}`);
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


/** What a config file may hold: settings are a few hundred bytes; the fast path reads it for every ssh. */
const MAX_CONFIG_BYTES = 256 * 1024;

/**
 * A config file names commands to run (apiKeyCommand), and a .js one is code: whoever can write
 * it, or any folder or symbolic link on its path, runs code as us with our API key in the
 * environment. So it is trusted as OpenSSH's StrictModes trusts a file (safe_path()), on the path
 * as given: see src/base/trust.ts.
 */
const CONFIG_RULES: FileRules = {
  what: 'config file',
  error: ConfigError,
  maxBytes: MAX_CONFIG_BYTES,
  consequence: ', so nothing in it is used',
  typeFix: 'point CSCS_SA_CONFIG at a file, or remove what is there',
  walk: true,
};

/**
 * Opens the config file once, judges the open file and the path to it, and returns the text read
 * from that same descriptor: what was checked is what is parsed or run, whatever its format.
 */
export function openTrustedConfig(path: string): { content: string } {
  const read = readTrusted(path, CONFIG_RULES);
  if (!read) throw new ConfigError(`cannot read config file ${path}: no such file or directory`);
  return { content: read.text.replace(/^\uFEFF/, '') };
}

/** Formats that are data; the others (.js, .cjs, .mjs) are code. */
const DATA_FORMATS: Record<string, 'json' | 'yaml'> = { '.json': 'json', '.yaml': 'yaml', '.yml': 'yaml', '': 'yaml' };

/** A parser's reason only when it is its own words: a quoted token or snippet would be the file's text (a secret, maybe). */
function ownWords(reason: unknown): string | undefined {
  return typeof reason === 'string' && /^[A-Za-z ,-]+$/.test(reason) ? reason : undefined;
}

/**
 * Why a config file did not parse, in one line, with no text of the file: V8's JSON messages
 * quote it ("Unexpected token 'x', "TEXT" is not valid JSON"), js-yaml's show a snippet.
 */
export function parseFailure(format: 'json' | 'yaml' | 'code', text: string, err: Error): string {
  if (format === 'yaml') {
    const { reason, mark } = err as Error & { reason?: unknown; mark?: { line: number; column: number } };
    const at = mark ? ` (${mark.line + 1}:${mark.column + 1})` : '';
    return `${ownWords(reason) ?? 'invalid YAML'}${at}`;
  }
  if (format === 'code') {
    // An ES module config runs from a data: URL (src/core/configcode.ts), which has no folder to resolve against.
    if ((err as NodeJS.ErrnoException).code === 'ERR_UNSUPPORTED_RESOLVE_REQUEST') return 'it imports a file by a relative path, which an ES module config file cannot: keep the settings in the file itself, or use node: modules only';
    return `${err.name} in its code`;
  }
  // V8 says "REASON at position N" (Node 22 adds "(line L column C)"), "Unexpected token 'x',
  // "TEXT" is not valid JSON", or "Unexpected end of JSON input".
  const at = /^(.*?) at position (\d+)/.exec(err.message);
  if (!at) return `invalid JSON: ${ownWords(err.message) ?? 'a character that cannot start a JSON value'}`;
  const before = text.slice(0, Number(at[2]));
  const line = before.split('\n').length;
  const column = before.length - before.lastIndexOf('\n');
  const reason = at[1]!.replace(/ in JSON$/, '');
  return `invalid JSON at line ${line}, column ${column}${ownWords(reason) ? `: ${reason}` : ''}`;
}

async function loadConfigFile(path: string): Promise<FileConfig> {
  const { content } = openTrustedConfig(path);
  const format = Object.hasOwn(DATA_FORMATS, extname(path)) ? DATA_FORMATS[extname(path)]! : 'code';
  let config: unknown;
  try {
    if (format === 'json') config = JSON.parse(content);
    else if (format === 'yaml') config = (await import('cosmiconfig')).defaultLoaders['.yaml'](path, content);
    else config = await (await import('./configcode.js')).runConfigCode(path, content);
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${parseFailure(format, content, err as Error)}`, { fix: 'correct or remove the file', cause: err });
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

/**
 * The one check of a CSCS environment's name, for --env on every command (flag: a usage error,
 * exit 2), CSCS_SA_ENV and "env" in the config file (a configuration error, exit 3). Names are
 * exact and lower case, as setup writes them on the Match line: "PROD" is refused with the name
 * meant rather than accepted, so that one environment has one spelling everywhere.
 */
export function checkEnvironment(value: string, from: string, source: 'flag' | 'setting' = 'setting'): Environment {
  if (Object.hasOwn(AUTHX_URLS, value)) return value as Environment;
  const names = Object.keys(AUTHX_URLS);
  const meant = names.find((name) => name === value.trim().toLowerCase());
  const Err = source === 'flag' ? UsageError : ConfigError;
  throw new Err(`${from}: "${value}" is not a CSCS environment`, { fix: meant ? `did you mean "${meant}"?` : `use ${names.join(' or ')}` });
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
function accountKey(account: string, env: NodeJS.ProcessEnv, file: FileConfig, configFile?: string): string {
  const variable = account === DEFAULT_ACCOUNT ? env[ENV.key] : undefined;
  if (variable) return settingPath(variable, `${ENV.key}=${variable}`);
  const own = ownSettings(account, file).key;
  if (own) return settingPath(own, `config file ${configFile}${account === DEFAULT_ACCOUNT ? '' : ` (accounts.${account})`}: "key" ${own}`);
  return expandHome(defaultKey(account));
}

/**
 * The accounts whose key pair an account must not use: the default one, those of the config file,
 * and those in use without one (their API key variable is set: a CI job with CSCS_API_KEY_NAME).
 */
function otherAccounts(account: string, env: NodeJS.ProcessEnv, file: FileConfig): string[] {
  const inUse = Object.keys(env).flatMap((variable) => (env[variable] ? (accountOfApiKeyVariable(variable) ?? []) : []));
  return [...new Set([DEFAULT_ACCOUNT, ...configuredAccounts(file), ...inUse])].filter((other) => other !== account);
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
  const cscsEnv = flags.env !== undefined
    ? checkEnvironment(flags.env, '--env', 'flag')
    : env[ENV.env]
      ? checkEnvironment(env[ENV.env]!, ENV.env)
      : own.env
        ? checkEnvironment(own.env, from)
        : 'prod';
  // An explicit --env picks its gateway; otherwise an explicit URL (a proxy, a double) wins.
  const authxUrl = flags.env !== undefined ? undefined : env[ENV.authxUrl] || own.authxUrl;
  const key = flags.key ? settingPath(flags.key, `-f ${flags.key}`) : accountKey(account, env, file, configFile);
  // An API key signs only its own account's key pair: another account's certificate would be
  // overwritten with this account's login name. Compared by the files themselves, so no
  // spelling of a path (a symlinked folder, a key named `OTHER-cert`) hides a shared one.
  const others = otherAccounts(account, env, file);
  const files = others.length > 0 ? pairIdentity(key) : [];
  const owner = others.find((other) => pairIdentity(accountKey(other, env, file, configFile)).some((id) => files.includes(id)));
  if (owner) throw new ConfigError(`account ${account} would use ${key}, the key pair of account ${owner}`, { fix: 'give each account a key pair of its own ("key" in the config file, --key)' });
  return {
    account,
    key,
    env: cscsEnv,
    authxUrl: authxUrl ? checkUrl(authxUrl, env[ENV.authxUrl] ? ENV.authxUrl : from) : AUTHX_URLS[cscsEnv],
    // The login name setup writes, also the one certificates must name (CSCS_SA_USERNAME: the default account's).
    user: (isDefault && env[ENV.user]) || own.user,
    apiKeyVariable: apiKeyVariable(account),
    apiKeyFile: own.apiKeyFile && settingPath(own.apiKeyFile, `${from}: "apiKeyFile" ${own.apiKeyFile}`),
    apiKeyCommand: own.apiKeyCommand,
    refreshMargin: envSeconds(env, 'refreshMargin') ?? file.refreshMargin ?? 20,
    timeout: envSeconds(env, 'timeout') ?? file.timeout ?? 10,
    connectTimeout: envSeconds(env, 'connectTimeout') ?? file.connectTimeout ?? 5,
    agent: file.agent ?? false,
    configFile,
  };
}
