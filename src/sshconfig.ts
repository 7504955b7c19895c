/**
 * The cscs-sa block for ssh_config and its one Include line in the user's ~/.ssh/config.
 * Pure functions over text: the setup command does the reading, checking and writing.
 */
import { BEGIN, END } from './account.js';
import { CscsSaError, ExitCode } from './errors.js';

export { BEGIN, END };

/** The CSCS hosts: ela is the jump host; the clusters sit behind it. */
export const JUMP_HOST = { name: 'ela', hostName: 'ela.cscs.ch' };
export const CLUSTERS = ['clariden', 'daint', 'santis', 'eiger', 'bristen'];

/** A config that setup will not edit, with what to do instead. */
export class SetupRefusedError extends CscsSaError {
  override readonly exitCode = ExitCode.config;
  override readonly code = 'CSCS_SA_ERR_SETUP_REFUSED';
  override name = 'SetupRefusedError';
}

export interface BlockOptions {
  /** Host prefix of the account (src/account.ts hostPrefix): `sa-` for the default account. */
  prefix: string;
  user: string;
  key: string;
  /** Cluster names, without the prefix. */
  clusters: string[];
  /** How ssh's `$SHELL -c` starts cscs-sa: `cscs-sa`, or absolute paths of node and the script. */
  command: string;
  /** Extra arguments for match and sign (e.g. `--account NAME --env tds`). */
  matchArgs?: string;
  /** Extra arguments for proxy (`--account NAME`, for --agent). */
  proxyArgs?: string;
  /** Load certificates into ssh-agent from the ProxyCommand (proxy --agent). */
  agent?: boolean;
}

/** ssh_config's quoting: double quotes around a value with spaces. */
function quoted(path: string): string {
  return /\s/.test(path) ? `"${path}"` : path;
}

export function renderBlock(o: BlockOptions): string {
  const match = [o.command, 'match', o.matchArgs, '%h'].filter(Boolean).join(' ');
  const proxy = [o.command, 'proxy', o.agent ? '--agent' : '', o.agent ? o.proxyArgs : '', '%h %p'].filter(Boolean).join(' ');
  const p = o.prefix;
  const hosts = o.clusters.map((name) => `Host ${p}${name}\n    HostName ${name}.alps.cscs.ch\n    ProxyJump ${p}${JUMP_HOST.name}\n`);
  return `# cscs-sa: ssh, scp, sftp, rsync and git for a CSCS service account.
# Written by \`cscs-sa setup\`; run it again to change this file (edits here are overwritten).

# Runs while ssh reads its configuration, before it loads any key: refreshes the certificate
# of the key below when it is missing or about to expire. It sets nothing itself, so the
# blocks below apply even when a refresh fails.
Match host ${p}* exec "${match.replace(/"/g, '\\"')}"

# ssh takes the first value it finds: the hosts come before the ${p}* defaults, so that their
# ProxyJump wins over the generic ProxyCommand.
Host ${p}${JUMP_HOST.name}
    HostName ${JUMP_HOST.hostName}

${hosts.join('\n')}
Host ${p}*
    User ${o.user}
    IdentityFile ${quoted(o.key)}
${
  o.agent
    ? `    # The ProxyCommand loads the certificate into ssh-agent; with IdentitiesOnly yes ssh would
    # use only agent keys identical to a key file it read, and a certificate is not.
    IdentitiesOnly no`
    : '    IdentitiesOnly yes'
}
    ProxyCommand ${proxy}
    BatchMode yes
`;
}

export interface IncludePlan {
  /** The new text of ~/.ssh/config; equal to the old when nothing changes. */
  text: string;
  changed: boolean;
  /** 0-based line range [start, end) of the old text replaced by `lines`. */
  start: number;
  end: number;
  lines: string[];
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
  const block = confs.length === 0 ? [] : [BEGIN, ...confs.map((conf) => `Include ${quoted(conf)}`), END];
  const begins = lines.flatMap((l, i) => (l.trim() === BEGIN ? [i] : []));
  const ends = lines.flatMap((l, i) => (l.trim() === END ? [i] : []));
  let start: number;
  let end: number;
  if (begins.length > 0 || ends.length > 0) {
    if (begins.length !== 1 || ends.length !== 1 || ends[0]! < begins[0]!) {
      throw new SetupRefusedError(`the cscs-sa markers in the ssh config are broken (${begins.length} BEGIN, ${ends.length} END): fix or remove them by hand, then run setup again`);
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
      throw new SetupRefusedError(`the ssh config already includes ${conf} at line ${elsewhere + 1}, outside the cscs-sa markers: remove that line, or manage the Include yourself (setup --print)`);
    }
  }
  const before = lines.slice(0, start);
  const after = lines.slice(end);
  // Keep the marked block apart from what surrounds it.
  const insert = [...block, ...(block.length > 0 && after.length > 0 && after[0]!.trim() !== '' && start === end ? [''] : [])];
  const next = [...before, ...insert, ...after];
  const text = next.length === 0 ? '' : next.join(eol) + eol;
  const changed = text !== existing;
  return { text, changed, start, end, lines: insert };
}

/** A unified diff of one replaced range, for --dry-run. */
export function unifiedDiff(path: string, oldText: string, plan: Pick<IncludePlan, 'start' | 'end' | 'lines'>): string {
  const old = oldText === '' ? [] : oldText.replace(/\r?\n$/, '').split(/\r?\n/);
  const removed = old.slice(plan.start, plan.end);
  const header = `--- ${oldText === '' ? '/dev/null' : path}\n+++ ${path}\n`;
  const hunk = `@@ -${plan.start + (removed.length ? 1 : 0)},${removed.length} +${plan.start + 1},${plan.lines.length} @@\n`;
  return header + hunk + removed.map((l) => `-${l}\n`).join('') + plan.lines.map((l) => `+${l}\n`).join('');
}

/** The whole-file diff of a file we own entirely. */
export function replaceDiff(path: string, oldText: string | undefined, newText: string): string {
  const old = oldText ? oldText.replace(/\n$/, '').split('\n') : [];
  return unifiedDiff(path, oldText ?? '', { start: 0, end: old.length, lines: newText.replace(/\n$/, '').split('\n') });
}
