import { copyFileSync, readdirSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { userInfo } from 'node:os';
import { accountOfConfFile, confFile, DEFAULT_ACCOUNT, defaultKey, hostPrefix } from '../core/account.js';
import { foundByShell } from '../base/child.js';
import { expandHome, loadSettings, type Settings } from '../core/config.js';
import { CscsSaError, describeFsError, LocalFileError, UsageError } from '../base/errors.js';
import { makeFolders, writeFileAtomic } from '../base/fsutil.js';
import { prepareKeyPair, refreshCertificate } from '../refresh/refresh.js';
import { inspect, keyPaths, readText } from '../core/store.js';
import { knownHostsName, mergePins, parseKnownHosts } from '../ssh/knownhosts.js';
import { blockTargets, CLUSTERS, hostsCaught, JUMP_HOST, parseHosts, parseTargets, planInclude, renderBlock, replaceDiff, SetupRefusedError, unifiedDiff } from '../ssh/sshconfig.js';
import { CONTROL_PERSIST, controlDir, controlDirProblem, prepareControlDir, sshConfigPath } from '../ssh/multiplex.js';
import { atLeast, OLDEST, sshVersion, unknownTokens } from '../ssh/version.js';
import { parseCommandArgs } from './args.js';

export const usage = `Usage: cscs-sa setup [--account NAME] [--user NAME] [--hosts LIST] [--key PATH] [--env ENV]
                     [--agent] [--known-hosts FILE] [--trust-on-first-use] [--host NAME=HOSTNAME[:PORT]]
                     [--multiplex] [--ssh-config FILE] [--dry-run] [--print]
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
      --known-hosts FILE  pin the host keys in FILE (- for stdin; default the lines in
                          CSCS_SA_KNOWN_HOSTS) into cscs-sa.known_hosts, which the block names;
                          cscs-sa known-hosts prints them
      --trust-on-first-use  accept and record unknown host keys (StrictHostKeyChecking
                          accept-new) instead of refusing them: open to a machine in the middle
      --host NAME=HOSTNAME[:PORT]  lead sa-HOST (NAME-HOST) to HOSTNAME (and PORT) instead of the CSCS host;
                          repeatable. Other settings go into cscs-sa.overrides, which the block
                          includes first and setup never writes
      --multiplex         burst mode: commands share one connection per host (ControlMaster) for
                          up to ${CONTROL_PERSIST} s after the last one; the certificate is still kept
                          fresh for any ssh that does not use it; sockets in cscs-sa-cm beside the
                          ssh config; cscs-sa close ends them
      --ssh-config FILE   the ssh config to add the Include to (default ~/.ssh/config of the
                          password database's home, which is the one ssh reads)
      --dry-run           show the changes as a diff and change nothing
      --print             print the cscs-sa block and change nothing
  -h, --help              this text`;

/** Where `$SHELL -c` finds NAME, resolved through links; undefined when it does not. */
async function shellFinds(name: string): Promise<string | undefined> {
  const { path } = await foundByShell(name);
  try {
    return path && realpathSync(path);
  } catch {
    return undefined;
  }
}

/** How ssh's `$SHELL -c` should start cscs-sa: by name when that finds this very program, else by absolute paths. */
async function helperCommand(): Promise<string[]> {
  const script = realpathSync(process.argv[1]!);
  // npx runs from a cache it may clean; nvm's node may be missing from a non-interactive shell.
  const ephemeral = script.includes('/_npx/');
  if (ephemeral) process.stderr.write(`cscs-sa: warning: ssh_config will name ${script} in npx's cache, which npm may clean: install cscs-sa (README: Install) and run setup again\n`);
  if (!ephemeral && (await shellFinds('cscs-sa')) === script && (await shellFinds('node'))) return ['cscs-sa'];
  return [process.execPath, script];
}

/**
 * The block must parse on the ssh that will read it: an old client stops at a token it does not
 * expand in Match exec, for every host. Asked of `ssh -V`; without an OpenSSH there, the block
 * is written for the oldest supported client.
 */
async function checkClient(block: string): Promise<void> {
  const version = await sshVersion();
  if (!version) {
    process.stderr.write(`cscs-sa: note: ssh -V names no OpenSSH client here: the block is written for OpenSSH ${OLDEST.text} or newer\n`);
    return;
  }
  if (!atLeast(version, OLDEST.major, OLDEST.minor)) throw new SetupRefusedError(`OpenSSH ${version.text} is too old for the cscs-sa block (Include, ProxyJump)`, { fix: `install OpenSSH ${OLDEST.text} or newer (nothing was changed)` });
  for (const [, command] of block.matchAll(/^Match .* exec "(.*)"$/gm)) {
    const unknown = unknownTokens(command!, version);
    if (unknown.length > 0) throw new SetupRefusedError(`OpenSSH ${version.text} does not expand ${unknown.join(' ')} in Match exec, which would stop every ssh`, { fix: 'report this as a bug of cscs-sa (nothing was changed)' });
  }
}

function readIfExists(path: string): string | undefined {
  try {
    return readText(path);
  } catch (err) {
    throw new LocalFileError(describeFsError(err, 'read', path), { cause: err });
  }
}

/** The host key lines to pin: --known-hosts FILE (- for stdin), else CSCS_SA_KNOWN_HOSTS; undefined for neither. */
function knownHostsSource(flag: string | undefined): { text: string; from: string } | undefined {
  if (flag === '-') return { text: readFileSync(0, 'utf8'), from: 'stdin' };
  if (flag !== undefined) {
    const text = readIfExists(expandHome(flag));
    if (text === undefined) throw new UsageError(`setup: --known-hosts ${flag}: no such file`);
    return { text, from: flag };
  }
  const env = process.env.CSCS_SA_KNOWN_HOSTS;
  return env ? { text: env, from: 'CSCS_SA_KNOWN_HOSTS' } : undefined;
}

function checkUser(user: string): void {
  if (!/^[A-Za-z0-9._-]+$/.test(user)) throw new UsageError(`setup: "${user}" is not a login name`);
}

/** Shown in place of the login name by --dry-run and --print when nothing can tell it. */
const PLACEHOLDER_USER = 'svc_account_name';

/** Learns the login name from a fresh certificate; a failure keeps its own exit code and fix. */
async function userFromCertificate(settings: Settings): Promise<string> {
  const { state } = await refreshCertificate(settings).catch((err: unknown) => {
    if (!(err instanceof CscsSaError)) throw err;
    // What failed leads, with its own fix, exit code and cause; --user is the way around it, not the fix.
    const around = 'or pass --user NAME (setup needs a certificate only to learn the login name)';
    err.fix = err.fix ? `${err.fix}; ${around}` : `then run setup again, ${around}`;
    throw err;
  });
  const user = state.certificate?.principals[0];
  if (!user) throw new UsageError('setup: the certificate names no principal', { fix: 'pass --user NAME' });
  return user;
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
    'known-hosts': { type: 'string' },
    'trust-on-first-use': { type: 'boolean' },
    host: { type: 'string', multiple: true },
    multiplex: { type: 'boolean' },
    'ssh-config': { type: 'string' },
    'dry-run': { type: 'boolean' },
    print: { type: 'boolean' },
  }, []);
  if (values.help) return (process.stdout.write(`${usage}\n`), 0);
  const settings = await loadSettings({ key: values.key, env: values.env, account: values.account });
  const { account } = settings;
  const paths = sshConfigPaths(values['ssh-config']);
  if (values.remove) {
    // The flags that shape a block mean nothing to taking one out: said, rather than ignored.
    const ignored = Object.keys(values).filter((name) => !['account', 'remove', 'key', 'ssh-config', 'dry-run'].includes(name));
    if (ignored.length > 0) throw new UsageError(`setup --remove takes no --${ignored.join(', --')}`, { fix: 'it takes --account, --ssh-config and --dry-run' });
    return remove(account, settings.key, paths, values['dry-run']);
  }
  const prefix = hostPrefix(account);
  const clusters = parseHosts('setup', values.hosts, prefix);
  const targets = parseTargets(values.host, [JUMP_HOST.name, ...clusters], prefix);
  const changes = !values['dry-run'] && !values.print;
  const { sshConfigLink, sshConfig } = paths;
  const sshDir = dirname(sshConfigLink);
  const sockets = values.multiplex ? controlDir(sshConfigLink) : undefined;
  const tooLong = sockets && controlDirProblem(sockets);
  if (tooLong) throw new SetupRefusedError(`setup --multiplex: ${tooLong}`, { fix: 'run setup with --ssh-config in a folder with a shorter path, or without --multiplex' });
  const knownHosts = join(sshDir, 'cscs-sa.known_hosts');
  const command = await helperCommand();
  const accountArgs = account === DEFAULT_ACCOUNT ? [] : ['--account', account];
  const render = (user: string) =>
    renderBlock({
      prefix,
      user,
      key: settings.key,
      clusters,
      targets,
      command,
      // match reads no flags of setup's: an account, key or environment other than the default goes on its line.
      matchArgs: [...accountArgs, ...(settings.key === expandHome(defaultKey(account)) ? [] : ['-f', settings.key]), ...(settings.env === 'prod' ? [] : ['--env', settings.env])],
      proxyArgs: accountArgs,
      agent: values.agent,
      knownHosts,
      trustOnFirstUse: values['trust-on-first-use'],
      overrides: join(sshDir, 'cscs-sa.overrides'),
      multiplex: sockets,
    });
  // Everything given is checked before anything (the key pair included) is created.
  await checkClient(render(PLACEHOLDER_USER));
  const hostNames = Object.values(blockTargets({ clusters, targets })).map(knownHostsName);
  const source = knownHostsSource(values['known-hosts']);
  const pinned = source && parseKnownHosts(source.text, hostNames, source.from);
  // CSCS_SA_USERNAME names the default account's login; another account's is its own setting.
  let user = values.user ?? (account === DEFAULT_ACCOUNT ? process.env.CSCS_SA_USERNAME : undefined) ?? settings.user;
  if (user !== undefined) checkUser(user);
  if (!user && !changes) {
    // A dry run creates no key and fetches nothing: only a certificate already there can tell.
    user = inspect(keyPaths(settings.key), 0).certificate?.principals[0];
    if (!user) {
      user = PLACEHOLDER_USER;
      process.stderr.write(`cscs-sa: note: the login name is unknown (no --user, CSCS_SA_USERNAME or certificate): shown as ${PLACEHOLDER_USER}\n`);
    }
  } else if (!user) {
    user = await userFromCertificate(settings);
  } else if (changes) {
    await prepareKeyPair(settings);
  }
  checkUser(user);

  const block = render(user);
  if (values.print) return (process.stdout.write(block), 0);

  const conf = join(sshDir, confFile(account));
  const oldConf = readIfExists(conf);
  const oldConfig = readSshConfig(sshConfig);
  const plan = planInclude(oldConfig, accountFiles(sshDir, conf));
  const caught = hostsCaught(oldConfig, prefix, Object.keys(blockTargets({ clusters, targets })));
  if (caught.length > 0) {
    process.stderr.write(`cscs-sa: note: ${sshConfig} names ${caught.join(', ')}, which the ${prefix}* defaults of this block match too and come first (User, IdentityFile, ...): rename those hosts, or use another account name\n`);
  }
  const oldPins = readIfExists(knownHosts);
  const pins = pinned && mergePins(oldPins, pinned);
  const newPins = pins !== undefined && pins !== oldPins;

  if (values['dry-run']) {
    const diffs = [
      oldConf !== block ? replaceDiff(conf, oldConf, block) : '',
      newPins ? replaceDiff(knownHosts, oldPins, pins) : '',
      plan.changed ? unifiedDiff(sshConfig, oldConfig, plan) : '',
    ].join('');
    process.stdout.write(diffs || 'cscs-sa: nothing to change\n');
    return 0;
  }

  if (newPins) {
    write(knownHosts, pins, 0o600);
    process.stdout.write(`pinned ${pinned!.length} host key(s) in ${knownHosts}\n`);
  }
  if (sockets) prepareControlDir(sockets);
  if (oldConf !== block) {
    write(conf, block, 0o600);
    process.stdout.write(`wrote ${conf}\n`);
  }
  if (plan.changed) {
    writeSshConfig(sshConfig, oldConfig, plan.text);
    process.stdout.write(`added the Include for it to ${sshConfig}${oldConfig ? ` (backup: ${sshConfig}.cscs-sa.bak)` : ''}\n`);
  }
  if (oldConf === block && !plan.changed && !newPins) process.stdout.write('cscs-sa: nothing to change\n');
  if (values['trust-on-first-use']) {
    process.stderr.write('cscs-sa: warning: --trust-on-first-use: ssh accepts the first host key it is shown, also from a machine in the middle; pin the keys instead (cscs-sa known-hosts, setup --known-hosts)\n');
  } else if (!(pins ?? oldPins ?? '').trim()) {
    process.stderr.write(`cscs-sa: host keys are not pinned, so ssh stops with "Host key verification failed": run cscs-sa known-hosts on a trusted machine, then cscs-sa setup --known-hosts FILE (or CSCS_SA_KNOWN_HOSTS)\n`);
  }
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
  const sshConfigLink = sshConfigPath(flag);
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
      throw new LocalFileError(describeFsError(err, 'remove', conf), { cause: err });
    }
    process.stdout.write(`removed ${conf}\n`);
  }
  if (!plan.changed && oldConf === undefined) process.stdout.write('cscs-sa: nothing to change\n');
  else process.stdout.write(`the key pair ${key} of account ${account} stays: delete it by hand if the account is gone\n`);
  return 0;
}

function write(path: string, text: string, mode: number): void {
  try {
    makeFolders(dirname(path), 0o700);
    writeFileAtomic(path, text, mode);
  } catch (err) {
    throw new LocalFileError(describeFsError(err, 'write', path), { cause: err });
  }
}
