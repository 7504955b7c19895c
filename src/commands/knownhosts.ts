import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { hostPrefix } from '../core/account.js';
import { childEnv, runTool } from '../base/child.js';
import { accountName, expandHome } from '../core/config.js';
import { ConnectError } from '../base/errors.js';
import { configWord } from '../ssh/lex.js';
import { JUMP_HOST, parseHosts } from '../ssh/sshconfig.js';
import { parseCommandArgs } from './args.js';

export const usage = `Usage: cscs-sa known-hosts [--account NAME] [--hosts LIST] [--ssh-config FILE]

Fetches the host keys of sa-ela and of the clusters behind it, once, through the jump host, as
ssh itself would connect (same config, same route): prints the fingerprints on stderr and the
known_hosts lines on stdout. Run it on a machine and network you trust, compare the
fingerprints with ones you trust, then pin the lines:

    cscs-sa known-hosts > cscs.known_hosts && cscs-sa setup --known-hosts cscs.known_hosts

or store them as the CI variable CSCS_SA_KNOWN_HOSTS, which setup reads on the runner.
Connecting needs a certificate (the jump host must let you through), like any ssh.

Options:
      --account NAME      connect through this account's hosts (NAME-ela...; default sa); the
                          host keys are the same for every account
      --hosts LIST        clusters behind sa-ela, comma-separated (default all of setup's)
      --ssh-config FILE   the ssh config with the cscs-sa block (default ~/.ssh/config)
  -h, --help              this text

Exit status 0 when every host's key was fetched; 8 when a host could not be reached.`;

/** Connects to HOST with ssh (which records an unknown host key before authentication), within 60 s. */
async function touch(config: string, host: string): Promise<string> {
  const r = await runTool('ssh', ['-F', config, host, 'exit'], childEnv(), 60_000);
  return r.stderr.trim().split(/\r?\n/).pop() ?? '';
}

export async function run(args: string[]): Promise<number> {
  const { values } = parseCommandArgs('known-hosts', args, {
    account: { type: 'string' },
    hosts: { type: 'string' },
    'ssh-config': { type: 'string' },
  }, []);
  if (values.help) return (process.stdout.write(`${usage}\n`), 0);
  const account = accountName(values.account);
  const prefix = hostPrefix(account);
  const clusters = parseHosts('known-hosts', values.hosts, prefix);
  const sshConfig = values['ssh-config'] ? expandHome(values['ssh-config']) : join(userInfo().homedir, '.ssh', 'config');
  const dir = mkdtempSync(join(tmpdir(), 'cscs-sa-known-hosts-'));
  try {
    const known = join(dir, 'known_hosts');
    writeFileSync(known, '', { mode: 0o600 });
    // The first values win: these come before the user's config, for every host and for the
    // ProxyJump child, which ssh starts with the same -F. accept-new records a key before
    // authentication, so the fetch works whatever the login then does.
    const config = join(dir, 'ssh_config');
    writeFileSync(
      config,
      [
        `UserKnownHostsFile ${configWord('a temporary file', known, { tokens: true, env: true })}`,
        'GlobalKnownHostsFile /dev/null',
        'StrictHostKeyChecking accept-new',
        'HashKnownHosts no',
        'UpdateHostKeys no',
        'BatchMode yes',
        'ConnectTimeout 15',
        `Include ${configWord('the ssh config', sshConfig, { glob: true })}`,
        '',
      ].join('\n'),
    );
    const lines = () => readFileSync(known, 'utf8').split('\n').filter(Boolean);
    const failed: string[] = [];
    for (const host of [JUMP_HOST.name, ...clusters].map((name) => `${prefix}${name}`)) {
      const before = lines().length;
      const last = await touch(config, host);
      if (lines().length === before) {
        failed.push(`${host} (${last || 'no host key'})`);
        if (host === `${prefix}${JUMP_HOST.name}`) break; // nothing is reachable behind it
      }
    }
    const found = lines();
    if (found.length > 0) {
      const fingerprints = await runTool('ssh-keygen', ['-l', '-f', known]);
      process.stderr.write(`${fingerprints.stdout.trim()}\n`);
      process.stdout.write(`${found.join('\n')}\n`);
      process.stderr.write('cscs-sa: compare these fingerprints with ones you trust, then pin the lines: cscs-sa setup --known-hosts FILE, or the CI variable CSCS_SA_KNOWN_HOSTS\n');
    }
    if (failed.length > 0) throw new ConnectError(`no host key from ${failed.join(', ')}`, { fix: 'check that ssh reaches these hosts (cscs-sa doctor HOST --connect)' });
    return 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
