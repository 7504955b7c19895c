/**
 * Was the ssh that runs our Match exec started with -G (print the configuration, connect
 * nowhere)? git runs `ssh -G` for wrapper scripts and editors poll it: a refresh for it is a
 * gateway call for nothing. Match exec runs `$SHELL -c CMD`, and the shell may or may not exec
 * us, so the nearest `ssh` among our ancestors is the one.
 */
import { basename } from 'node:path';
import { runTool } from '../base/child.js';
import { MATCH_EXEC_DEPTH, nearestSsh as nearestSshByProc } from '../base/proc.js';
import { sshOptionString, sshVersion } from './version.js';

/**
 * True when ssh's ARGS (without argv[0]) contain -G as ssh reads them: BSD getopt (ssh brings
 * its own, no reordering), options before the destination and again right after it (ssh
 * parses a second round there), none after `--` or in the remote command.
 */
export function sshArgsHaveG(args: string[], options = sshOptionString()): boolean {
  let destination = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') return false;
    if (arg.length < 2 || !arg.startsWith('-')) {
      if (destination) return false; // the remote command starts here
      destination = true;
      continue;
    }
    for (let j = 1; j < arg.length; j++) {
      const letter = arg[j]!;
      if (letter === 'G') return true;
      const at = options.indexOf(letter);
      if (letter !== ':' && at !== -1 && options[at + 1] === ':') {
        if (j === arg.length - 1) i++; // its argument is the next word
        break; // or the rest of this one
      }
    }
  }
  return false;
}

/** The nearest ssh above us: its argv, and what to run for its own -V (on Linux its very executable). */
interface Ssh {
  args: string[];
  program: string;
}

/**
 * macOS and the BSDs, which have no /proc: the nearest ssh's argv from ps, whose args are joined
 * by spaces (an argument with a space splits; -G still shows).
 */
async function nearestSshByPs(): Promise<Ssh | undefined> {
  let pid = process.ppid;
  for (let depth = 0; depth < MATCH_EXEC_DEPTH && pid > 1; depth++) {
    const r = await runTool('ps', ['-o', 'ppid=,comm=,args=', '-p', String(pid)]);
    if (r.code !== 0) return undefined;
    const [parent, comm, ...args] = r.stdout.trim().split(/\s+/);
    if (basename(comm ?? '') === 'ssh') return { args, program: comm! };
    pid = Number(parent);
  }
  return undefined;
}

/** The nearest ssh above us, or undefined when there is none or it cannot be read. */
async function nearestSsh(): Promise<Ssh | undefined> {
  if (process.platform !== 'linux') return nearestSshByPs();
  const ssh = nearestSshByProc();
  return ssh && { args: ssh.args, program: `/proc/${ssh.pid}/exe` };
}

/**
 * True when the nearest ssh above us was started with -G; false when it was not, or when the
 * ancestry cannot be read (then we refresh, as without this check).
 */
export async function startedBySshG(): Promise<boolean> {
  const ssh = await nearestSsh().catch(() => undefined);
  if (!ssh) return false;
  const args = ssh.args.slice(1);
  // Only -P reads differently across versions: ask that ssh its version only when it matters.
  const version = args.some((arg) => /^-[^-]*P/.test(arg)) ? await sshVersion(ssh.program) : undefined;
  return sshArgsHaveG(args, sshOptionString(version));
}
