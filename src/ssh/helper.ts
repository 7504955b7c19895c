/**
 * How the ssh config names cscs-sa in its Match exec and ProxyCommand. ssh runs them with
 * `$SHELL -c` under the PATH of whatever started ssh, which need not be the PATH setup runs under:
 * cron gives PATH=/usr/bin:/bin, a systemd unit or an IDE another short one, and `npm install -g`
 * puts cscs-sa in /usr/local/bin or ~/.local/bin. By name only when that short PATH finds this
 * very program and node too; otherwise by the absolute paths of node and the script.
 */
import { realpathSync } from 'node:fs';
import { execaSync } from 'execa';
import { childEnv } from '../base/child.js';

/** The PATH cron gives a job (Debian, RHEL, macOS alike): the shortest one ssh is started under. */
export const CRON_PATH = '/usr/bin:/bin';

/** Where `$SHELL -c` finds NAME under PATH, resolved through links; undefined when it does not. */
export function foundByShell(name: string, path: string | undefined = process.env.PATH): string | undefined {
  try {
    const env = { ...childEnv(), ...(path === undefined ? {} : { PATH: path }) };
    const r = execaSync(process.env.SHELL || '/bin/sh', ['-c', `command -v ${name}`], { env, extendEnv: false, reject: false });
    return r.exitCode === 0 ? realpathSync(String(r.stdout).trim()) : undefined;
  } catch {
    return undefined;
  }
}

/** How ssh's `$SHELL -c` should start cscs-sa: `['cscs-sa']`, or the absolute paths of node and the script. */
export function helperCommand(): string[] {
  const script = realpathSync(process.argv[1]!);
  // npx runs from a cache it may clean.
  const ephemeral = script.includes('/_npx/');
  if (ephemeral) process.stderr.write(`cscs-sa: warning: ssh_config will name ${script} in npx's cache, which npm may clean: install cscs-sa (README: Install) and run setup again\n`);
  const node = realpathSync(process.execPath);
  // The script starts with `#!/usr/bin/env node`: the node that PATH finds must be this one.
  const byName = (path: string | undefined) => foundByShell('cscs-sa', path) === script && foundByShell('node', path) === node;
  if (!ephemeral && byName(undefined) && byName(CRON_PATH)) return ['cscs-sa'];
  return [process.execPath, script];
}
