/**
 * The cscs-sa block for ssh_config and its one Include line in the user's ~/.ssh/config.
 * Pure functions over text: the setup command does the reading, checking and writing.
 */
import { CscsSaError, ExitCode } from './errors.js';
import { masterCheck, multiplexLines } from './multiplex.js';

/** The CSCS hosts: ela is the jump host; the clusters sit behind it. */
export const JUMP_HOST = { name: 'ela', hostName: 'ela.cscs.ch' };
export const CLUSTERS = ['clariden', 'daint', 'santis', 'eiger', 'bristen'];

export const BEGIN = '# BEGIN cscs-sa (managed by `cscs-sa setup`; edits between these lines are replaced)';
export const END = '# END cscs-sa';

/** A config that setup will not edit, with what to do instead. */
export class SetupRefusedError extends CscsSaError {
  override readonly exitCode = ExitCode.config;
  override readonly code = 'CSCS_SA_ERR_SETUP_REFUSED';
  override name = 'SetupRefusedError';
}

export interface BlockOptions {
  user: string;
  key: string;
  /** Cluster names, without the sa- prefix. */
  clusters: string[];
  /** How ssh's `$SHELL -c` starts cscs-sa: `cscs-sa`, or absolute paths of node and the script. */
  command: string;
  /** Extra arguments for match and sign (e.g. `--env tds`). */
  matchArgs?: string;
  /** Load certificates into ssh-agent from the ProxyCommand (proxy --agent). */
  agent?: boolean;
  /** Burst mode: the control sockets' folder (absolute). */
  multiplex?: string;
}

/** ssh_config's quoting: double quotes around a value with spaces. */
function quoted(path: string): string {
  return /\s/.test(path) ? `"${path}"` : path;
}

/** One double-quoted ssh_config argument: ssh's argv_split reads `\\` and `\"` back as `\` and `"`. */
function quotedArgument(text: string): string {
  return `"${text.replace(/[\\"]/g, '\\$&')}"`;
}

export function renderBlock(o: BlockOptions): string {
  const refresh = [o.command, 'match', o.matchArgs, '%n'].filter(Boolean).join(' ');
  const match = o.multiplex ? masterCheck(o.multiplex, refresh) : refresh;
  const proxy = [o.command, 'proxy', o.agent ? '--agent' : '', '%h %p'].filter(Boolean).join(' ');
  const hosts = o.clusters.map((name) => `Host sa-${name}\n    HostName ${name}.alps.cscs.ch\n    ProxyJump sa-${JUMP_HOST.name}\n`);
  const burst = o.multiplex
    ? `    # Burst mode: one connection per host for all commands within ControlPersist seconds of each other;
    # a command on a live master needs no certificate (the Match line below skips cscs-sa).
${multiplexLines(o.multiplex, (v) => (/[\s"'\\]/.test(v) ? quotedArgument(v) : v)).map((l) => `    ${l}\n`).join('')}`
    : '';
  return `# cscs-sa: ssh, scp, sftp, rsync and git for a CSCS service account.
# Written by \`cscs-sa setup\`; run it again to change this file (edits here are overwritten).

# ssh takes the first value it finds: the hosts come before the sa-* defaults, so that their
# ProxyJump wins over the generic ProxyCommand.
Host sa-${JUMP_HOST.name}
    HostName ${JUMP_HOST.hostName}

${hosts.join('\n')}
Host sa-*
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
${burst}
# Runs while ssh reads its configuration, before it loads any key: refreshes the certificate
# of the key above when it is missing or about to expire. It sets nothing itself, so the
# blocks above apply even when a refresh fails. It comes last, so that host, port and user
# (and %C, made of them) already have their final values.
Match originalhost sa-* exec ${quotedArgument(match)}
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
 * Where the Include goes: replacing our marked block, or just before the first Host or Match
 * line (an Include after a Host line would apply to that host only), keeping the file's line
 * endings. Refuses files it cannot edit safely.
 */
export function planInclude(existing: string, conf: string): IncludePlan {
  const eol = existing.includes('\r\n') ? '\r\n' : '\n';
  const lines = existing === '' ? [] : existing.replace(/\r?\n$/, '').split(/\r?\n/);
  const block = [BEGIN, `Include ${quoted(conf)}`, END];
  const begins = lines.flatMap((l, i) => (l.trim() === BEGIN ? [i] : []));
  const ends = lines.flatMap((l, i) => (l.trim() === END ? [i] : []));
  let start: number;
  let end: number;
  if (begins.length > 0 || ends.length > 0) {
    if (begins.length !== 1 || ends.length !== 1 || ends[0]! < begins[0]!) {
      throw new SetupRefusedError(`the cscs-sa markers in the ssh config are broken (${begins.length} BEGIN, ${ends.length} END): fix or remove them by hand, then run setup again`);
    }
    [start, end] = [begins[0]!, ends[0]! + 1];
  } else {
    const first = lines.findIndex((l) => HOST_OR_MATCH.test(l));
    start = end = first === -1 ? lines.length : first;
  }
  const own = new RegExp(`^\\s*include\\s+"?${conf.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"?\\s*$`, 'i');
  const elsewhere = lines.findIndex((l, i) => (i < start || i >= end) && own.test(l));
  if (elsewhere !== -1) {
    throw new SetupRefusedError(`the ssh config already includes ${conf} at line ${elsewhere + 1}, outside the cscs-sa markers: remove that line, or manage the Include yourself (setup --print)`);
  }
  const before = lines.slice(0, start);
  const after = lines.slice(end);
  // Keep the marked block apart from what surrounds it.
  const insert = [...block, ...(after.length > 0 && after[0]!.trim() !== '' && start === end ? [''] : [])];
  const next = [...before, ...insert, ...after];
  const text = next.join(eol) + eol;
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
