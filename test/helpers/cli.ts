import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, execaSync, type Options } from 'execa';
import { keyPaths } from '../../src/core/store.ts';

/** The built binary, as `npm install -g` installs it. */
export const BIN = fileURLToPath(new URL('../../bin/cscs-sa.cjs', import.meta.url));

export interface Home {
  dir: string;
  key: string;
  pub: string;
  cert: string;
  lock: string;
  remove(): void;
}

/** The files beside KEY under the names tests use, as the store names them (src/core/store.ts keyPaths). */
export function keyFiles(key: string): Pick<Home, 'key' | 'pub' | 'cert' | 'lock'> {
  const paths = keyPaths(key);
  return { key, pub: paths.publicKey, cert: paths.certificate, lock: paths.lock };
}

/** A temporary HOME with nothing in it, as on a fresh CI runner. */
export function tempHome(): Home {
  const dir = mkdtempSync(join(tmpdir(), 'cscs-sa-home-'));
  return { dir, ...keyFiles(join(dir, '.ssh', 'cscs-key-sa')), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Snapshot {
  /** Puts the copy back at the folder's path, in place of what is there now. */
  restore(): void;
  remove(): void;
}

/**
 * A byte-for-byte copy of `dir` (cp -a: modes, owners, symlinks) that restore() puts back at the
 * same path, which the files in it name (ssh configs, Include lines): a state made once, such as
 * a HOME after `setup`, that each test of a file starts from.
 */
export function snapshot(dir: string): Snapshot {
  const copy = join(mkdtempSync(join(tmpdir(), 'cscs-sa-snapshot-')), 'copy');
  execaSync('cp', ['-a', dir, copy]);
  return {
    restore: () => {
      rmSync(dir, { recursive: true, force: true });
      execaSync('cp', ['-a', copy, dir]);
    },
    remove: () => rmSync(dirname(copy), { recursive: true, force: true }),
  };
}

/** Writes the user's config file NAME (config.json, config.yaml, ...) in HOME's config folder, 0600, and returns its path. */
export function writeConfig(home: Pick<Home, 'dir'>, name: string, text: string): string {
  const dir = join(home.dir, '.config', 'cscs-sa');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, name), text, { mode: 0o600 });
  return join(dir, name);
}

/** Every regular file under `dir`, at any depth. */
export function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((name) => join(dir, name))
    .filter((path) => statSync(path, { throwIfNoEntry: false })?.isFile());
}

/** The environment a user's shell would give cscs-sa: nothing of ours leaks in. */
export function userEnv(home: Home, extra: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string | undefined> = { PATH: process.env.PATH, HOME: home.dir, LANG: 'C.UTF-8', ...extra };
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

export interface Run {
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
}

export async function cscsSa(args: string[], env: Record<string, string>, options: Options = {}): Promise<Run> {
  const r = await execa(process.execPath, [BIN, ...args], { env, extendEnv: false, reject: false, stdin: 'ignore', stripFinalNewline: false, ...options });
  return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}
