import { connect } from 'node:net';
import { lstatSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { runOpenSshTool } from '../base/child.js';
import { describeFsError, LocalFileError } from '../base/errors.js';
import { controlDir, sshConfigPath } from '../ssh/multiplex.js';
import { tokenLiteral } from '../ssh/lex.js';
import { parseCommandArgs } from './args.js';

export const usage = `Usage: cscs-sa close [--ssh-config FILE]

Ends burst mode's open connections (setup --multiplex): \`ssh -O exit\` for each live master in
the cscs-sa-cm folder beside the ssh config, and removes sockets whose master is gone. Sessions
still running on a master end with it. For the cleanup step at the end of a CI job.

Options:
      --ssh-config FILE   the ssh config given to setup (default ~/.ssh/config)
  -h, --help              this text`;

/** True when a master answers on SOCKET; false when it is gone (ECONNREFUSED: only the file is left). */
function alive(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(socket);
    probe.once('connect', () => (probe.destroy(), resolve(true)));
    probe.once('error', () => resolve(false));
  });
}

export async function run(args: string[]): Promise<number> {
  const { values } = parseCommandArgs('close', args, { 'ssh-config': { type: 'string' } }, []);
  if (values.help) return (process.stdout.write(`${usage}\n`), 0);
  const dir = controlDir(sshConfigPath(values['ssh-config']));
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new LocalFileError(describeFsError(err, 'read', dir), { cause: err });
    names = [];
  }
  const live: string[] = [];
  const stale: string[] = [];
  for (const name of names) {
    const socket = join(dir, name);
    if (lstatSync(socket, { throwIfNoEntry: false })?.isSocket()) (await alive(socket) ? live : stale).push(socket);
  }
  for (const socket of live) {
    // -F /dev/null: the user's config is not needed to reach a socket, and must not run Match exec.
    const exit = runOpenSshTool('ssh', ['-F', '/dev/null', '-S', tokenLiteral(socket), '-O', 'exit', '_'], `cannot close the master on ${socket}`);
    // Closing a jump host's master also ends, at its own pace, the masters connected through it.
    await exit.catch(async (err: unknown) => {
      if (await alive(socket)) throw err;
    });
  }
  for (const socket of stale) rmSync(socket, { force: true });
  const [closed, removed] = [live.length, stale.length];
  process.stdout.write(`cscs-sa: closed ${closed} connection${closed === 1 ? '' : 's'}${removed ? `, removed ${removed} stale socket${removed === 1 ? '' : 's'}` : ''}\n`);
  return 0;
}
