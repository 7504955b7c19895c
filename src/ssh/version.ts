/**
 * Which OpenSSH client runs, and what that version understands, for what setup writes, what
 * doctor checks and how a parent ssh's arguments are read. Facts checked against clients built
 * from the release tags (8.0p1, 8.2p1) and their sources:
 * - `Match exec` expands `%L %d %h %l %n %p %r %u` since 7.4, and `%C` only since 8.3. An unknown
 *   token is fatal to every ssh that reads the file ("percent_expand: unknown key %C"), also for
 *   hosts the line does not match: the command is expanded before the earlier criteria are read.
 * - `-P` takes an argument (a tag) only since 9.4; before, it is accepted without one.
 * - Include and ProxyJump, which the block uses, arrived in 7.3.
 */
import { runTool } from '../base/child.js';

export interface SshVersion {
  major: number;
  minor: number;
  /** As ssh -V names it, e.g. `8.2p1`. */
  text: string;
}

/** OpenSSH's version from `ssh -V`'s output (it prints on stderr), or undefined for another client. */
export function parseSshVersion(output: string): SshVersion | undefined {
  const m = /OpenSSH_(\d+)\.(\d+)(p\d+)?/.exec(output);
  return m ? { major: Number(m[1]), minor: Number(m[2]), text: m[0].slice('OpenSSH_'.length) } : undefined;
}

/** Asks `SSH -V`; undefined when it cannot be run or is no OpenSSH. */
export async function sshVersion(ssh = 'ssh'): Promise<SshVersion | undefined> {
  const r = await runTool(ssh, ['-V'], undefined, 5_000);
  return r.missing ? undefined : parseSshVersion(r.stderr);
}

export function atLeast(version: SshVersion, major: number, minor: number): boolean {
  return version.major > major || (version.major === major && version.minor >= minor);
}

/** The oldest client the block works with (Include, ProxyJump). */
export const OLDEST = { major: 7, minor: 3, text: '7.3' };

/** The tokens VERSION expands in `Match exec` (before 7.4: assumed 7.4's, the oldest known). */
export function matchExecTokens(version: SshVersion): string[] {
  return ['%L', '%d', '%h', '%l', '%n', '%p', '%r', '%u', '%%', ...(atLeast(version, 8, 3) ? ['%C'] : [])];
}

/** The `%x` tokens of a Match exec command that VERSION would not expand (`%%` is a literal %). */
export function unknownTokens(command: string, version: SshVersion): string[] {
  const known = matchExecTokens(version);
  return [...new Set(command.match(/%./g) ?? [])].filter((token) => !known.includes(token));
}

/** ssh's getopt string (ssh.c): a letter followed by ':' takes an argument; `-P` only since 9.4. */
export function sshOptionString(version?: SshVersion): string {
  const current = '1246ab:c:e:fgi:kl:m:no:p:qstvxAB:CD:E:F:GI:J:KL:MNO:P:Q:R:S:TVw:W:XYy';
  return version && !atLeast(version, 9, 4) ? current.replace('P:', 'P') : current;
}
