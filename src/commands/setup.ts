import { copyFileSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { userInfo } from 'node:os';
import { execaSync } from 'execa';
import { accountOfConfFile, confFile, DEFAULT_ACCOUNT, hostPrefix } from '../account.js';
import { childEnv } from '../child.js';
import { expandHome, loadSettings } from '../config.js';
import { describeFsError, LocalFileError, UsageError } from '../errors.js';
import { writeFileAtomic } from '../fsutil.js';
import { prepareKeyPair, refreshCertificate } from '../refresh.js';
import { inspect, keyPaths } from '../store.js';
import { CLUSTERS, JUMP_HOST, planInclude, renderBlock, replaceDiff, SetupRefusedError, unifiedDiff } from '../sshconfig.js';
import { parseCommandArgs } from './args.js';

export const usage = `Usage: cscs-sa setup [--account NAME] [--user NAME] [--hosts LIST] [--key PATH] [--env ENV]
                     [--agent] [--ssh-config FILE] [--dry-run] [--print]
       cscs-sa setup --account NAME --remove [--ssh-config FILE] [--dry-run]

Sets up ssh for the service account: creates the key pair if it is missing (never replaces one),
writes the cscs-sa block to cscs-sa.conf beside your ssh config, and adds one Include line for
it, between marked lines, before the first Host or Match of the ssh config. Running it again
changes nothing; the ssh config is backed up (FILE.cscs-sa.bak) before it is changed.

With --account NAME, the same for another service account: hosts NAME-ela, NAME-clariden...,
key ~/.ssh/cscs-key-NAME, its block in cscs-sa-NAME.conf with an Include of its own; other
accounts' files stay as they are. --remove takes the account's file and Include out again and
keeps its key pair.

Options:
      --account NAME      the service account (default sa; see cscs-sa match --help)
      --remove            take the account's block and its Include out (the key pair stays)
      --user NAME         the service account's login name (default CSCS_SA_USERNAME, else the
                          principal of a freshly signed certificate)
      --hosts LIST        clusters behind NAME-ela, comma-separated (default ${CLUSTERS.join(',')})
      --key PATH          private key (default ~/.ssh/cscs-key-NAME: cscs-key-sa, cscs-key-proj...)
      --env ENV           prod (default) or tds, the CSCS test environment's gateway
      --agent             load certificates into ssh-agent from the ProxyCommand (proxy --agent)
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

function parseHosts(list: string | undefined, prefix: string): string[] {
  if (list === undefined) return CLUSTERS;
  const names = list
    .split(',')
    .map((h) => h.trim())
    .map((h) => (h.startsWith(prefix) ? h.slice(prefix.length) : h))
    .filter((h) => h !== '' && h !== JUMP_HOST.name);
  const bad = names.find((h) => !/^[a-z0-9][a-z0-9-]*$/i.test(h));
  if (bad !== undefined) throw new UsageError(`setup: "${bad}" is not a host name (--hosts takes names like clariden,daint)`);
  return [...new Set(names)];
}

export async function run(args: string[]): Promise<number> {
  const { values } = parseCommandArgs('setup', args, {
    account: { type: 'string' },
    remove: { type: 'boolean' },
    user: { type: 'string' },
    hosts: { type: 'string' },
    key: { type: 'string' },
    env: { type: 'string' },
    agent: { type: 'boolean' },
    'ssh-config': { type: 'string' },
    'dry-run': { type: 'boolean' },
    print: { type: 'boolean' },
  });
  if (values.help) return (process.stdout.write(`${usage}\n`), 0);
  const settings = await loadSettings({ key: values.key, env: values.env, account: values.account });
  const { account } = settings;
  if (values.remove) return remove(account, settings.key, sshConfigPaths(values['ssh-config']), values['dry-run']);
  const prefix = hostPrefix(account);
  const clusters = parseHosts(values.hosts, prefix);
  const changes = !values['dry-run'] && !values.print;

  // CSCS_SA_USERNAME names the default account's login; another account's is its own setting.
  let user = values.user ?? (account === DEFAULT_ACCOUNT ? process.env.CSCS_SA_USERNAME : undefined) ?? settings.user;
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

  const accountArgs = account === DEFAULT_ACCOUNT ? undefined : `--account ${account}`;
  const block = renderBlock({
    prefix,
    user,
    key: settings.key,
    clusters,
    command: helperCommand(),
    matchArgs: [accountArgs, settings.env === 'prod' ? undefined : `--env ${settings.env}`].filter(Boolean).join(' ') || undefined,
    proxyArgs: accountArgs,
    agent: values.agent,
  });
  if (values.print) return (process.stdout.write(block), 0);

  const { sshConfigLink, sshConfig } = sshConfigPaths(values['ssh-config']);
  const conf = join(dirname(sshConfigLink), confFile(account));
  const oldConf = readIfExists(conf);
  const oldConfig = readSshConfig(sshConfig);
  const plan = planInclude(oldConfig, accountFiles(dirname(sshConfigLink), conf));

  if (values['dry-run']) {
    const diffs = [oldConf !== block ? replaceDiff(conf, oldConf, block) : '', plan.changed ? unifiedDiff(sshConfig, oldConfig, plan) : ''].join('');
    process.stdout.write(diffs || 'cscs-sa: nothing to change\n');
    return 0;
  }

  if (oldConf !== block) {
    write(conf, block, 0o600);
    process.stdout.write(`wrote ${conf}\n`);
  }
  if (plan.changed) {
    writeSshConfig(sshConfig, oldConfig, plan.text);
    process.stdout.write(`added the Include for it to ${sshConfig}${oldConfig ? ` (backup: ${sshConfig}.cscs-sa.bak)` : ''}\n`);
  }
  if (oldConf === block && !plan.changed) process.stdout.write('cscs-sa: nothing to change\n');
  if (!values['ssh-config'] && userInfo().homedir !== (process.env.HOME ?? userInfo().homedir)) {
    process.stderr.write(`cscs-sa: note: HOME is ${process.env.HOME}, but ssh reads ${sshConfigLink} (the password database's home)\n`);
  }
  return 0;
}

interface SshConfigPaths {
  /** The path named (--ssh-config, else ~/.ssh/config); account files go beside it. */
  sshConfigLink: string;
  /** The file edited: the link's target when it is a link (dotfiles). */
  sshConfig: string;
}

function sshConfigPaths(flag: string | undefined): SshConfigPaths {
  const sshConfigLink = flag ? expandHome(flag) : join(userInfo().homedir, '.ssh', 'config');
  const sshConfig = readIfExists(sshConfigLink) === undefined ? sshConfigLink : realpathSync(sshConfigLink);
  if (sshConfig !== sshConfigLink) process.stderr.write(`cscs-sa: ${sshConfigLink} is a link: editing ${sshConfig}\n`);
  return { sshConfigLink, sshConfig };
}

function readSshConfig(sshConfig: string): string {
  const text = readIfExists(sshConfig) ?? '';
  if (text.includes('\0')) throw new SetupRefusedError(`${sshConfig} is not a text file: not editing it`);
  return text;
}

function writeSshConfig(sshConfig: string, oldText: string, text: string): void {
  let mode = 0o600;
  if (oldText !== '') {
    mode = statSync(sshConfig).mode & 0o777;
    copyFileSync(sshConfig, `${sshConfig}.cscs-sa.bak`);
  }
  write(sshConfig, text, mode);
}

/**
 * The account files to include: those setup wrote beside the ssh config, plus `add`, minus
 * `omit`; the default account's first, then by name, so the block reads the same every time.
 */
function accountFiles(dir: string, add?: string, omit?: string): string[] {
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    // No folder yet: only the file being added.
  }
  const files = new Set(names.filter((name) => accountOfConfFile(name) !== undefined).map((name) => join(dir, name)));
  if (add) files.add(add);
  if (omit) files.delete(omit);
  const rank = (file: string) => (accountOfConfFile(file.slice(dir.length + 1)) === DEFAULT_ACCOUNT ? '' : file);
  return [...files].sort((a, b) => rank(a).localeCompare(rank(b)));
}

/** setup --remove: the account's Include out of the ssh config, then its file; the key pair stays. */
function remove(account: string, key: string, { sshConfigLink, sshConfig }: SshConfigPaths, dryRun = false): number {
  const dir = dirname(sshConfigLink);
  const conf = join(dir, confFile(account));
  const oldConf = readIfExists(conf);
  const oldConfig = readSshConfig(sshConfig);
  const plan = planInclude(oldConfig, accountFiles(dir, undefined, conf));
  if (dryRun) {
    const diffs = [plan.changed ? unifiedDiff(sshConfig, oldConfig, plan) : '', oldConf !== undefined ? `rm ${conf}\n` : ''].join('');
    process.stdout.write(diffs || 'cscs-sa: nothing to change\n');
    return 0;
  }
  if (plan.changed) {
    writeSshConfig(sshConfig, oldConfig, plan.text);
    process.stdout.write(`took the Include of ${conf} out of ${sshConfig} (backup: ${sshConfig}.cscs-sa.bak)\n`);
  }
  if (oldConf !== undefined) {
    try {
      rmSync(conf);
    } catch (err) {
      throw new LocalFileError(describeFsError(err, 'remove', conf));
    }
    process.stdout.write(`removed ${conf}\n`);
  }
  if (!plan.changed && oldConf === undefined) process.stdout.write('cscs-sa: nothing to change\n');
  else process.stdout.write(`the key pair ${key} of account ${account} stays: delete it by hand if the account is gone\n`);
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
