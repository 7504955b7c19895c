/**
 * The GitHub Action's main step (action.yml): sets up ssh for one service account so that the
 * job's later steps run plain `ssh sa-clariden`, scp, rsync and git with no secret of their own.
 *
 * Order matters: the API key is masked before anything is printed, and the plan is saved for the
 * post step before anything is written, so that a cancelled or failed main is cleaned up too.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { hostPrefix } from '../core/account.js';
import { CscsSaError, UsageError } from '../base/errors.js';
import { blockTargets, CLUSTERS, JUMP_HOST, parseHosts, parseTargets } from '../ssh/sshconfig.js';
import { fingerprint as keyFingerprint } from '../ssh/knownhosts.js';
import { cscsSa, cscsSaScript, failure, makePlan, PLAN_STATE, type Plan, sshConfigArgs } from './job.js';
import { installCommand, storeApiKey } from './keystore.js';
import { addPath, booleanInput, command, exportVariable, input, mask, saveState, setOutput, showVerbatim } from './runner.js';

/** The setup flags the inputs ask for. */
function setupArgs(plan: Plan): string[] {
  const flag = (name: string, value: string) => (value ? [`--${name}`, value] : []);
  return [
    'setup',
    ...(plan.account === 'sa' ? [] : ['--account', plan.account]),
    ...flag('hosts', input('hosts')),
    ...flag('user', input('user')),
    ...flag('env', input('env')),
    ...(booleanInput('multiplex') ? ['--multiplex'] : []),
    ...(booleanInput('trust-on-first-use') ? ['--trust-on-first-use'] : []),
    ...hostLines().flatMap((line) => ['--host', line]),
    ...sshConfigArgs(plan),
    '--known-hosts',
    '-',
  ];
}

const hostLines = (): string[] =>
  input('host')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter(Boolean);

/** `SHA256:...` of a known_hosts line's key, as ssh-keygen -l prints it. */
function fingerprint(line: string): string | undefined {
  const [names, type, blob] = line.trim().split(/\s+/);
  if (!names || !type || !blob || names.startsWith('#')) return undefined;
  return `${names} ${type} ${keyFingerprint(blob)}`;
}

interface Status {
  principals: string[];
  validAfter: string | null;
  validBefore: string | null;
  certificate: string;
  key: string;
}

async function main(): Promise<void> {
  const apiKey = input('api-key');
  // First of all: from here on the runner shows the key as *** wherever it appears.
  if (apiKey) mask(apiKey);
  if (!apiKey) throw new UsageError('input api-key is empty', { fix: 'set api-key: ${{ secrets.CSCS_API_KEY }} (a repository secret holding the service account\'s API key)' });
  const knownHosts = input('known-hosts');
  const trustOnFirstUse = booleanInput('trust-on-first-use');
  if (!knownHosts && !trustOnFirstUse) {
    throw new UsageError('input known-hosts is empty, so ssh would refuse the CSCS hosts', {
      fix: 'set known-hosts: ${{ vars.CSCS_SA_KNOWN_HOSTS }}, the lines `cscs-sa known-hosts` printed on a trusted machine',
    });
  }
  const runnerTemp = process.env.RUNNER_TEMP;
  if (!runnerTemp) throw new UsageError('RUNNER_TEMP is not set: this runs only as a step of a GitHub Actions job');
  const account = input('account') || 'sa';
  const plan = makePlan(account, input('ssh-config'), runnerTemp);
  const ours = process.env.CSCS_SA_CONFIG;
  if (ours && ours !== plan.store.configFile) {
    throw new UsageError(`CSCS_SA_CONFIG is set to ${ours}, but the action names a config file of its own`, { fix: 'leave CSCS_SA_CONFIG unset in the steps that use the action' });
  }
  const prefix = hostPrefix(account);
  const listed = parseHosts('input hosts', input('hosts') || CLUSTERS.join(','), prefix);
  const clusters = listed.clusters;
  const targets = blockTargets({ clusters, targets: { ...listed.targets, ...parseTargets(hostLines(), [JUMP_HOST.name, ...clusters], prefix) } });
  saveState(PLAN_STATE, JSON.stringify(plan));

  storeApiKey(plan.store, account, apiKey);
  installCommand(plan.store, process.execPath, cscsSaScript());
  exportVariable('CSCS_SA_CONFIG', plan.store.configFile);
  addPath(plan.store.bin);

  command('group', `cscs-sa: ${clusters.map((c) => `${prefix}${c}`).join(', ')} ready`);
  try {
    const setup = cscsSa(plan, setupArgs(plan), `${knownHosts}\n`);
    showVerbatim(setup.stdout + setup.stderr);
    if (setup.code !== 0) throw failure('setup failed', setup);
    // A certificate now: a wrong API key fails this step, not the first ssh of a later one.
    const accountArgs = account === 'sa' ? [] : ['--account', account];
    const refresh = cscsSa(plan, ['match', ...accountArgs]);
    if (refresh.code !== 0) throw failure('no certificate', refresh);
    const [status] = JSON.parse(cscsSa(plan, ['status', '--json', ...accountArgs]).stdout) as [Status];
    const user = input('user') || status.principals[0] || '';
    let pins: string[] = [];
    try {
      pins = readFileSync(join(dirname(plan.conf), 'cscs-sa.known_hosts'), 'utf8').split('\n').flatMap((l) => fingerprint(l) ?? []);
    } catch {
      // Nothing pinned (trust-on-first-use).
    }
    const route = (name: string) => `${prefix}${name} -> ${targets[name]!.hostName}${targets[name]!.port ? `:${targets[name]!.port}` : ''}`;
    // Principals and pinned names come from the gateway and the known-hosts input.
    const lines = [
      `hosts:        ${clusters.map(route).join(', ')} (through ${route(JUMP_HOST.name)})`,
      `login name:   ${user}`,
      `certificate:  ${status.certificate}, valid ${status.validAfter} .. ${status.validBefore} (each ssh renews it when it is near expiry)`,
      `host keys:    ${pins.length ? pins.join('\n              ') : 'not pinned (trust-on-first-use)'}`,
      `cscs-sa:      ${join(plan.store.bin, 'cscs-sa')} (on PATH for the next steps)`,
    ];
    showVerbatim(lines.join('\n'));
    setOutput('host', `${prefix}${clusters[0]}`);
    setOutput('hosts', clusters.map((c) => `${prefix}${c}`).join(' '));
    setOutput('user', user);
    setOutput('key', status.key);
    setOutput('certificate', status.certificate);
  } finally {
    command('endgroup');
  }
}

main().catch((err: unknown) => {
  const line = err instanceof CscsSaError ? err.line : `unexpected error: ${err instanceof Error ? err.message : String(err)}`;
  command('error', line, { title: 'cscs-sa' });
  process.exitCode = 1;
});
