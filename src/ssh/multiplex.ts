/**
 * Burst mode: ssh multiplexing for the sa-* hosts. Where the control sockets live, the
 * ssh_config lines that use them, and the shell check that lets a command on a live master
 * skip cscs-sa (no Node start, no certificate) altogether.
 */
import { chmodSync, lstatSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { expandHome } from '../core/config.js';
import { describeFsError, LocalFileError } from '../base/errors.js';
import { makeFolders } from '../base/fsutil.js';
import { ownedBy } from '../base/trust.js';
import { configWord, shellWord, tokenLiteral } from './lex.js';

/**
 * Seconds an idle master stays open. As long as a certificate lives: commands seconds apart
 * (a CI job's mkdir, rsync, sbatch, a squeue loop) share one connection, and an idle master
 * lets no one in for longer than a fresh certificate would have.
 */
export const CONTROL_PERSIST = 60;

/**
 * A socket path must fit sun_path: 104 bytes with the NUL on macOS and the BSDs (108 on Linux).
 * While creating a master, ssh binds PATH.XXXXXXXXXXXXXXXX (16 random characters) and renames
 * it; %C is 40 hex characters.
 */
const SUN_PATH = 104;
const SOCKET_NAME = '/'.length + 40 + '.'.length + 16;
export const MAX_CONTROL_DIR = SUN_PATH - 1 - SOCKET_NAME;

/** The ssh config cscs-sa edits: FLAG, else ~/.ssh/config of the password database's home, which is the one ssh reads. */
export function sshConfigPath(flag: string | undefined): string {
  return flag ? expandHome(flag) : join(userInfo().homedir, '.ssh', 'config');
}

/** The sockets' folder, beside the ssh config (so ~/.ssh/cscs-sa-cm). */
export function controlDir(sshConfig: string): string {
  return join(dirname(sshConfig), 'cscs-sa-cm');
}

/** Why DIR cannot hold control sockets, or undefined when it can. */
export function controlDirProblem(dir: string): string | undefined {
  const bytes = Buffer.byteLength(dir);
  if (bytes > MAX_CONTROL_DIR) return `the socket folder ${dir} is ${bytes} bytes long, but a socket path must fit ${SUN_PATH} bytes, which leaves ${MAX_CONTROL_DIR} for the folder`;
  return undefined;
}

/** Creates the sockets' folder, private: whoever can reach a socket can use the connection. */
export function prepareControlDir(dir: string): void {
  try {
    makeFolders(dir, 0o700);
    const st = lstatSync(dir);
    if (!st.isDirectory()) throw new LocalFileError(`${dir} is not a folder`, { fix: 'remove it and run setup --multiplex again' });
    if (!ownedBy(st, 'us')) throw new LocalFileError(`${dir} belongs to another user`, { fix: 'remove it and run setup --multiplex again' });
    chmodSync(dir, 0o700);
  } catch (err) {
    if (err instanceof LocalFileError) throw err;
    throw new LocalFileError(describeFsError(err, 'create', dir));
  }
}

/**
 * The Match exec command: exit 0 at once when a live master for this very connection exists
 * (no Node, no certificate: the master needs none), else run MATCH. `%C` here is the same hash
 * as in ControlPath because the Match line comes after every setting that feeds it. `test -S`
 * alone is not enough: after a master died its socket stays, and ssh's mux client would unlink
 * it and connect as a new master without a refresh; `-O check` fails on it, so MATCH runs.
 * `-F /dev/null` keeps the check out of this config (no recursion). Layers, outermost first:
 * ssh expands the tokens (`%%` is `%`), the shell splits words, the checking ssh expands -S.
 */
export function masterCheck(dir: string, match: string): string {
  // The folder is a literal for the shell and, in -S, for the checking ssh too (`%%` there);
  // ssh writes %C's value in before either sees it.
  const socket = (path: string) => `${tokenLiteral(shellWord('the socket folder', path))}/%C`;
  return `test -S ${socket(dir)} && ssh -F /dev/null -S ${socket(tokenLiteral(dir))} -O check _ 2>/dev/null || ${match}`;
}

/** The `Host PREFIX*` lines of burst mode. */
export function multiplexLines(dir: string): string[] {
  return ['ControlMaster auto', `ControlPath ${configWord('the socket folder', dir, { tokens: true, env: true }, '/%C')}`, `ControlPersist ${CONTROL_PERSIST}`];
}
