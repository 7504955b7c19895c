/**
 * Was the ssh that runs our Match exec started with -G (print the configuration, connect
 * nowhere)? git runs `ssh -G` for wrapper scripts and editors poll it: a refresh for it is a
 * gateway call for nothing. Match exec runs `$SHELL -c CMD`, and the shell may or may not exec
 * us, so the nearest `ssh` among our ancestors is the one.
 */
import { basename } from 'node:path';
import { runTool } from '../base/child.js';
import { procArgs, procStat } from '../base/proc.js';
import { sshOptionString, sshVersion } from './version.js';

/** How far up to look: ssh, its shell, maybe `env` of a #! line, then us. */
const MAX_DEPTH = 4;

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

interface Proc {
  parent: number;
  name: string;
  args: string[];
  /** What to run for the program's own -V: on Linux its very executable. */
  program: string;
}

/** Linux: /proc. */
function procLinux(pid: number): Proc {
  const stat = procStat(pid);
  const args = procArgs(pid);
  if (!stat || !args) throw new Error(`cannot read /proc/${pid}`);
  return { parent: stat.ppid, name: stat.comm, args, program: `/proc/${pid}/exe` };
}

/** macOS and the BSDs: ps, whose args are joined by spaces (an argument with a space splits; -G still shows). */
async function procPs(pid: number): Promise<Proc> {
  const r = await runTool('ps', ['-o', 'ppid=,comm=,args=', '-p', String(pid)]);
  if (r.code !== 0) throw new Error(`ps: ${r.stderr.trim()}`);
  const line = r.stdout.trim();
  const [parent, comm, ...args] = line.split(/\s+/);
  return { parent: Number(parent), name: basename(comm ?? ''), args, program: comm ?? 'ssh' };
}

/**
 * True when the nearest ssh above us was started with -G; false when it was not, or when the
 * ancestry cannot be read (then we refresh, as without this check).
 */
export async function startedBySshG(): Promise<boolean> {
  try {
    let pid = process.ppid;
    for (let depth = 0; depth < MAX_DEPTH && pid > 1; depth++) {
      const proc = process.platform === 'linux' ? procLinux(pid) : await procPs(pid);
      if (proc.name !== 'ssh') {
        pid = proc.parent;
        continue;
      }
      const args = proc.args.slice(1);
      // Only -P reads differently across versions: ask that ssh its version only when it matters.
      const version = args.some((arg) => /^-[^-]*P/.test(arg)) ? await sshVersion(proc.program) : undefined;
      return sshArgsHaveG(args, sshOptionString(version));
    }
  } catch {
    // Fall through: refresh.
  }
  return false;
}
