/**
 * An unprivileged victim and another local user as the attacker, for tests of what one user can
 * do to another. Needs root (to act as both); creates no account: the victim is `nobody`, the
 * attacker a bare uid that owns files (the kernel needs no password entry for that).
 */
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, execaSync } from 'execa';
import { BIN, type Run } from './cli.ts';

export const VICTIM_UID = 65534;
export const ATTACKER_UID = 4242;

/** Why the victim cannot be played here, or undefined when it can. */
export function victimUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root, to act as two other users';
  const r = execaSync('setpriv', [`--reuid=${VICTIM_UID}`, `--regid=${VICTIM_UID}`, '--clear-groups', process.execPath, BIN, '--version'], { reject: false });
  if (r.exitCode !== 0) return `nobody cannot run ${BIN} (install util-linux's setpriv, or make the folders above it readable): ${String(r.stderr).split('\n')[0]}`;
  return undefined;
}

/** A folder of the victim's, 0700: its HOME. */
export function victimHome(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'cscs-sa-victim-'));
  chownSync(dir, VICTIM_UID, VICTIM_UID);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** cscs-sa ARGS run as the victim. */
export async function asVictim(args: string[], env: Record<string, string>): Promise<Run> {
  const r = await execa('setpriv', [`--reuid=${VICTIM_UID}`, `--regid=${VICTIM_UID}`, '--clear-groups', process.execPath, BIN, ...args], {
    env,
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
    stripFinalNewline: false,
  });
  return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** A command run as the attacker (files it makes are the attacker's). */
export async function asAttacker(file: string, args: string[]): Promise<void> {
  await execa('setpriv', [`--reuid=${ATTACKER_UID}`, `--regid=${ATTACKER_UID}`, '--clear-groups', file, ...args]);
}
