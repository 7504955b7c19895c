/**
 * What the system says about a process: whether its pid is in use, and from Linux's /proc enough
 * to tell one process from a later one that got the same pid (its start time, in clock ticks since
 * boot) and to walk up to its ancestors. Elsewhere (no /proc) those answers are undefined or empty
 * and callers fall back to the pid alone.
 */
import { readFileSync } from 'node:fs';

export interface ProcStat {
  /** The executable's name (at most 15 characters). */
  comm: string;
  ppid: number;
  /** Start time in clock ticks since boot. */
  start: string;
}

export function procStat(pid: number): ProcStat | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The name (field 2) is in parentheses and may hold spaces and ')': count fields from the last ')'.
  const close = stat.lastIndexOf(')');
  const rest = stat.slice(close + 2).split(' ');
  // rest[0] is field 3 (state): ppid is field 4, starttime field 22.
  const ppid = Number(rest[1]);
  const start = rest[19];
  if (!start || !Number.isInteger(ppid)) return undefined;
  return { comm: stat.slice(stat.indexOf('(') + 1, close), ppid, start };
}

/** Whether a process has this pid: one of another user's (EPERM) counts too. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface Ancestor {
  pid: number;
  comm: string;
  start: string;
}

/** This process's ancestors, nearest first, at most `maxDepth` of them and never init (Linux; elsewhere none). */
export function ancestors(maxDepth: number): Ancestor[] {
  const found: Ancestor[] = [];
  for (let pid = process.ppid; found.length < maxDepth && pid > 1; ) {
    const stat = procStat(pid);
    if (!stat) break;
    found.push({ pid, comm: stat.comm, start: stat.start });
    pid = stat.ppid;
  }
  return found;
}

/** The process's argv, or undefined. */
export function procArgs(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
  } catch {
    return undefined;
  }
}

/**
 * How far up a Match exec command finds the ssh that runs it: ssh, its shell, maybe `env` of a #!
 * line, then the command.
 */
export const MATCH_EXEC_DEPTH = 4;

/** The nearest `ssh` above a Match exec command, with its argv (Linux); undefined when none can be read. */
export function nearestSsh(): { pid: number; args: string[] } | undefined {
  const ssh = ancestors(MATCH_EXEC_DEPTH).find((a) => a.comm === 'ssh');
  const args = ssh && procArgs(ssh.pid);
  return args && { pid: ssh.pid, args };
}

let bootId: string | undefined;

/** This boot's id and the process's start time: unique to one process across reboots, or undefined. */
export function processIdentity(pid: number): string | undefined {
  try {
    bootId ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
  const stat = procStat(pid);
  return stat && `${bootId}/${stat.start}`;
}
