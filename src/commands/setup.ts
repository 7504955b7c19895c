import { copyFileSync, mkdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { userInfo } from 'node:os';
import { execaSync } from 'execa';
import { childEnv } from '../child.js';
import { loadSettings } from '../config.js';
import { describeFsError, LocalFileError, UsageError } from '../errors.js';
import { writeFileAtomic } from '../fsutil.js';
import { prepareKeyPair, refreshCertificate } from '../refresh.js';
import { inspect, keyPaths } from '../store.js';
import { CLUSTERS, JUMP_HOST, planInclude, renderBlock, replaceDiff, SetupRefusedError, unifiedDiff } from '../sshconfig.js';
import { CONTROL_PERSIST, controlDir, controlDirProblem, prepareControlDir, sshConfigPath } from '../multiplex.js';
import { parseCommandArgs } from './args.js';

export const usage = `Usage: cscs-sa setup [--user NAME] [--hosts LIST] [--key PATH] [--env ENV] [--agent]
                     [--multiplex] [--ssh-config FILE] [--dry-run] [--print]

Sets up ssh for the service account: creates the key pair if it is missing (never replaces one),
writes the cscs-sa block to cscs-sa.conf beside your ssh config, and adds one Include line for
it, between marked lines, before the first Host or Match of the ssh config. Running it again
changes nothing; the ssh config is backed up (FILE.cscs-sa.bak) before it is changed.

Options:
      --user NAME         the service account's login name (default CSCS_SA_USERNAME, else the
                          principal of a freshly signed certificate)
      --hosts LIST        clusters behind sa-ela, comma-separated (default ${CLUSTERS.join(',')})
      --key PATH          private key (default ~/.ssh/cscs-key-sa)
      --env ENV           prod (default) or tds, the CSCS test environment's gateway
      --agent             load certificates into ssh-agent from the ProxyCommand (proxy --agent)
      --multiplex         burst mode: commands share one connection per host (ControlMaster) for
                          up to ${CONTROL_PERSIST} s after the last one, with no cscs-sa start while it is
                          open; sockets in cscs-sa-cm beside the ssh config; cscs-sa close ends them
      --ssh-config FILE   the ssh config to add the Include to (default ~/.ssh/config of the
                          password database's home, which is the one ssh reads)
      --dry-run           show the changes as a diff and change nothing
      --print             print the cscs-sa block and change nothing
  -h, --help              this text`;

/** Where `$SHELL -c` finds NAME, resolved through links; undefined when it does not. */
function foundByShell(name: string): string | undefined {
  try {
    const r = execaSync(process.env.SHELL || '/bin/sh', ['-c', `command -v ${name}`], { env: childEnv(), extendEnv: false, reject: false });
    return r.exitCode === 0 ? realpathSync(String(r.stdout).trim()) : undefined;
  } catch {
    return undefined;
  }
}

/** How ssh's `$SHELL -c` should start cscs-sa: by name when that finds this very program, else by absolute paths. */
function helperCommand(): string {
  const script = realpathSync(process.argv[1]!);
  // npx runs from a cache it may clean; nvm's node may be missing from a non-interactive shell.
  const ephemeral = script.includes('/_npx/');
  if (!ephemeral && foundByShell('cscs-sa') === script && foundByShell('node')) return 'cscs-sa';
  const q = (p: string) => (/[\s'"]/.test(p) ? `'${p.replace(/'/g, "'\\''")}'` : p);
  return `${q(process.execPath)} ${q(script)}`;
}

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new LocalFileError(describeFsError(err, 'read', path));
  }
}

function parseHosts(list: string | undefined): string[] {
  if (list === undefined) return CLUSTERS;
  const names = list
    .split(',')
    .map((h) => h.trim().replace(/^sa-/, ''))
    .filter((h) => h !== '' && h !== JUMP_HOST.name);
  const bad = names.find((h) => !/^[a-z0-9][a-z0-9-]*$/i.test(h));
  if (bad !== undefined) throw new UsageError(`setup: "${bad}" is not a host name (--hosts takes names like clariden,daint)`);
  return [...new Set(names)];
}

export async function run(args: string[]): Promise<number> {
  const { values } = parseCommandArgs('setup', args, {
    user: { type: 'string' },
    hosts: { type: 'string' },
    key: { type: 'string' },
    env: { type: 'string' },
    agent: { type: 'boolean' },
    multiplex: { type: 'boolean' },
    'ssh-config': { type: 'string' },
    'dry-run': { type: 'boolean' },
    print: { type: 'boolean' },
  });
  if (values.help) return (process.stdout.write(`${usage}\n`), 0);
  const settings = await loadSettings({ key: values.key, env: values.env });
  const clusters = parseHosts(values.hosts);
  const changes = !values['dry-run'] && !values.print;
  // Refused before anything is created or fetched.
  const sshConfigLink = sshConfigPath(values['ssh-config']);
  const sockets = values.multiplex ? controlDir(sshConfigLink) : undefined;
  const tooLong = sockets && controlDirProblem(sockets);
  if (tooLong) throw new SetupRefusedError(`setup --multiplex: ${tooLong}`, { fix: 'run setup with --ssh-config in a folder with a shorter path, or without --multiplex' });

  let user = values.user ?? process.env.CSCS_SA_USERNAME;
  if (!user && !changes) {
    // A dry run creates no key and fetches nothing: only a certificate already there can tell.
    user = inspect(keyPaths(settings.key), 0).certificate?.principals[0];
    if (!user) throw new UsageError('setup: --dry-run and --print change nothing, so they cannot fetch a certificate to learn the login name: pass --user NAME');
  } else if (!user) {
    // The gateway names no user; the certificate's principal is the login name.
    const { state } = await refreshCertificate(settings).catch((err: Error) => {
      throw new UsageError(`setup: cannot learn the login name from a certificate (${err.message}): pass --user NAME or set CSCS_SA_USERNAME`);
    });
    user = state.certificate?.principals[0];
    if (!user) throw new UsageError('setup: the certificate names no principal: pass --user NAME');
  } else if (changes) {
    await prepareKeyPair(settings);
  }
  if (!/^[A-Za-z0-9._-]+$/.test(user)) throw new UsageError(`setup: "${user}" is not a login name`);

  const block = renderBlock({
    user,
    key: settings.key,
    clusters,
    command: helperCommand(),
    matchArgs: settings.env === 'prod' ? undefined : `--env ${settings.env}`,
    agent: values.agent,
    multiplex: sockets,
  });
  if (values.print) return (process.stdout.write(block), 0);

  const sshConfig = readIfExists(sshConfigLink) === undefined ? sshConfigLink : realpathSync(sshConfigLink);
  if (sshConfig !== sshConfigLink) process.stderr.write(`cscs-sa: ${sshConfigLink} is a link: editing ${sshConfig}\n`);
  const conf = join(dirname(sshConfigLink), 'cscs-sa.conf');
  const oldConf = readIfExists(conf);
  const oldConfig = readIfExists(sshConfig) ?? '';
  if (oldConfig.includes('\0')) throw new SetupRefusedError(`${sshConfig} is not a text file: not editing it`);
  const plan = planInclude(oldConfig, conf);

  if (values['dry-run']) {
    const diffs = [oldConf !== block ? replaceDiff(conf, oldConf, block) : '', plan.changed ? unifiedDiff(sshConfig, oldConfig, plan) : ''].join('');
    process.stdout.write(diffs || 'cscs-sa: nothing to change\n');
    return 0;
  }

  if (sockets) prepareControlDir(sockets);
  if (oldConf !== block) {
    write(conf, block, 0o600);
    process.stdout.write(`wrote ${conf}\n`);
  }
  if (plan.changed) {
    let mode = 0o600;
    if (oldConfig !== '') {
      mode = statSync(sshConfig).mode & 0o777;
      copyFileSync(sshConfig, `${sshConfig}.cscs-sa.bak`);
    }
    write(sshConfig, plan.text, mode);
    process.stdout.write(`added the Include for it to ${sshConfig}${oldConfig ? ` (backup: ${sshConfig}.cscs-sa.bak)` : ''}\n`);
  }
  if (oldConf === block && !plan.changed) process.stdout.write('cscs-sa: nothing to change\n');
  if (!values['ssh-config'] && userInfo().homedir !== (process.env.HOME ?? userInfo().homedir)) {
    process.stderr.write(`cscs-sa: note: HOME is ${process.env.HOME}, but ssh reads ${sshConfigLink} (the password database's home)\n`);
  }
  return 0;
}

function write(path: string, text: string, mode: number): void {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeFileAtomic(path, text, mode);
  } catch (err) {
    throw new LocalFileError(describeFsError(err, 'write', path));
  }
}
