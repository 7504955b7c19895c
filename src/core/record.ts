/**
 * Writing settings into the user's config file, for setup (--key, --env, --api-key-file). Apart
 * from config.ts, which the hot path loads: nothing here is needed to read settings.
 */
import { statSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { DEFAULT_ACCOUNT } from './account.js';
import { type AccountFileConfig, checkFileConfig, configDir, type FileConfig, findConfigFile, openTrustedConfig, parseFailure } from './config.js';
import { ConfigError, describeFsError } from '../base/errors.js';
import { makeFolders, writeFileAtomic } from '../base/fsutil.js';

/** The config file setup records settings in: the one in use, else a new config.json in the config folder. */
export function writableConfigFile(env: NodeJS.ProcessEnv = process.env): string {
  return findConfigFile(env) ?? join(configDir(env), 'config.json');
}

/**
 * Records settings of ACCOUNT in the user's JSON config file (created 0600 in a 0700 folder when
 * there is none), so that what setup was given (--key, --env, --api-key-file) is read by every
 * command from the one place settings live. A YAML or JS file is the user's to write: refused,
 * with the line to add. A value null takes the setting out. Returns the file, and whether it changed.
 */
export function recordSettings(account: string, values: { [K in keyof AccountFileConfig]: AccountFileConfig[K] | null }, env: NodeJS.ProcessEnv = process.env): { path: string; changed: boolean } {
  const found = findConfigFile(env);
  const path = writableConfigFile(env);
  const where = account === DEFAULT_ACCOUNT ? '' : `under "accounts": {"${account}": ...} `;
  if (extname(path) !== '.json') {
    throw new ConfigError(`config file ${path} is not JSON, so setup cannot record ${Object.keys(values).join(', ')} in it`, { fix: `add ${JSON.stringify(values)} ${where}to it yourself, then run setup again` });
  }
  let config: FileConfig = {};
  let mode = 0o600;
  if (found) {
    const { content } = openTrustedConfig(path);
    try {
      config = checkFileConfig(JSON.parse(content), path);
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(`cannot read config file ${path}: ${parseFailure('json', content, err as Error)}`, { fix: 'correct it, then run setup again', cause: err });
    }
    mode = statSync(path).mode & 0o777;
  }
  const own: AccountFileConfig = account === DEFAULT_ACCOUNT ? config : ((config.accounts ??= {})[account] ??= {});
  let changed = false;
  for (const [name, value] of Object.entries(values) as [keyof AccountFileConfig, string | null][]) {
    if (value === undefined || own[name] === value || (value === null && !(name in own))) continue;
    if (value === null) delete own[name];
    else (own as Record<string, unknown>)[name] = value;
    changed = true;
  }
  if (changed) {
    try {
      makeFolders(dirname(path), 0o700);
      writeFileAtomic(path, `${JSON.stringify(config, null, 2)}\n`, mode);
    } catch (err) {
      throw new ConfigError(describeFsError(err, 'write config file', path), { cause: err });
    }
  }
  return { path, changed };
}
