/**
 * The cscs-sa block for ssh_config and its one Include line in the user's ~/.ssh/config.
 * Pure functions over text: the setup command does the reading, checking and writing.
 */
import { BEGIN, END } from '../core/account.js';
import { errorKind, ExitCode, UsageError } from '../base/errors.js';
import { freshCheck } from './freshcheck.js';
import { multiplexLines } from './multiplex.js';
import { configWord, sshCommand } from './lex.js';
import { didYouMean } from '../base/suggest.js';
import { keyPaths } from '../core/store.js';

export { BEGIN, END };

/** The CSCS hosts: ela is the jump host; the clusters sit behind it. */
export const JUMP_HOST = { name: 'ela', hostName: 'ela.cscs.ch' };
export const CLUSTERS = ['clariden', 'daint', 'santis', 'eiger', 'bristen'];

/** A config that setup will not edit, with what to do instead. */
export class SetupRefusedError extends errorKind('SetupRefusedError', ExitCode.config, 'CSCS_SA_ERR_SETUP_REFUSED') {}

/** NAME=HOSTNAME[:PORT]: a host of the block led to HOSTNAME (and PORT) instead of its CSCS name. */
export function parseTarget(spec: string, flag: string): [string, Target] {
  const m = /^([a-z0-9][a-z0-9-]*)=([A-Za-z0-9][A-Za-z0-9.-]*)(?::(\d{1,5}))?$/i.exec(spec);
  const port = m?.[3] === undefined ? undefined : Number(m[3]);
  if (!m || (port !== undefined && (port < 1 || port > 65535))) throw new UsageError(`${flag} "${spec}" is not NAME=HOSTNAME[:PORT] (e.g. clariden=clariden.alps.cscs.ch:22)`);
  // ssh lowercases HostName, and looks host keys up (and known-hosts prints) by that name.
  const hostName = m[2]!.toLowerCase();
  return [m[1]!.toLowerCase(), port === undefined ? { hostName } : { hostName, port }];
}

/**
 * --hosts LIST: the clusters behind the jump host, by the names CSCS gives them (any case, with
 * or without the prefix), or NAME=HOSTNAME[:PORT] for one it does not know. Anything else is a
 * typo that would silently take a host out of the block, so it is refused with the closest name.
 */
export function parseHosts(command: string, list: string, prefix: string): { clusters: string[]; targets: Record<string, Target> } {
  const clusters: string[] = [];
  const targets: Record<string, Target> = {};
  const flag = `${command}: --hosts`;
  for (const raw of list.split(',').map((h) => h.trim())) {
    if (raw === '') continue;
    const spec = raw.toLowerCase().startsWith(prefix) ? raw.slice(prefix.length) : raw;
    if (spec.includes('=')) {
      const [name, target] = parseTarget(spec, flag);
      if (name === JUMP_HOST.name) throw new UsageError(`${flag}: ${name} is the jump host, not a cluster`, { fix: `lead it elsewhere with --host ${name}=HOSTNAME[:PORT]` });
      targets[name] = target;
      clusters.push(name);
      continue;
    }
    const name = spec.toLowerCase();
    if (name === JUMP_HOST.name) throw new UsageError(`${flag}: ${name} is the jump host, always in the block: --hosts names the clusters behind it`, { fix: `e.g. --hosts ${CLUSTERS[0]}` });
    if (!CLUSTERS.includes(name)) {
      const meant = didYouMean(name, CLUSTERS);
      throw new UsageError(`${flag}: "${raw}" is not a CSCS cluster (${CLUSTERS.join(', ')})`, {
        fix: meant ? `did you mean ${meant}? (a cluster of another name: NAME=HOSTNAME[:PORT])` : 'for a cluster of another name, write NAME=HOSTNAME[:PORT]',
      });
    }
    clusters.push(name);
  }
  if (clusters.length === 0) throw new UsageError(`${flag} "${list}" names no cluster`, { fix: `name at least one: ${CLUSTERS.join(', ')}` });
  return { clusters: [...new Set(clusters)], targets };
}

/** Where a host of the block leads: HostName and, when not 22, Port. */
export interface Target {
  hostName: string;
  port?: number;
}

/** --host NAME=HOSTNAME[:PORT], for hosts of the block only. */
export function parseTargets(specs: string[] | undefined, names: string[], prefix: string): Record<string, Target> {
  const targets: Record<string, Target> = {};
  for (const raw of specs ?? []) {
    const [name, target] = parseTarget(raw.toLowerCase().startsWith(prefix) ? raw.slice(prefix.length) : raw, 'setup: --host');
    if (!names.includes(name)) throw new UsageError(`setup: --host names "${name}", which is not a host of the block (${names.join(', ')})`);
    targets[name] = target;
  }
  return targets;
}

export interface BlockOptions {
  /** Host prefix of the account (src/core/account.ts hostPrefix): `sa-` for the default account. */
  prefix: string;
  user: string;
  key: string;
  /** Cluster names, without the prefix. */
  clusters: string[];
  /** How ssh's `$SHELL -c` starts cscs-sa: `['cscs-sa']`, or the absolute paths of node and the script. */
  command: string[];
  /** Extra arguments for match (e.g. `['--env', 'tds']`, `['-f', KEY]`), quoted for the shell here. */
  matchArgs?: string[];
  /** Extra arguments for proxy when it loads the agent (`--account NAME`). */
  proxyArgs?: string[];
  /** Load certificates into ssh-agent from the ProxyCommand (proxy --agent). */
  agent?: boolean;
  /** The pinned host keys (UserKnownHostsFile). */
  knownHosts: string;
  /** Accept and record unknown host keys (StrictHostKeyChecking accept-new) instead of refusing them. */
  trustOnFirstUse?: boolean;
  /** The user's own settings, included first so that they win (a missing file is fine for ssh). */
  overrides?: string;
  /** HostName[:Port] per host name without the prefix, instead of the CSCS name. */
  targets?: Record<string, Target>;
  /** More lines for the PREFIX-* defaults, without indentation. */
  extraDefaults?: string[];
  /** Burst mode: the control sockets' folder (absolute). */
  multiplex?: string;
  /** A comment line recording what setup was given (src/ssh/choices.ts). */
  record?: string;
}

/** The CSCS name of a host of the block: the jump host, or a cluster behind it. */
export function cscsHostName(name: string): string {
  return name === JUMP_HOST.name ? JUMP_HOST.hostName : `${name}.alps.cscs.ch`;
}

/** Where each host of the block leads, by name without the prefix. */
export function blockTargets(o: Pick<BlockOptions, 'clusters' | 'targets'>): Record<string, Target> {
  const names = [JUMP_HOST.name, ...o.clusters];
  return Object.fromEntries(names.map((name) => [name, o.targets?.[name] ?? { hostName: cscsHostName(name) }]));
}

const PATH = { tokens: true, env: true } as const;

export function renderBlock(o: BlockOptions): string {
  const prefix = o.prefix;
  // The key first: a key that cannot be written is named as such.
  const defaults = [
    `User ${o.user}`,
    `IdentityFile ${configWord('the key', o.key, PATH)}`,
    // Offered first, so sshd never sees (and logs as failed) the bare key.
    `CertificateFile ${configWord('the certificate', keyPaths(o.key).certificate, PATH)}`,
    ...(o.agent
      ? [
          '# The ProxyCommand loads the certificate into ssh-agent; with IdentitiesOnly yes ssh would',
          '# use only agent keys identical to a key file it read, and a certificate is not.',
          'IdentitiesOnly no',
        ]
      : ['IdentitiesOnly yes']),
    'BatchMode yes',
    `UserKnownHostsFile ${configWord('the known hosts file', o.knownHosts, PATH)}`,
    o.trustOnFirstUse ? 'StrictHostKeyChecking accept-new' : 'StrictHostKeyChecking yes',
    ...(o.extraDefaults ?? []),
    ...(o.multiplex
      ? [
          '# Burst mode: one connection per host for all commands within ControlPersist seconds of each',
          '# other (the Match line below still keeps the certificate fresh, for any ssh that does not use it).',
          ...multiplexLines(o.multiplex),
        ]
      : []),
  ];
  const words = (what: string, values: string[]) => values.map((value) => ({ what, value }));
  const command = words('the cscs-sa command', o.command);
  const refresh = sshCommand([...command, ...words('an argument of match', ['match', ...(o.matchArgs ?? [])])], '%n');
  const match = freshCheck(o.key, refresh);
  const proxy = sshCommand([...command, ...words('an argument of proxy', ['proxy', ...(o.agent ? ['--agent', ...(o.proxyArgs ?? [])] : [])])], '%h %p');
  const host = (name: string, t: Target, route: string) =>
    [`Host ${prefix}${name}`, `    HostName ${t.hostName}`, ...(t.port && t.port !== 22 ? [`    Port ${t.port}`] : []), `    ${route}`, ''].join('\n');
  const targets = blockTargets(o);
  const hosts = Object.entries(targets).map(([name, t]) => host(name, t, name === JUMP_HOST.name ? `ProxyCommand ${proxy}` : `ProxyJump ${prefix}${JUMP_HOST.name}`));
  const overrides = o.overrides
    ? `# Your own settings for these hosts (HostName, Port, ...): ssh takes the first value it finds,
# so what this file sets wins over the lines below, and re-running setup leaves it alone.
Include ${configWord('the overrides file', o.overrides, { glob: true })}

`
    : '';
  return `# cscs-sa: ssh, scp, sftp, rsync and git for a CSCS service account.
# Written by \`cscs-sa setup\`; run it again to change this file (edits here are overwritten).
${o.record ? `# What setup was given, which its next run starts from (flags change it):\n${o.record}\n` : ''}
${overrides}# Each host has one route: the jump host a ProxyCommand, the clusters a ProxyJump through it
# (so that clients that read ssh_config their own way, like paramiko, take the same route).
${hosts.join('\n')}
Host ${prefix}*
${defaults.map((l) => `    ${l}`).join('\n')}

# Last, so that it sees the final values of the lines above: refreshes the certificate of the
# key above when it is missing or about to expire, before ssh loads any key. A fresh one is
# told by the shell alone (its fresh window is in the certificate's comment); anything else runs
# cscs-sa match. It sets nothing itself, so the blocks above apply even when a refresh fails.
# originalhost (the name typed, %n) keeps it working when your own HostName for a host comes first.
Match originalhost ${prefix}* exec "${match}"
`;
}

/**
 * Host names in the user's own ssh config that the block's `PREFIX*` defaults also match, though
 * the block does not name them: its defaults (User, IdentityFile, ...) come first and win, so a
 * user's `git-server` would log in as an account named `git`. Literal names only (patterns and
 * negations say nothing about a real host), outside our markers, case-insensitive as ssh is.
 */
export function hostsCaught(config: string, prefix: string, names: string[]): string[] {
  const lines = config.split(/\r?\n/);
  const begin = lines.findIndex((l) => l.trim() === BEGIN);
  const end = lines.findIndex((l) => l.trim() === END);
  const own = new Set(names.map((n) => `${prefix}${n}`.toLowerCase()));
  const caught = new Set<string>();
  lines.forEach((line, i) => {
    if (begin !== -1 && i >= begin && i <= end) return;
    const m = /^\s*host(?:\s+|\s*=\s*)(.*)$/i.exec(line);
    for (const word of m?.[1]?.split(/\s+/) ?? []) {
      const name = word.replace(/^"|"$/g, '').toLowerCase();
      if (name.startsWith('#')) break;
      if (/[*?!]/.test(name) || !name.startsWith(prefix.toLowerCase()) || own.has(name)) continue;
      caught.add(name);
    }
  });
  return [...caught];
}

export interface IncludePlan {
  /** The new text of ~/.ssh/config; equal to the old when nothing changes. */
  text: string;
  changed: boolean;
}

const HOST_OR_MATCH = /^\s*(host|match)(\s|=)/i;

/**
 * Where the Includes go, one per account file (none: the marked block is taken out): replacing
 * our marked block, or just before the first Host or Match line (an Include after a Host line
 * would apply to that host only), keeping the file's line endings. Refuses files it cannot edit
 * safely.
 */
export function planInclude(existing: string, confs: string[]): IncludePlan {
  const eol = existing.includes('\r\n') ? '\r\n' : '\n';
  const lines = existing === '' ? [] : existing.replace(/\r?\n$/, '').split(/\r?\n/);
  const block = confs.length === 0 ? [] : [BEGIN, ...confs.map((c) => `Include ${configWord('the cscs-sa config', c, { glob: true })}`), END];
  const begins = lines.flatMap((l, i) => (l.trim() === BEGIN ? [i] : []));
  const ends = lines.flatMap((l, i) => (l.trim() === END ? [i] : []));
  let start: number;
  let end: number;
  if (begins.length > 0 || ends.length > 0) {
    if (begins.length !== 1 || ends.length !== 1 || ends[0]! < begins[0]!) {
      throw new SetupRefusedError(`the cscs-sa markers in the ssh config are broken (${begins.length} BEGIN, ${ends.length} END)`, { fix: 'fix or remove them by hand, then run setup again' });
    }
    [start, end] = [begins[0]!, ends[0]! + 1];
    // Taking the block out takes the blank line that kept it apart too.
    if (block.length === 0 && lines[end]?.trim() === '') end++;
  } else {
    const first = lines.findIndex((l) => HOST_OR_MATCH.test(l));
    start = end = first === -1 ? lines.length : first;
  }
  for (const conf of confs) {
    const own = new RegExp(`^\\s*include\\s+"?${conf.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"?\\s*$`, 'i');
    const elsewhere = lines.findIndex((l, i) => (i < start || i >= end) && own.test(l));
    if (elsewhere !== -1) {
      throw new SetupRefusedError(`the ssh config already includes ${conf} at line ${elsewhere + 1}, outside the cscs-sa markers`, { fix: 'remove that line, or manage the Include yourself (setup --print)' });
    }
  }
  const before = lines.slice(0, start);
  const after = lines.slice(end);
  // Keep the marked block apart from what surrounds it.
  const insert = [...block, ...(block.length > 0 && after.length > 0 && after[0]!.trim() !== '' && start === end ? [''] : [])];
  const next = [...before, ...insert, ...after];
  const text = next.length === 0 ? '' : next.join(eol) + eol;
  const changed = text !== existing;
  return { text, changed };
}
