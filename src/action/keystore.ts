/**
 * Where the action keeps the API key for the job's later steps: a 0600 file in a 0700 folder of
 * the runner's temporary folder (RUNNER_TEMP, emptied by the runner at the start and end of every
 * job, outside the checkout that a step might upload), named as `apiKeyFile` in a cscs-sa config
 * file of its own that CSCS_SA_CONFIG points at. ssh's Match exec then runs cscs-sa, which reads
 * the key from the file: no later step has the key in its environment, and none needs it.
 *
 * One config file serves every account the job sets up (the action used once per account): each
 * use adds its account's entry, and its post step takes the entry out again.
 */
import { chmodSync, lstatSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_ACCOUNT } from '../core/account.js';
import type { FileConfig } from '../core/config.js';
import { describeFsError, LocalFileError } from '../base/errors.js';
import { makeFolders, writeFileAtomic } from '../base/fsutil.js';
import { shellWord } from '../ssh/lex.js';

export interface KeyStore {
  /** The action's folder in RUNNER_TEMP. */
  dir: string;
  /** The cscs-sa config file, for CSCS_SA_CONFIG. */
  configFile: string;
  /** The account's API key file. */
  apiKeyFile: string;
  /** The folder with the `cscs-sa` command, for PATH. */
  bin: string;
}

export function keyStore(runnerTemp: string, account: string): KeyStore {
  const dir = join(runnerTemp, 'cscs-sa');
  return { dir, configFile: join(dir, 'config.json'), apiKeyFile: join(dir, `api-key-${account}`), bin: join(dir, 'bin') };
}

/**
 * `cscs-sa` in the bin folder: a shell script that runs `script` with the `node` running now, so
 * that later steps have the command even where no node is on PATH (a self-hosted runner, whose
 * node is the runner's own).
 */
export function installCommand(store: KeyStore, node: string, script: string): void {
  const text = `#!/bin/sh\nexec ${shellWord('node', node)} ${shellWord('cscs-sa', script)} "$@"\n`;
  try {
    makeFolders(store.bin, 0o700);
    writeFileAtomic(join(store.bin, 'cscs-sa'), text, 0o755);
  } catch (err) {
    throw new LocalFileError(describeFsError(err, 'write', join(store.bin, 'cscs-sa')), { cause: err });
  }
}

function readConfig(path: string): FileConfig {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as FileConfig;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new LocalFileError(describeFsError(err, 'read', path));
  }
}

function writeConfig(path: string, config: FileConfig): void {
  writeFileAtomic(path, `${JSON.stringify(config, null, 2)}\n`, 0o600);
}

/** The config with the account's apiKeyFile set to `file`, or taken out (undefined). */
function withApiKeyFile(config: FileConfig, account: string, file: string | undefined): FileConfig {
  if (account === DEFAULT_ACCOUNT) {
    const { apiKeyFile: _, ...rest } = config;
    return file === undefined ? rest : { ...rest, apiKeyFile: file };
  }
  const { [account]: _, ...others } = config.accounts ?? {};
  const accounts = file === undefined ? others : { ...others, [account]: { apiKeyFile: file } };
  const { accounts: __, ...rest } = config;
  return Object.keys(accounts).length > 0 ? { ...rest, accounts } : rest;
}

/** Writes the API key file (0600) and names it in the config file for `account`. */
export function storeApiKey(store: KeyStore, account: string, apiKey: string): void {
  try {
    makeFolders(store.dir, 0o700);
    // A folder left by an earlier job on a self-hosted runner: ours or refused, and private.
    const folder = lstatSync(store.dir);
    if (!folder.isDirectory() || folder.uid !== process.getuid?.()) throw new LocalFileError(`${store.dir} is not a folder of ours`, { fix: 'remove it' });
    chmodSync(store.dir, 0o700);
    writeFileAtomic(store.apiKeyFile, `${apiKey}\n`, 0o600);
    writeConfig(store.configFile, withApiKeyFile(readConfig(store.configFile), account, store.apiKeyFile));
  } catch (err) {
    if (err instanceof LocalFileError) throw err;
    throw new LocalFileError(describeFsError(err, 'write the API key to', store.dir), { cause: err });
  }
}

/**
 * Deletes the account's API key file and its entry; the config file and the folder go with the
 * last account, and with them the `cscs-sa` command. Returns what it removed.
 */
export function forgetApiKey(store: KeyStore, account: string): string[] {
  const removed: string[] = [];
  try {
    if (lstatSync(store.apiKeyFile, { throwIfNoEntry: false })) {
      rmSync(store.apiKeyFile);
      removed.push(store.apiKeyFile);
    }
    const config = withApiKeyFile(readConfig(store.configFile), account, undefined);
    if (Object.keys(config).length > 0) {
      writeConfig(store.configFile, config);
      return removed;
    }
    for (const file of [store.configFile, join(store.bin, 'cscs-sa')]) {
      if (!lstatSync(file, { throwIfNoEntry: false })) continue;
      rmSync(file);
      removed.push(file);
    }
    for (const folder of [store.bin, store.dir]) {
      if (!lstatSync(folder, { throwIfNoEntry: false })) continue;
      rmdirSync(folder);
      removed.push(folder);
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // Another account's files, or the runner's own cleanup, may still hold the folder.
    if (code !== 'ENOTEMPTY' && code !== 'ENOENT') throw new LocalFileError(describeFsError(err, 'remove', store.dir), { cause: err });
  }
  return removed;
}
