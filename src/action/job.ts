/**
 * What the action's main and post steps share: the plan main saves before it changes anything
 * (post works from it alone, also after a cancelled main), and how both run cscs-sa itself.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { confFile } from '../core/account.js';
import { settingsFrom } from '../core/config.js';
import { keyPaths } from '../core/store.js';
import { childEnv } from '../base/child.js';
import { CscsSaError } from '../base/errors.js';
import { controlDir, sshConfigPath } from '../ssh/multiplex.js';
import { type KeyStore, keyStore } from './keystore.js';
import { isInputVariable } from './runner.js';

/** The GITHUB_STATE name of the plan. */
export const PLAN_STATE = 'plan';

export interface Plan {
  account: string;
  /** The ssh-config input ('' for ~/.ssh/config), passed on to setup, close and setup --remove. */
  sshConfigFlag: string;
  store: KeyStore;
  key: string;
  /** The account's file setup writes beside the ssh config. */
  conf: string;
  /** What did not exist before main: post removes what of it is left, files before their folders. */
  created: string[];
}

/** The folders and files setup, refreshes and burst mode may create, in the order they come into being. */
function candidates(key: string, sshConfig: string, conf: string): string[] {
  const paths = keyPaths(key);
  const sshDir = dirname(sshConfig);
  return [
    dirname(key),
    paths.key,
    paths.publicKey,
    paths.certificate,
    paths.lock,
    `${key}.failed`,
    sshDir,
    join(sshDir, 'cscs-sa.known_hosts'),
    controlDir(sshConfig),
    conf,
    sshConfig,
    `${sshConfig}.cscs-sa.bak`,
  ];
}

export function makePlan(account: string, sshConfigFlag: string, runnerTemp: string): Plan {
  // Checks the account name; the config file is the action's own, which sets no key path.
  const { key } = settingsFrom({ account }, process.env, {});
  const sshConfig = sshConfigPath(sshConfigFlag || undefined);
  const conf = join(dirname(sshConfig), confFile(account));
  const created = [...new Set(candidates(key, sshConfig, conf))].filter((path) => !existsSync(path));
  return { account, sshConfigFlag, store: keyStore(runnerTemp, account), key, conf, created };
}

/** The single-file build beside the running bundle (dist-action/cscs-sa.cjs). */
export function cscsSaScript(): string {
  return join(dirname(realpathSync(process.argv[1]!)), 'cscs-sa.cjs');
}

export interface CscsSaRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs cscs-sa with this node, without the inputs (the API key among them) or any API key
 * variable in its environment: it reads the key from the file the config names.
 */
export function cscsSa(plan: Plan, args: string[], stdin = ''): CscsSaRun {
  const env = Object.fromEntries(Object.entries(childEnv()).filter(([name]) => !isInputVariable(name)));
  const r = spawnSync(process.execPath, [cscsSaScript(), ...args], { env: { ...env, CSCS_SA_CONFIG: plan.store.configFile }, input: stdin, encoding: 'utf8' });
  if (r.error) throw new CscsSaError(`cannot run cscs-sa: ${r.error.message}`);
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

/** The ssh-config input as cscs-sa's flag. */
export const sshConfigArgs = (plan: Plan): string[] => (plan.sshConfigFlag ? ['--ssh-config', plan.sshConfigFlag] : []);

/** A failed cscs-sa run as an error: its own last line (what failed and the fix), without the prefix. */
export function failure(what: string, r: CscsSaRun): CscsSaError {
  const last = r.stderr.trim().split('\n').filter(Boolean).pop()?.replace(/^cscs-sa: /, '');
  return new CscsSaError(`${what}: ${last ?? `exit code ${r.code}`}`);
}
