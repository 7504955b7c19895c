/**
 * doctor's checks of what ssh itself does for a host (src/doctor/route.ts): that `cscs-sa match` runs
 * for every hop, and that the key, login name, proxy, known host keys and ControlPath folder ssh
 * will use line up with it; and which line of a failed `ssh -v` explains the failure.
 */
import { printable } from '../core/certificate.js';
import { lstatSync, realpathSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { childEnv, runTool } from '../base/child.js';
import { loadSettings } from '../core/config.js';
import { MATCH_OPTIONS } from '../core/fastpath.js';
import { inspect, keyPaths, pairFileRules } from '../core/store.js';
import { modeText, ownedBy, readTrusted } from '../base/trust.js';
import { type Hop, option } from './route.js';

export interface Result {
  ok: boolean;
  /** Passes, but deserves attention: shown with its fix, not counted as a failure. */
  warn?: boolean;
  line: string;
  fix?: string;
}

export const pass = (line: string): Result => ({ ok: true, line });
export const fail = (line: string, fix: string): Result => ({ ok: false, line, fix });
export const warn = (line: string, fix: string): Result => ({ ok: true, warn: true, line, fix });

/** The line setup writes, for fixes that show what the Match line should look like. */
const MATCH_LINE = 'Match originalhost sa-* exec "cscs-sa match %n"';
const PIN_FIX = 'pin the host keys once from a trusted machine: cscs-sa known-hosts prints them, cscs-sa setup --known-hosts FILE stores them where ssh looks';

/**
 * A path as ssh opens it: ssh -G prints IdentityFile and CertificateFile as written, and ssh
 * expands `~` and %d from the password database (not $HOME), then the other tokens; then the
 * real path, so that two names of one file compare equal.
 */
function sshPath(path: string, hop: Hop): string {
  const { homedir, username, uid } = userInfo();
  const tokens: Record<string, string | undefined> = {
    '%': '%',
    d: homedir,
    u: username,
    i: String(uid),
    r: option(hop, 'user'),
    h: option(hop, 'hostname'),
    p: option(hop, 'port'),
    n: hop.name,
    l: hostname(),
    L: hostname().split('.')[0],
  };
  const expanded = path.replace(/^~(?=\/|$)/, homedir).replace(/%(.)/g, (all, token: string) => tokens[token] ?? all);
  try {
    return realpathSync(expanded);
  } catch {
    return expanded;
  }
}

/** Why ssh ran no `cscs-sa match` for a hop, from what ssh printed while reading its config. */
function whyNoMatch(hop: Hop): Result {
  const helper = hop.messages.find((l) => l.startsWith('cscs-sa:'));
  if (helper) return fail(`ssh runs cscs-sa match for ${hop.name}, which fails: ${helper.slice(9)}`, 'do what the message says');
  const shell = hop.messages.find((l) => /not found|No such file|Permission denied|cannot execute/.test(l));
  if (shell) return fail(`ssh's Match exec cannot start cscs-sa for ${hop.name}: ${shell}`, 'run cscs-sa setup, which names cscs-sa by absolute path');
  // One block per Match line ssh checked: "checking match for ...", then its verdicts.
  const blocks: string[][] = [];
  for (const line of hop.debug) {
    if (line.includes('checking match for')) blocks.push([line]);
    else blocks.at(-1)?.push(line);
  }
  for (const block of blocks) {
    if (!/checking match for '.*cscs-sa.*' host \S+ originally \S+$/.test(block[0]!)) continue;
    const verdict = block.map((l) => /^debug\d: (.+) line (\d+): not matched '(\w+) "(.*)"'/.exec(l)).find(Boolean);
    if (!verdict) {
      const command = block.map((l) => /Executing command: '(.*)'$/.exec(l)?.[1]).find(Boolean) ?? 'its Match exec';
      return fail(`ssh runs "${command}" for ${hop.name}, which did not answer doctor's probe: it is not this cscs-sa (an older one?)`, 'run cscs-sa setup, which names this cscs-sa by absolute path');
    }
    const [, file, line, criterion, value] = verdict;
    const where = `the Match line at ${file} line ${line}`;
    if (criterion === 'host' && value !== hop.name) {
      return fail(
        `${where} compares "${value}", the HostName set for ${hop.name} above it, so ssh never runs cscs-sa match for ${hop.name}`,
        `write it as ${MATCH_LINE} (cscs-sa setup does): Match originalhost compares the name you type`,
      );
    }
    if (criterion === 'exec') {
      const status = block.map((l) => /command returned status (\d+)/.exec(l)?.[1]).find(Boolean);
      return fail(`${where} runs a command for ${hop.name} that exits ${status ?? 'non-zero'} without running cscs-sa match`, 'run cscs-sa setup, which names cscs-sa by absolute path');
    }
    return fail(`${where} does not match ${hop.name} (${criterion} "${value}")`, `make it match ${hop.name}, as ${MATCH_LINE} does (cscs-sa setup writes it)`);
  }
  return fail(
    `ssh runs no cscs-sa match for ${hop.name}: its config has no Match line that applies`,
    `run cscs-sa setup, or add ${MATCH_LINE} after your Host blocks (an Include of the cscs-sa block must come before any Host or Match line)`,
  );
}

/** The key a `cscs-sa match ARGS` would refresh, as match itself computes it; undefined if match would refuse. */
async function matchKey(args: string[]): Promise<{ key?: string; error?: string }> {
  try {
    const { values } = parseArgs({ args, options: MATCH_OPTIONS, allowPositionals: true, strict: true });
    return { key: (await loadSettings({ key: values.key, env: values.env, account: values.account })).key };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/** Names under which ssh looks the hop's host key up: HostKeyAlias as is, else `[host]:port` off port 22. */
function hostKeyName(hop: Hop): string {
  const alias = option(hop, 'hostkeyalias');
  if (alias && alias !== 'none') return alias;
  const host = option(hop, 'hostname') ?? hop.name;
  const port = option(hop, 'port') ?? '22';
  return port === '22' ? host : `[${host}]:${port}`;
}

/**
 * The files of a list option: ssh -G joins them with spaces, unquoted, so a path with a space
 * (setup quotes one) is taken back as the longest run of words that names something on disk.
 */
function fileList(value: string): string[] {
  const words = value.split(' ').filter(Boolean);
  const files: string[] = [];
  for (let start = 0, end = words.length; start < words.length; start = end, end = words.length) {
    while (end > start + 1 && !lstatSync(words.slice(start, end).join(' '), { throwIfNoEntry: false })) end--;
    files.push(words.slice(start, end).join(' '));
  }
  return files;
}

async function checkHostKey(hop: Hop): Promise<Result> {
  const name = hostKeyName(hop);
  const files = ['userknownhostsfile', 'globalknownhostsfile'].flatMap((o) => fileList(option(hop, o) ?? '')).filter((f) => f !== '/dev/null' && f !== 'none');
  let found: string | undefined;
  for (const file of files) {
    if (!lstatSync(file, { throwIfNoEntry: false })) continue;
    const r = await runTool('ssh-keygen', ['-F', name, '-f', file]);
    if (r.code === 0 && r.stdout.trim() !== '') {
      found = file;
      break;
    }
  }
  const command = option(hop, 'knownhostscommand');
  if (!found && command && command !== 'none') return warn(`host keys for ${name} (${hop.name}) come from KnownHostsCommand ${command}, which doctor does not run`, 'make sure it prints the host keys, or pin them: cscs-sa known-hosts, cscs-sa setup --known-hosts FILE');
  const strict = option(hop, 'stricthostkeychecking') ?? 'ask';
  const batch = option(hop, 'batchmode') === 'yes';
  if (strict === 'false') return warn(`ssh accepts any host key for ${hop.name} (StrictHostKeyChecking no): whoever sits on the path can pose as ${name}`, `${PIN_FIX}, with StrictHostKeyChecking yes`);
  if (found) return pass(`host key for ${name} (${hop.name}) is pinned in ${found}`);
  const where = files.length ? files.join(', ') : 'no known_hosts file (UserKnownHostsFile /dev/null)';
  if (strict === 'accept-new') return warn(`no host key for ${name} (${hop.name}) in ${where}: ssh trusts the first key it sees (StrictHostKeyChecking accept-new)`, PIN_FIX);
  if (strict === 'ask' && !batch) return warn(`no host key for ${name} (${hop.name}) in ${where}: ssh will ask whether to trust it`, PIN_FIX);
  return fail(`no host key for ${name} (${hop.name}) in ${where}: ssh fails "Host key verification failed"`, PIN_FIX);
}

/** sshd's default MaxAuthTries: after that many refused keys it ends the connection. */
const MAX_AUTH_TRIES = 6;

/**
 * Without IdentitiesOnly yes, ssh offers ssh-agent's keys before the key files (pubkey_prepare()
 * in sshconnect2.c), and an agent's keys in the order they were added: sshd counts every key it
 * refuses, so MaxAuthTries other keys end the login before the certificate is offered.
 */
async function checkAgentKeys(hop: Hop, key: string): Promise<Result | undefined> {
  if (option(hop, 'identitiesonly') === 'yes') return undefined;
  const agent = option(hop, 'identityagent');
  if (agent === 'none') return undefined;
  const sock = agent && !/^\$?SSH_AUTH_SOCK$/.test(agent) ? sshPath(agent, hop) : process.env.SSH_AUTH_SOCK;
  if (!sock) return undefined;
  const r = await runTool('ssh-add', ['-L'], { ...childEnv(), SSH_AUTH_SOCK: sock }, 5_000);
  if (r.code !== 0) return undefined;
  const blob = (path: string, what: string) => {
    try {
      return readTrusted(path, pairFileRules(what))?.text.split(/\s+/)[1];
    } catch {
      return undefined;
    }
  };
  const ours = [blob(keyPaths(key).publicKey, 'public key'), blob(keyPaths(key).certificate, 'certificate')];
  const others = r.stdout.split('\n').filter((l) => l.trim() !== '' && !ours.includes(l.split(/\s+/)[1]));
  if (others.length < MAX_AUTH_TRIES) return undefined;
  return fail(
    `ssh offers the ${others.length} other keys of ssh-agent before the certificate for ${hop.name} (IdentitiesOnly ${option(hop, 'identitiesonly') ?? 'no'}): sshd stops after ${MAX_AUTH_TRIES} failed keys (MaxAuthTries), "Too many authentication failures"`,
    'hold fewer keys in ssh-agent, or set "IdentitiesOnly yes" for sa-* above anything that sets it to no (cscs-sa setup without --agent writes it)',
  );
}

function checkControlPath(hop: Hop): Result | undefined {
  const master = option(hop, 'controlmaster');
  const path = option(hop, 'controlpath');
  if (!master || master === 'false' || !path || path === 'none') return undefined;
  const dir = dirname(path);
  const stats = lstatSync(dir, { throwIfNoEntry: false });
  if (!stats) return fail(`ControlPath folder ${dir} of ${hop.name} does not exist: ssh cannot start a master`, `mkdir -m 700 ${dir}`);
  if (!stats.isDirectory()) return fail(`ControlPath folder ${dir} of ${hop.name} is not a folder`, `remove it, then mkdir -m 700 ${dir}`);
  if (!ownedBy(stats, 'us')) return fail(`ControlPath folder ${dir} of ${hop.name} belongs to another user, who can reach its sockets`, 'point ControlPath into a folder of your own (cscs-sa setup)');
  if ((stats.mode & 0o777) !== 0o700) return fail(`ControlPath folder ${dir} of ${hop.name} has mode ${modeText(stats)}: its sockets log in without a key`, `chmod 700 ${dir}`);
  return pass(`ControlPath folder ${dir} (0700)`);
}

/** Every check of one hop, then of the hop it jumps through, in the order ssh connects. */
export async function checkRoute(hop: Hop): Promise<Result[]> {
  const before = hop.jump ? await checkRoute(hop.jump) : [];
  if (hop.failed) return [...before, fail(`ssh -G ${hop.name} failed: ${hop.failed}`, 'fix the ssh config it names')];
  const results: Result[] = [];
  const ran = await Promise.all(hop.matches.map((args) => matchKey(args)));
  const keys = [...new Set(ran.flatMap((r) => (r.key ? [r.key] : [])))];
  const refused = ran.find((r) => r.error);
  if (hop.matches.length === 0) results.push(whyNoMatch(hop));
  else if (refused) results.push(fail(`ssh runs cscs-sa match for ${hop.name}, which refuses: ${refused.error}`, 'run cscs-sa setup, which writes a Match line match accepts'));
  else results.push(pass(`ssh runs cscs-sa match for ${hop.name} (key ${keys.join(', ')})`));

  const identities = (hop.options.get('identityfile') ?? []).map((p) => sshPath(p, hop));
  const key = keys.find((k) => identities.includes(sshPath(k, hop)));
  if (keys.length > 0 && !key) {
    results.push(fail(`ssh uses ${identities.join(', ') || 'no IdentityFile'} for ${hop.name}, not ${keys.join(', ')}, the key cscs-sa match refreshes`, `set "IdentityFile ${keys[0]}" in Host sa-* (cscs-sa setup)`));
  }
  const certificates = (hop.options.get('certificatefile') ?? []).map((p) => sshPath(p, hop));
  if (key && certificates.length > 0 && !certificates.includes(sshPath(keyPaths(key).certificate, hop))) {
    results.push(fail(`ssh offers certificate ${certificates.join(', ')} for ${hop.name}, not ${keyPaths(key).certificate}, the one cscs-sa match refreshes`, `set "CertificateFile ${keyPaths(key).certificate}" in Host sa-* (cscs-sa setup)`));
  }
  const user = option(hop, 'user') ?? '';
  const principals = key ? inspect(keyPaths(key), 0).certificate?.principals : undefined;
  if (principals && principals.length > 0 && !principals.includes(user)) {
    results.push(fail(`ssh logs in to ${hop.name} as "${user}", which the certificate does not name (principals: ${principals.map(printable).join(', ')})`, `set "User ${printable(principals[0]!)}" in Host sa-*`));
  } else if (!principals && user === userInfo().username) {
    results.push(fail(`ssh logs in to ${hop.name} as "${user}", your local name`, "set User to the service account's login name in Host sa-* (cscs-sa setup)"));
  }

  const agentKeys = key && (await checkAgentKeys(hop, key));
  if (agentKeys) results.push(agentKeys);

  const proxy = option(hop, 'proxycommand');
  const route = hop.jump ? `ProxyJump ${option(hop, 'proxyjump')}` : proxy;
  if (!hop.jump && !(proxy && /cscs-sa\S*\s+proxy\b/.test(proxy))) {
    results.push(fail(`ssh connects to ${hop.name} ${proxy ? `through "${proxy}"` : 'directly'}, not through cscs-sa proxy or a jump host that uses it`, 'set "ProxyCommand cscs-sa proxy %h %p" for the jump host and "ProxyJump sa-ela" for the clusters (cscs-sa setup)'));
  }
  if (results.every((r) => r.ok)) {
    results.push(pass(`ssh config: ${hop.name} → ${option(hop, 'hostname')}:${option(hop, 'port')} as ${user}, key ${key ?? '?'}, via ${route}`));
  }
  results.push(await checkHostKey(hop));
  const control = checkControlPath(hop);
  if (control) results.push(control);
  return [...before, ...results];
}

/** What people see of a failed ssh: the lines that are not debug output. */
function plainLines(stderr: string): string[] {
  return stderr.split(/\r?\n/).filter((l) => l.trim() !== '' && !/^(debug\d|OpenSSH_)/.test(l));
}

const CHANGED_FIX = 'the host key differs from the pinned one: confirm the new key with CSCS, then pin it again (cscs-sa known-hosts, cscs-sa setup --known-hosts FILE)';

/** Lines that explain a failed ssh, most telling first (a jump host's reason beats the outer ssh's last line). */
const EXPLANATIONS: [RegExp, string][] = [
  [/^cscs-sa: /, 'do what the cscs-sa line says (match and proxy run inside ssh)'],
  [/Host key for .* has changed/, CHANGED_FIX],
  [/REMOTE HOST IDENTIFICATION HAS CHANGED/, CHANGED_FIX],
  [/host key is known for|Host key verification failed/, PIN_FIX],
  [/Permission denied \(/, 'the server refused the login: User must be a principal of the certificate and the certificate fresh (cscs-sa status shows both), for the key ssh offers (IdentityFile)'],
  [/Too many authentication failures/, 'ssh offered other keys first: set "IdentitiesOnly yes" in Host sa-* (cscs-sa setup)'],
  [/Connection refused/, 'nothing accepts connections there: check HostName and Port (ssh -G HOST)'],
  [/Could not resolve hostname|Name or service not known|Temporary failure in name resolution/, 'the host name does not resolve: check HostName and DNS'],
  [/timed out/i, 'no answer: check the network, a firewall or VPN, and HostName and Port'],
  [/Killed by signal/, 'a process of the connection was killed: run ssh -v HOST true to see which'],
];

/** The line of a failed `ssh -v` that explains the failure, and what to do about it. */
export function explainSshFailure(stderr: string): { line: string; fix: string } {
  const lines = plainLines(stderr);
  for (const [pattern, fix] of EXPLANATIONS) {
    const line = lines.find((l) => pattern.test(l));
    if (line) return { line: line.trim(), fix };
  }
  return { line: lines.at(-1)?.trim() ?? 'no message', fix: 'run ssh -v HOST true to see more' };
}
