/**
 * Burst mode: ssh multiplexing for the sa-* hosts. Where the control sockets live and the
 * ssh_config lines that use them.
 *
 * The Match line does not look for a live master: it cannot know which ControlPath the ssh at
 * hand really uses (`-S none`, `-o ControlPath=none`, ControlMaster no, Ansible's own
 * ControlPath, scp with any of them), nor whether the master it saw still lives when ssh gets to
 * it (its ControlPersist ends about with the certificate). Skipping the refresh for a master
 * therefore let such commands present an expired certificate. So burst mode keeps the
 * certificate fresh exactly as without it (src/ssh/freshcheck.ts: no Node while fresh), and a
 * master only saves the connection: a command on it costs the shell check, and at most one
 * refresh per certificate lifetime.
 */
import { chmodSync, lstatSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { expandHome } from '../core/config.js';
import { describeFsError, LocalFileError } from '../base/errors.js';
import { makeFolders } from '../base/fsutil.js';
import { ownedBy } from '../base/trust.js';
import { configWord } from './lex.js';

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

/** The `Host PREFIX*` lines of burst mode. */
export function multiplexLines(dir: string): string[] {
  return ['ControlMaster auto', `ControlPath ${configWord('the socket folder', dir, { tokens: true, env: true }, '/%C')}`, `ControlPersist ${CONTROL_PERSIST}`];
}
