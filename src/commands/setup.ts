import { copyFileSync, lstatSync, readdirSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { userInfo } from 'node:os';
import { accountOfConfFile, confFile, DEFAULT_ACCOUNT, defaultKey, hostPrefix } from '../core/account.js';
import { expandHome, loadSettings, type Settings } from '../core/config.js';
import { recordSettings, writableConfigFile } from '../core/record.js';
import { CscsSaError, describeFsError, LocalFileError, UsageError } from '../base/errors.js';
import { makeFolders, writeFileAtomic } from '../base/fsutil.js';
import { unifiedDiff } from '../base/diff.js';
import { acceptApiKey } from '../refresh/apikey.js';
import { prepareKeyPair, refreshCertificate } from '../refresh/refresh.js';
import { inspect, keyPaths } from '../core/store.js';
import { dropPins, knownHostsName, mergePins, parseKnownHosts, unpinned } from '../ssh/knownhosts.js';
import { blockTargets, CLUSTERS, hostsCaught, JUMP_HOST, parseHosts, parseTargets, planInclude, renderBlock, SetupRefusedError } from '../ssh/sshconfig.js';
import { type FileRules, readCapped } from '../base/trust.js';
import { CONTROL_PERSIST, controlDir, controlDirProblem, prepareControlDir, sshConfigPath } from '../ssh/multiplex.js';
import { choicesLine, describeChanges, parseChoices, readIfExists, type SetupChoices, TEXT_RULES } from '../ssh/choices.js';
import { CRON_PATH, helperCommand } from '../ssh/helper.js';
import { atLeast, OLDEST, sshVersion, unknownTokens } from '../ssh/version.js';
import { parseCommandArgs } from './args.js';
import { closeMasters } from './close.js';

export const usage = `Usage: cscs-sa setup [--account NAME] [--user NAME] [--hosts LIST] [--key PATH] [--env ENV]
                     [--api-key-file FILE|-] [--agent] [--known-hosts FILE] [--trust-on-first-use]
                     [--host NAME=HOSTNAME[:PORT]] [--multiplex] [--ssh-config FILE] [--dry-run] [--print]
       cscs-sa setup [--account NAME] --remove|--purge [--ssh-config FILE] [--dry-run]

Sets up ssh for the service account: creates the key pair if it is missing (never replaces one),
writes the cscs-sa block to cscs-sa.conf beside your ssh config, and adds one Include line for
it, between marked lines, before the first Host or Match of the ssh config. The ssh config is
backed up (FILE.cscs-sa.bak) before it is changed.

setup keeps its choices: the block records what it was given (hosts, where they lead, login
name, burst mode, agent, trust on first use), and a later run starts from them, so a run
without flags changes nothing and a flag changes one choice (setup says which). --key, --env and
--api-key-file are settings that every command reads: setup records them in the config file
(~/.config/cscs-sa/config.json, created 0600 if missing). Booleans turn off with --no-NAME
(--no-multiplex).

With --account NAME, the same for another service account: hosts NAME-ela, NAME-clariden...,
key ~/.ssh/cscs-key-NAME, its block in cscs-sa-NAME.conf with an Include of its own; other
accounts' files stay as they are. --remove takes the account's file and Include out again and
keeps its key pair; --purge also removes the key pair, its certificate, the host keys pinned
for its hosts only, the API key file --api-key-file - stored, and the sockets' folder once no
account uses it.

Options:
      --account NAME      the service account (default sa; see cscs-sa match --help)
      --remove            take the account's block and its Include out (the key pair stays)
      --purge             --remove, and the key pair, certificate, pins and sockets with it
      --user NAME         the service account's login name (default CSCS_SA_USERNAME, else
                          the last setup's, else the principal of a freshly signed certificate)
      --hosts LIST        clusters behind NAME-ela, comma-separated: ${CLUSTERS.join(', ')} (any
                          case), or NAME=HOSTNAME[:PORT] for another (default the last setup's,
                          else all of them)
      --key PATH          private key (default ~/.ssh/cscs-key-NAME: cscs-key-sa, cscs-key-proj...)
      --env ENV           prod (default) or tds, the CSCS test environment's gateway
      --api-key-file FILE  use the API key in FILE (0600); - reads it from stdin (pasted, not
                          shown) into a 0600 file beside the config file
      --agent             load certificates into ssh-agent from the ProxyCommand (proxy --agent)
      --known-hosts FILE  pin the host keys in FILE (- for stdin; default the lines in
                          CSCS_SA_KNOWN_HOSTS) into cscs-sa.known_hosts, which the block names;
                          cscs-sa known-hosts prints them (it works before setup)
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
  -h, --help              this text

cscs-sa and node are named by absolute path in the block unless PATH=${CRON_PATH} (cron's) finds
them too: ssh runs them under the PATH of whatever started it.`;

const KNOWN_HOSTS_RULES: FileRules = { ...TEXT_RULES, error: UsageError, what: 'setup: --known-hosts', typeFix: 'pass a file of host key lines, or - for stdin' };

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

/** The host key lines to pin: --known-hosts FILE (- for stdin), else CSCS_SA_KNOWN_HOSTS; undefined for neither. */
function knownHostsSource(flag: string | undefined): { text: string; from: string } | undefined {
  if (flag === '-') return { text: readCapped(0, '-', KNOWN_HOSTS_RULES), from: 'stdin' };
  if (flag !== undefined) {
    const text = readIfExists(expandHome(flag), KNOWN_HOSTS_RULES);
    if (text === undefined) {
      throw new UsageError(`setup: --known-hosts ${flag}: no such file`, { fix: `write it first: cscs-sa known-hosts --hosts HOSTS > ${flag} (on a machine and network you trust)` });
    }
    return { text, from: flag };
  }
  const env = process.env.CSCS_SA_KNOWN_HOSTS;
  return env ? { text: env, from: 'CSCS_SA_KNOWN_HOSTS' } : undefined;
}

function checkUser(user: string): void {
  if (!/^[A-Za-z0-9._-]+$/.test(user)) throw new UsageError(`setup: "${user}" is not a login name`);
}

/**
 * The block for an account's settings and choices, as setup writes it (known-hosts renders the
 * same, into a temporary file): the record of the choices goes with it.
 */
export function accountBlock(settings: Settings, choices: SetupChoices, o: { sshDir: string; knownHosts: string; command: string[]; sockets?: string }): string {
  const { account, key, env } = settings;
  const accountArgs = account === DEFAULT_ACCOUNT ? [] : ['--account', account];
  return renderBlock({
    prefix: hostPrefix(account),
    user: choices.user,
    key,
    clusters: choices.clusters,
    targets: choices.targets,
    command: o.command,
    // match reads no flags of setup's: an account, key or environment other than the default goes on its line.
    matchArgs: [...accountArgs, ...(key === expandHome(defaultKey(account)) ? [] : ['-f', key]), ...(env === 'prod' ? [] : ['--env', env])],
    proxyArgs: accountArgs,
    agent: choices.agent,
    knownHosts: o.knownHosts,
    trustOnFirstUse: choices.trustOnFirstUse,
    overrides: join(o.sshDir, 'cscs-sa.overrides'),
    multiplex: o.sockets,
    record: choicesLine(choices),
  });
}

/** Shown in place of the login name by --dry-run and --print when nothing can tell it. */
export const PLACEHOLDER_USER = 'svc_account_name';

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

/**
 * The login name without --user: CSCS_SA_USERNAME (the default account's), what setup wrote
 * before, the "user" setting; undefined when only a certificate can tell.
 */
export function knownUser(account: string, choices: SetupChoices | undefined, settings: Settings): string | undefined {
  return (account === DEFAULT_ACCOUNT ? process.env.CSCS_SA_USERNAME : undefined) || choices?.user || settings.user;
}

/** An API key pasted on stdin: without echo from a terminal, a line; from a pipe, all of it. */
async function readPastedKey(): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) return readFileSync(0, 'utf8');
  process.stderr.write('cscs-sa: paste the API key (it is not shown), then Enter: ');
  stdin.setRawMode(true);
  try {
    return await new Promise<string>((resolve) => {
      let text = '';
      stdin.on('data', (chunk: Buffer) => {
        for (const ch of chunk.toString('utf8')) {
          if (ch === '\u0003') process.exit(130);
          if (ch === '\r' || ch === '\n' || ch === '\u0004') return resolve(text);
          text = ch === '\u007f' ? text.slice(0, -1) : text + ch;
        }
      });
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}

/** Where setup --api-key-file - stores a pasted key: beside the config file that names it. */
function storedApiKeyFile(account: string): string {
  return join(dirname(writableConfigFile()), account === DEFAULT_ACCOUNT ? 'api-key' : `api-key-${account}`);
}

/**
 * setup --api-key-file: a file already there is named as it is (readApiKey checks its owner and
 * mode at every use); `-` stores a pasted key in a 0600 file beside the config file. Either way
 * the config file names it as apiKeyFile, so that no one writes JSON by hand.
 */
async function storeApiKeyFile(account: string, flag: string): Promise<string[]> {
  let file = expandHome(flag);
  const lines: string[] = [];
  if (flag === '-') {
    const { value } = acceptApiKey(await readPastedKey(), 'stdin');
    file = storedApiKeyFile(account);
    write(file, `${value}\n`, 0o600);
    lines.push(`stored the API key in ${file} (0600)`);
  } else if (readIfExists(file) === undefined) {
    throw new UsageError(`setup: --api-key-file ${flag}: no such file`, { fix: 'name a file holding the API key (mode 0600), or - to paste the key' });
  }
  const { path, changed } = recordSettings(account, { apiKeyFile: file });
  if (changed) lines.push(`named it as apiKeyFile${account === DEFAULT_ACCOUNT ? '' : ` of account ${account}`} in ${path}`);
  return lines;
}

export async function run(args: string[]): Promise<number> {
  const { values } = parseCommandArgs('setup', args, {
    account: { type: 'string' },
    remove: { type: 'boolean' },
    purge: { type: 'boolean' },
    user: { type: 'string' },
    hosts: { type: 'string' },
    key: { type: 'string' },
    env: { type: 'string' },
    'api-key-file': { type: 'string' },
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
  const changes = !values['dry-run'] && !values.print;
  if (values['api-key-file'] !== undefined && !changes) throw new UsageError('setup: --api-key-file stores a file: not with --dry-run or --print');
  if (values['api-key-file'] === '-' && values['known-hosts'] === '-') throw new UsageError('setup: --api-key-file - and --known-hosts - both read stdin: give one of them a file');
  const paths = sshConfigPaths(values['ssh-config']);
  const { sshConfigLink, sshConfig } = paths;
  const sshDir = dirname(sshConfigLink);
  const settings0 = await loadSettings({ key: values.key, env: values.env, account: values.account });
  const { account } = settings0;
  const conf = join(sshDir, confFile(account));
  const oldConf = readIfExists(conf);
  const before = oldConf === undefined ? undefined : parseChoices(oldConf);
  if (values.remove || values.purge) {
    // The flags that shape a block mean nothing to taking one out: said, rather than ignored.
    const ignored = Object.keys(values).filter((name) => !['account', 'remove', 'purge', 'key', 'ssh-config', 'dry-run'].includes(name));
    const flag = values.purge ? '--purge' : '--remove';
    if (ignored.length > 0) throw new UsageError(`setup ${flag} takes no --${ignored.join(', --')}`, { fix: 'it takes --account, --ssh-config and --dry-run' });
    return remove(settings0, paths, before, { dryRun: values['dry-run'], purge: values.purge });
  }
  const prefix = hostPrefix(account);
  // What setup was given before is where it starts; a flag changes one choice.
  const listed = values.hosts === undefined ? undefined : parseHosts('setup', values.hosts, prefix);
  const clusters = listed?.clusters ?? before?.clusters ?? CLUSTERS;
  const names = [JUMP_HOST.name, ...clusters];
  const kept = Object.fromEntries(Object.entries(before?.targets ?? {}).filter(([name]) => names.includes(name)));
  const targets = { ...kept, ...listed?.targets, ...parseTargets(values.host, names, prefix) };
  const multiplex = values.multiplex ?? before?.multiplex ?? false;
  const agent = values.agent ?? before?.agent ?? false;
  const trustOnFirstUse = values['trust-on-first-use'] ?? before?.trustOnFirstUse ?? false;
  const sockets = multiplex ? controlDir(sshConfigLink) : undefined;
  const tooLong = sockets && controlDirProblem(sockets);
  if (tooLong) throw new SetupRefusedError(`setup --multiplex: ${tooLong}`, { fix: 'run setup with --ssh-config in a folder with a shorter path, or without --multiplex' });
  const knownHosts = join(sshDir, 'cscs-sa.known_hosts');
  const command = await helperCommand();
  const render = (settings: Settings, user: string) =>
    accountBlock(settings, { clusters, targets, user, multiplex, agent, trustOnFirstUse }, { sshDir, knownHosts, command, sockets });
  // Everything given is checked before anything (the key pair included) is created.
  await checkClient(render(settings0, PLACEHOLDER_USER));
  const hostNames = Object.values(blockTargets({ clusters, targets })).map(knownHostsName);
  const source = knownHostsSource(values['known-hosts']);
  const pinned = source && parseKnownHosts(source.text, hostNames, source.from);
  let user = values.user ?? knownUser(account, before, settings0);
  if (user !== undefined) checkUser(user);

  const said: string[] = [];
  let settings = settings0;
  // The certificate that tells the login name needs the API key: stored first.
  if (changes && values['api-key-file'] !== undefined) {
    said.push(...(await storeApiKeyFile(account, values['api-key-file'])));
    settings = await loadSettings({ key: values.key, env: values.env, account });
  }
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

  const block = render(settings, user);
  if (values.print) return (process.stdout.write(block), 0);
  if (changes) {
    // The key pair and the gateway are settings that every command reads (status, doctor, sign,
    // known-hosts): recorded where settings live, not only on the Match line.
    const recorded = { key: values.key === undefined ? undefined : settings.key, env: values.env === undefined ? undefined : settings.env };
    if (recorded.key !== undefined || recorded.env !== undefined) {
      const { path, changed } = recordSettings(account, recorded);
      if (changed) said.push(`recorded ${Object.entries(recorded).flatMap(([k, v]) => (v === undefined ? [] : [`${k} ${v}`])).join(', ')}${account === DEFAULT_ACCOUNT ? '' : ` of account ${account}`} in ${path}`);
    }
  }

  const oldConfig = readSshConfig(sshConfig);
  const plan = planInclude(oldConfig, accountFiles(sshDir, conf));
  const caught = hostsCaught(oldConfig, prefix, Object.keys(blockTargets({ clusters, targets })));
  if (caught.length > 0) {
    process.stderr.write(`cscs-sa: note: ${sshConfig} names ${caught.join(', ')}, which the ${prefix}* defaults of this block match too and come first (User, IdentityFile, ...): rename those hosts, or use another account name\n`);
  }
  const oldPins = readIfExists(knownHosts);
  const merged = pinned && mergePins(oldPins, pinned);
  const pins = merged?.text ?? oldPins;
  const newPins = merged !== undefined && merged.text !== oldPins;

  if (values['dry-run']) {
    const diffs = [unifiedDiff(conf, oldConf, block), newPins ? unifiedDiff(knownHosts, oldPins, pins!) : '', plan.changed ? unifiedDiff(sshConfig, oldConfig, plan.text) : ''].join('');
    process.stdout.write(diffs || 'cscs-sa: nothing to change\n');
    return 0;
  }

  for (const line of said) process.stdout.write(`${line}\n`);
  if (newPins) {
    write(knownHosts, pins!, 0o600);
    process.stdout.write(`pinned ${pinned!.length} host key(s) in ${knownHosts}\n`);
    for (const r of merged!.replaced) process.stdout.write(`host key of ${r.name} changed: ${r.old.join(', ')} -> ${r.new.join(', ')}\n`);
  }
  if (sockets) prepareControlDir(sockets);
  if (oldConf !== block) {
    write(conf, block, 0o600);
    const changed = before ? describeChanges(before, { clusters, targets, user, multiplex, agent, trustOnFirstUse }) : [];
    process.stdout.write(`wrote ${conf}${changed.length > 0 ? ` (${changed.join('; ')})` : ''}\n`);
  }
  if (plan.changed) {
    writeSshConfig(sshConfig, oldConfig, plan.text);
    process.stdout.write(`added the Include for it to ${sshConfig}${oldConfig ? ` (backup: ${sshConfig}.cscs-sa.bak)` : ''}\n`);
  }
  if (oldConf === block && !plan.changed && !newPins && said.length === 0) process.stdout.write('cscs-sa: nothing to change\n');
  if (trustOnFirstUse) {
    process.stderr.write('cscs-sa: warning: --trust-on-first-use: ssh accepts the first host key it is shown, also from a machine in the middle; pin the keys instead (cscs-sa known-hosts, setup --known-hosts)\n');
  } else {
    const missing = unpinned(pins, hostNames);
    const hosts = Object.entries(blockTargets({ clusters, targets })).filter(([, t]) => missing.includes(knownHostsName(t))).map(([name]) => name);
    if (missing.length === hostNames.length) {
      process.stderr.write(`cscs-sa: host keys are not pinned, so ssh stops with "Host key verification failed": run cscs-sa known-hosts on a trusted machine, then cscs-sa setup --known-hosts FILE (or CSCS_SA_KNOWN_HOSTS)\n`);
    } else if (missing.length > 0) {
      process.stderr.write(`cscs-sa: no pinned host key for ${hosts.map((h) => `${prefix}${h}`).join(', ')}, so ssh to ${hosts.length === 1 ? 'it' : 'them'} stops with "Host key verification failed": cscs-sa known-hosts --hosts ${hosts.filter((h) => h !== JUMP_HOST.name).join(',') || clusters.join(',')} prints the lines, setup --known-hosts FILE pins them\n`);
    }
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

function removeFile(path: string): void {
  try {
    rmSync(path, { recursive: true });
  } catch (err) {
    throw new LocalFileError(describeFsError(err, 'remove', path), { cause: err });
  }
  process.stdout.write(`removed ${path}\n`);
}

/** The known_hosts names of a block's hosts, lower case as ssh looks them up. */
function pinNames(choices: Pick<SetupChoices, 'clusters' | 'targets'>): string[] {
  return Object.values(blockTargets(choices)).map((t) => knownHostsName(t).toLowerCase());
}

/**
 * setup --remove: the account's Include out of the ssh config, then its file; the key pair stays.
 * --purge: also the key pair and certificate, the pinned host keys of its hosts that no other
 * account's block names, and the sockets' folder once no account is left.
 */
async function remove(settings: Settings, { sshConfigLink, sshConfig }: SshConfigPaths, choices: SetupChoices | undefined, { dryRun = false, purge = false }): Promise<number> {
  const { account, key } = settings;
  const dir = dirname(sshConfigLink);
  const conf = join(dir, confFile(account));
  const oldConf = readIfExists(conf);
  const oldConfig = readSshConfig(sshConfig);
  const others = accountFiles(dir, undefined, conf);
  const plan = planInclude(oldConfig, others);
  const knownHosts = join(dir, 'cscs-sa.known_hosts');
  const oldPins = purge ? readIfExists(knownHosts) : undefined;
  let pins: string | undefined;
  if (oldPins !== undefined) {
    // A block written before setup kept its choices had the default clusters.
    const theirs = others.flatMap((file) => pinNames(parseChoices(readIfExists(file) ?? '') ?? { clusters: [], targets: {} }));
    pins = dropPins(oldPins, pinNames(choices ?? { clusters: CLUSTERS, targets: {} }).filter((name) => !theirs.includes(name)));
  }
  const { certificate, publicKey } = keyPaths(key);
  const exists = (path: string) => lstatSync(path, { throwIfNoEntry: false }) !== undefined;
  // The key file setup stored from a paste is setup's to delete; a file the user named stays theirs.
  const storedKey = purge && settings.apiKeyFile === storedApiKeyFile(account) ? settings.apiKeyFile : undefined;
  const files = purge ? [certificate, publicKey, key, `${key}.failed`, ...(storedKey ? [storedKey] : []), ...(others.length === 0 ? [controlDir(sshConfigLink)] : [])].filter(exists) : [];
  if (dryRun) {
    const diffs = [
      plan.changed ? unifiedDiff(sshConfig, oldConfig, plan.text) : '',
      pins !== undefined && pins !== oldPins ? unifiedDiff(knownHosts, oldPins, pins) : '',
      ...[...(oldConf !== undefined ? [conf] : []), ...files].map((path) => `rm ${path}\n`),
    ].join('');
    process.stdout.write(diffs || 'cscs-sa: nothing to change\n');
    return 0;
  }
  if (plan.changed) {
    writeSshConfig(sshConfig, oldConfig, plan.text);
    process.stdout.write(`took the Include of ${conf} out of ${sshConfig} (backup: ${sshConfig}.cscs-sa.bak)\n`);
  }
  if (oldConf !== undefined) removeFile(conf);
  if (pins !== undefined && pins !== oldPins) {
    if (pins === '') removeFile(knownHosts);
    else {
      write(knownHosts, pins, 0o600);
      process.stdout.write(`took the host keys of ${account}'s hosts out of ${knownHosts} (those of other accounts' hosts stay)\n`);
    }
  }
  const sockets = controlDir(sshConfigLink);
  // Masters would keep their sessions (and the connection) for ControlPersist after their socket is gone.
  if (files.includes(sockets)) await closeMasters(sockets);
  for (const path of files) removeFile(path);
  if (storedKey) {
    const { path, changed } = recordSettings(account, { apiKeyFile: null });
    if (changed) process.stdout.write(`took apiKeyFile out of ${path}\n`);
  }
  if (!plan.changed && oldConf === undefined && files.length === 0 && pins === oldPins) process.stdout.write('cscs-sa: nothing to change\n');
  else if (!purge) process.stdout.write(`the key pair ${key} of account ${account} stays: setup --purge removes it too\n`);
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
