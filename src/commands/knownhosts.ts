import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { hostPrefix } from '../core/account.js';
import { childEnv, runTool } from '../base/child.js';
import { loadSettings, type Settings } from '../core/config.js';
import { ConnectError, CscsSaError } from '../base/errors.js';
import { printable } from '../core/certificate.js';
import { refreshCertificate } from '../refresh/refresh.js';
import { configWord } from '../ssh/lex.js';
import { fingerprint, knownHostsName } from '../ssh/knownhosts.js';
import { readChoices } from '../ssh/choices.js';
import { helperCommand } from '../ssh/helper.js';
import { sshConfigPath } from '../ssh/multiplex.js';
import { blockTargets, JUMP_HOST, parseHosts, parseTarget } from '../ssh/sshconfig.js';
import { parseCommandArgs } from './args.js';
import { accountBlock, knownUser, PLACEHOLDER_USER } from './setup.js';

/** The cluster asked when neither --hosts nor an earlier setup names any. */
const DEFAULT_CLUSTER = 'clariden';

export const usage = `Usage: cscs-sa known-hosts [--account NAME] [--hosts LIST] [--host NAME=HOSTNAME[:PORT]] [--ssh-config FILE]

Fetches the host keys of the jump host (NAME-ela: ela.cscs.ch) and of the clusters behind it,
once, with ssh: prints on stderr, per host, the fingerprint it fetched or why it could not, and
on stdout the known_hosts lines. Run it on a machine and network you trust, compare the
fingerprints with ones you trust, then pin the lines. It works before setup (it needs only the
hosts), so the first steps on a new machine are:

    cscs-sa known-hosts --hosts clariden > cscs.known_hosts
    cscs-sa setup --hosts clariden --known-hosts cscs.known_hosts

or store the lines as the CI variable CSCS_SA_KNOWN_HOSTS, which setup reads on the runner.
The jump host shows its key before any login; a cluster's key needs a login to the jump host,
with a certificate refreshed as for ssh (the API key as for ssh: CSCS_API_KEY, apiKeyFile...).

Options:
      --account NAME      the account whose hosts, key and API key to use (default sa); the
                          host keys are the same for every account
      --hosts LIST        clusters, as for setup (default those setup wrote, else ${DEFAULT_CLUSTER})
      --host NAME=HOSTNAME[:PORT]  lead a host elsewhere, as for setup (default what setup wrote)
      --ssh-config FILE   the ssh config setup was given (default ~/.ssh/config): its block tells
                          the hosts, and the overrides beside it apply
  -h, --help              this text

Exit status 0 when every host's key was fetched; 8 when one was not (the others are printed).`;

/**
 * Connects to HOST with ssh (which records an unknown host key before authentication), within
 * 60 s; returns why it failed: our own helper's line (the proxy's, match's) says more than ssh's
 * last one ("Connection closed by UNKNOWN").
 */
async function touch(config: string, host: string): Promise<string> {
  const lines = (await runTool('ssh', ['-F', config, host, 'exit'], childEnv(), 60_000)).stderr.trim().split(/\r?\n/);
  return lines.find((l) => l.startsWith('cscs-sa: ')) ?? lines.pop() ?? '';
}

/** The login name for passing the jump host, and why there is no certificate to pass it with, if there is none. */
async function login(settings: Settings, known: string | undefined): Promise<{ user: string; noCertificate?: CscsSaError }> {
  try {
    const { state } = await refreshCertificate(settings);
    return { user: known ?? state.certificate?.principals[0] ?? PLACEHOLDER_USER };
  } catch (err) {
    if (!(err instanceof CscsSaError)) throw err;
    return { user: known ?? PLACEHOLDER_USER, noCertificate: err };
  }
}

export async function run(args: string[]): Promise<number> {
  const { values } = parseCommandArgs('known-hosts', args, {
    account: { type: 'string' },
    hosts: { type: 'string' },
    host: { type: 'string', multiple: true },
    'ssh-config': { type: 'string' },
  }, []);
  if (values.help) return (process.stdout.write(`${usage}\n`), 0);
  const settings = await loadSettings({ account: values.account });
  const { account } = settings;
  const prefix = hostPrefix(account);
  const choices = readChoices(account, values['ssh-config']);
  const listed = values.hosts === undefined ? undefined : parseHosts('known-hosts', values.hosts, prefix);
  const clusters = listed?.clusters ?? choices?.clusters ?? [DEFAULT_CLUSTER];
  const names = [JUMP_HOST.name, ...clusters];
  const targets = Object.fromEntries(
    [...Object.entries(choices?.targets ?? {}), ...Object.entries(listed?.targets ?? {}), ...(values.host ?? []).map((spec) => parseTarget(spec, 'known-hosts: --host'))].filter(([name]) => names.includes(name)),
  );
  const { user, noCertificate } = await login(settings, knownUser(account, choices, settings));
  const sshConfig = sshConfigPath(values['ssh-config']);
  const dir = mkdtempSync(join(tmpdir(), 'cscs-sa-known-hosts-'));
  try {
    const known = join(dir, 'known_hosts');
    writeFileSync(known, '', { mode: 0o600 });
    // The first values win: these come before the block and the user's config, for every host
    // and for the ProxyJump child, which ssh starts with the same -F. accept-new records a key
    // before authentication, so the fetch works whatever the login then does; no master, since
    // a command over one makes no key exchange.
    const block = accountBlock(
      settings,
      { clusters, targets, user, multiplex: false, agent: false, trustOnFirstUse: false },
      { sshDir: dirname(sshConfig), knownHosts: known, command: await helperCommand() },
    );
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
        'ControlMaster no',
        'ControlPath none',
        block,
        // The user's own settings for everything the block does not set (a proxy, an address family).
        `Include ${configWord('the ssh config', sshConfig, { glob: true })}`,
        '',
      ].join('\n'),
    );
    const lines = () => readFileSync(known, 'utf8').split('\n').filter(Boolean);
    const report: string[] = [];
    const missing: string[] = [];
    let unreachable: string | undefined;
    for (const [name, target] of Object.entries(blockTargets({ clusters, targets }))) {
      const host = `${prefix}${name}`;
      const where = knownHostsName(target);
      let why: string | undefined;
      if (unreachable !== undefined) why = `not tried: ${unreachable}`;
      else if (name !== JUMP_HOST.name && noCertificate) why = `not tried: passing ${prefix}${JUMP_HOST.name} needs a certificate (${noCertificate.message})`;
      else {
        const before = lines().length;
        const last = await touch(config, host);
        const fetched = lines().slice(before);
        if (fetched.length > 0) {
          for (const line of fetched) {
            const [, type, blob] = line.split(' ');
            report.push(`fetched  ${host}  ${where}  ${fingerprint(blob ?? '')} (${type})`);
          }
          continue;
        }
        why = printable(last) || 'no host key';
        if (name === JUMP_HOST.name) unreachable = `${host} was not reached`;
      }
      report.push(`missing  ${host}  ${where}  ${why}`);
      missing.push(host);
    }
    process.stderr.write(report.map((l) => `${l}\n`).join(''));
    const found = lines();
    if (found.length > 0) {
      process.stdout.write(`${found.join('\n')}\n`);
      process.stderr.write('cscs-sa: compare these fingerprints with ones you trust, then pin the lines: cscs-sa setup --known-hosts FILE, or the CI variable CSCS_SA_KNOWN_HOSTS\n');
    }
    if (missing.length > 0) {
      const fix = noCertificate && !unreachable ? noCertificate.line : 'check that ssh reaches these hosts (cscs-sa doctor HOST --connect)';
      throw new ConnectError(`no host key from ${missing.join(', ')}`, { fix });
    }
    return 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
