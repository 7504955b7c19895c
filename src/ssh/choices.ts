/**
 * What setup was given for an account's block (clusters, where hosts lead, login name, burst
 * mode, agent, trust on first use), kept as one comment line of the block itself, which ssh
 * ignores: a later setup starts from these instead of the defaults, and known-hosts asks the
 * hosts setup wrote. One file, so the record cannot drift from the block it describes. The key
 * pair and the gateway are settings (src/core/config.ts), which setup records in the config file,
 * so that every command, match included, reads them from one place.
 */
import { dirname, join } from 'node:path';
import { confFile } from '../core/account.js';
import { LocalFileError } from '../base/errors.js';
import { type FileRules, readTrusted } from '../base/trust.js';
import { sshConfigPath } from './multiplex.js';
import { JUMP_HOST, type Target } from './sshconfig.js';

export interface SetupChoices {
  /** Cluster names without the prefix. */
  clusters: string[];
  /** Hosts (the jump host included) led elsewhere than their CSCS name. */
  targets: Record<string, Target>;
  user: string;
  multiplex: boolean;
  agent: boolean;
  trustOnFirstUse: boolean;
}

const MARK = '# setup: ';

export function choicesLine(choices: SetupChoices): string {
  return `${MARK}${JSON.stringify(choices)}`;
}

const isName = (v: unknown): v is string => typeof v === 'string' && /^[a-z0-9][a-z0-9-]*$/.test(v);
const isTarget = (v: unknown): v is Target => {
  const t = v as Target;
  return typeof t === 'object' && t !== null && typeof t.hostName === 'string' && (t.port === undefined || Number.isInteger(t.port));
};

/** The choices recorded in a block's text; undefined for a block without (or with a damaged) record. */
export function parseChoices(block: string): SetupChoices | undefined {
  const line = block.split('\n').find((l) => l.startsWith(MARK));
  if (!line) return undefined;
  let c: Partial<SetupChoices>;
  try {
    c = JSON.parse(line.slice(MARK.length)) as Partial<SetupChoices>;
  } catch {
    return undefined;
  }
  const ok =
    Array.isArray(c.clusters) && c.clusters.every(isName) &&
    typeof c.targets === 'object' && c.targets !== null && Object.entries(c.targets).every(([name, t]) => isName(name) && isTarget(t)) &&
    typeof c.user === 'string' && [c.multiplex, c.agent, c.trustOnFirstUse].every((b) => typeof b === 'boolean');
  return ok ? (c as SetupChoices) : undefined;
}

/** The block setup writes for ACCOUNT, beside the ssh config (default ~/.ssh/config). */
export function blockFile(account: string, sshConfigFlag?: string): string {
  return join(dirname(sshConfigPath(sshConfigFlag)), confFile(account));
}

/**
 * What setup reads (ssh config files, host key lists) is text of a few KB; a device or FIFO
 * (--known-hosts /dev/zero) or a huge file would keep setup reading for ever.
 */
export const TEXT_RULES: FileRules = { what: 'file', error: LocalFileError, maxBytes: 4 * 1024 * 1024, owners: 'anyone', mode: 'any', action: 'read' };

/** The text of a file; undefined when there is none. */
export function readIfExists(path: string, rules = TEXT_RULES): string | undefined {
  return readTrusted(path, rules)?.text;
}

/** What setup recorded in ACCOUNT's block; undefined before the first setup. */
export function readChoices(account: string, sshConfigFlag?: string): SetupChoices | undefined {
  const text = readIfExists(blockFile(account, sshConfigFlag));
  return text === undefined ? undefined : parseChoices(text);
}

const where = (t: Target) => (t.port && t.port !== 22 ? `${t.hostName}:${t.port}` : t.hostName);
const onOff = (b: boolean) => (b ? 'on' : 'off');

/** One phrase per choice that differs, for setup to say what a run changes. */
export function describeChanges(before: SetupChoices, after: SetupChoices): string[] {
  const changes: string[] = [];
  const list = (c: SetupChoices) => c.clusters.join(',');
  if (list(before) !== list(after)) changes.push(`hosts ${list(before)} -> ${list(after)}`);
  const names = new Set([...Object.keys(before.targets), ...Object.keys(after.targets)].filter((n) => n === JUMP_HOST.name || after.clusters.includes(n)));
  for (const name of names) {
    const [b, a] = [before.targets[name], after.targets[name]];
    if ((b && where(b)) !== (a && where(a))) changes.push(`${name} leads to ${a ? where(a) : 'its CSCS name'}${b ? ` (was ${where(b)})` : ''}`);
  }
  if (before.user !== after.user) changes.push(`user ${before.user} -> ${after.user}`);
  if (before.multiplex !== after.multiplex) changes.push(`burst mode ${onOff(before.multiplex)} -> ${onOff(after.multiplex)}`);
  if (before.agent !== after.agent) changes.push(`agent ${onOff(before.agent)} -> ${onOff(after.agent)}`);
  if (before.trustOnFirstUse !== after.trustOnFirstUse) changes.push(`trust on first use ${onOff(before.trustOnFirstUse)} -> ${onOff(after.trustOnFirstUse)}`);
  return changes;
}
