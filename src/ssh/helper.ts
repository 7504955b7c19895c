/**
 * How the ssh config names cscs-sa in its Match exec and ProxyCommand. ssh runs them with
 * `$SHELL -c` under the PATH of whatever started ssh, which need not be the PATH setup runs under:
 * cron gives PATH=/usr/bin:/bin, a systemd unit or an IDE another short one, and `npm install -g`
 * puts cscs-sa in /usr/local/bin or ~/.local/bin. By name only when that short PATH finds this
 * very program and node too; otherwise by the absolute paths of node and the script.
 */
import { realpathSync } from 'node:fs';
import { foundByShell } from '../base/child.js';

/** The PATH cron gives a job (Debian, RHEL, macOS alike): the shortest one ssh is started under. */
export const CRON_PATH = '/usr/bin:/bin';

/** Where `$SHELL -c` finds NAME under PATH (default ours), resolved through links; undefined when it does not. */
async function resolvedByShell(name: string, path?: string): Promise<string | undefined> {
  const found = (await foundByShell(name, path)).path;
  try {
    return found && realpathSync(found);
  } catch {
    return undefined;
  }
}

/** How ssh's `$SHELL -c` should start cscs-sa: `['cscs-sa']`, or the absolute paths of node and the script. */
export async function helperCommand(): Promise<string[]> {
  const script = realpathSync(process.argv[1]!);
  // npx runs from a cache it may clean.
  const ephemeral = script.includes('/_npx/');
  if (ephemeral) process.stderr.write(`cscs-sa: warning: ssh_config will name ${script} in npx's cache, which npm may clean: install cscs-sa (README: Install) and run setup again\n`);
  const node = realpathSync(process.execPath);
  // The script starts with `#!/usr/bin/env node`: the node that PATH finds must be this one.
  const byName = async (path?: string) => (await resolvedByShell('cscs-sa', path)) === script && (await resolvedByShell('node', path)) === node;
  if (!ephemeral && (await byName()) && (await byName(CRON_PATH))) return ['cscs-sa'];
  return [process.execPath, script];
}
