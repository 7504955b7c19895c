/**
 * An account: one CSCS service account and everything named after it (host prefix, key pair,
 * API key variable, ssh_config file). The one home of those names; on the hot path, so it
 * imports only a constant.
 *
 * The default account `sa` is what cscs-sa did before accounts existed: hosts `sa-*`, key
 * `~/.ssh/cscs-key-sa`, API key in `CSCS_API_KEY`, the config file's top-level settings.
 */
import { API_KEY_VARIABLE_PREFIX } from '../base/child.js';

export const DEFAULT_ACCOUNT = 'sa';

/**
 * Account names end up in host names (`NAME-clariden`, matched by ssh's `NAME-*` pattern), file
 * names and environment variable names. Lower-case letters and digits only: no `-`, or account
 * `a-b`'s hosts would also match account `a`'s pattern `a-*`; no upper case, since ssh matches
 * host patterns case-insensitively and the API key variable is the name in upper case; at most
 * 16 characters, enough for a project's short name.
 */
export const ACCOUNT_NAME = /^[a-z][a-z0-9]{0,15}$/;
export const ACCOUNT_NAME_RULE = 'a lower-case letter, then up to 15 lower-case letters or digits';

export function isAccountName(name: string): boolean {
  return ACCOUNT_NAME.test(name);
}

/** `sa` for the default account: hosts are `PREFIX-NAME`, matched by `PREFIX-*`. */
export function hostPrefix(account: string): string {
  return `${account}-`;
}

/** The key pair's default path, before `~` is expanded. */
export function defaultKey(account: string): string {
  return `~/.ssh/${KEY_FILE_PREFIX}${account}`;
}

/** Key files are `cscs-key-NAME`: how status finds accounts used without any config. */
export const KEY_FILE_PREFIX = 'cscs-key-';

/** The environment variable with the account's API key: CSCS_API_KEY for the default, else CSCS_API_KEY_NAME. */
export function apiKeyVariable(account: string): string {
  return account === DEFAULT_ACCOUNT ? API_KEY_VARIABLE_PREFIX : `${API_KEY_VARIABLE_PREFIX}_${account.toUpperCase()}`;
}

/** The account whose API key variable `variable` is (`CSCS_API_KEY_NAME`), or undefined; not the default account's. */
export function accountOfApiKeyVariable(variable: string): string | undefined {
  if (!variable.startsWith(`${API_KEY_VARIABLE_PREFIX}_`)) return undefined;
  const name = variable.slice(API_KEY_VARIABLE_PREFIX.length + 1).toLowerCase();
  return isAccountName(name) && apiKeyVariable(name) === variable && name !== DEFAULT_ACCOUNT ? name : undefined;
}

/** The ssh_config file setup writes for the account, beside the user's ssh config. */
export function confFile(account: string): string {
  return account === DEFAULT_ACCOUNT ? 'cscs-sa.conf' : `cscs-sa-${account}.conf`;
}

/** The account a file name from `confFile` belongs to, or undefined for any other file. */
export function accountOfConfFile(file: string): string | undefined {
  if (file === confFile(DEFAULT_ACCOUNT)) return DEFAULT_ACCOUNT;
  const m = /^cscs-sa-([a-z][a-z0-9]*)\.conf$/.exec(file);
  return m && isAccountName(m[1]!) && m[1] !== DEFAULT_ACCOUNT ? m[1] : undefined;
}

/** The lines around the Include block setup keeps in the user's ssh config. */
export const BEGIN = '# BEGIN cscs-sa (managed by `cscs-sa setup`; edits between these lines are replaced)';
export const END = '# END cscs-sa';
