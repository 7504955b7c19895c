/**
 * Pinned host keys: known_hosts lines for the CSCS hosts, checked before setup writes them into
 * the file the block names in UserKnownHostsFile. CSCS publishes no host keys, so they come from
 * the user (fetched once from a trusted machine with `cscs-sa known-hosts`), never from the
 * network at connection time.
 */
import { createHash, createHmac } from 'node:crypto';
import { CertificateParseError, parsePublicKey } from '../core/certificate.js';
import { UsageError } from '../base/errors.js';
import type { Target } from './sshconfig.js';

/** How a host appears in known_hosts: `name`, or `[name]:port` when the port is not 22. */
export function knownHostsName(t: Target): string {
  return t.port && t.port !== 22 ? `[${t.hostName}]:${t.port}` : t.hostName;
}

const CSCS_NAME = /^(\[[a-z0-9.-]+\.cscs\.ch\]:\d+|[a-z0-9.-]+\.cscs\.ch)$/i;

/** Whether a hashed name (`|1|salt|hash`, HashKnownHosts) is one of `names`. */
function hashedNameOf(pattern: string, names: string[]): string | undefined {
  const [, magic, salt, hash] = pattern.split('|');
  if (magic !== '1' || !salt || !hash) return undefined;
  const key = Buffer.from(salt, 'base64');
  return names.find((name) => createHmac('sha1', key).update(name).digest('base64') === hash);
}

export interface KnownHostsLine {
  /** The host names it is for (hashed names resolved against the allowed ones). */
  names: string[];
  type: string;
  text: string;
}

/**
 * Checks every line of `text`: plain known_hosts lines (`names type base64 [comment]`) whose
 * names are CSCS hosts or the block's targets (`allowed`), with a key that parses. Comments and
 * blank lines are dropped. Refuses the whole text when any line fails, naming the line.
 */
export function parseKnownHosts(text: string, allowed: string[], from: string): KnownHostsLine[] {
  const lines: KnownHostsLine[] = [];
  const refuse = (n: number, why: string) => {
    throw new UsageError(`setup: line ${n} of ${from} ${why}`, { fix: 'pin the lines cscs-sa known-hosts prints (nothing was changed)' });
  };
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(line)) refuse(i + 1, 'contains control characters');
    const [hosts = '', type = '', blob = '', ...comment] = line.split(/[ \t]+/);
    if (hosts.startsWith('@')) refuse(i + 1, `has a ${hosts} marker: only plain host key lines can be pinned`);
    try {
      parsePublicKey(`${type} ${blob}`);
    } catch (err) {
      refuse(i + 1, `is not a known_hosts line (${err instanceof CertificateParseError ? err.message : 'no key'})`);
    }
    const names = hosts.split(',').map((pattern) => {
      const name = pattern.startsWith('|') ? hashedNameOf(pattern, allowed) : pattern;
      if (name === undefined) return refuse(i + 1, 'has a hashed host name that is none of the hosts of the block');
      // A pattern would trust the key for hosts that are not pinned; the message must not read like the rule below.
      if (/[*?!]/.test(name)) return refuse(i + 1, `has the pattern "${name}": only host names can be pinned`);
      if (!allowed.includes(name) && !CSCS_NAME.test(name)) {
        return refuse(i + 1, `is for "${name}", which is neither a CSCS host (*.cscs.ch) nor a host of the block (setup --host NAME=HOSTNAME[:PORT] adds one)`);
      }
      return name;
    });
    lines.push({ names, type, text: [hosts, type, blob, ...comment].join(' ') });
  });
  if (lines.length === 0) throw new UsageError(`setup: ${from} holds no host key lines`, { fix: 'pin the lines cscs-sa known-hosts prints (nothing was changed)' });
  return lines;
}

/** A key's fingerprint as ssh-keygen -l and ssh print it: SHA256 of the key blob, base64 without padding. */
export function fingerprint(blob: string): string {
  return `SHA256:${createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '')}`;
}

/** Whether a known_hosts line's host field names one of `names` (lower case), plainly or hashed. */
function namesAny(hosts: string, names: string[]): boolean {
  return hosts.split(',').some((p) => (p.startsWith('|') ? hashedNameOf(p, names) !== undefined : names.includes(p.toLowerCase())));
}

/** Of `names` (as knownHostsName spells them), those with no line in the known hosts text. */
export function unpinned(text: string | undefined, names: string[]): string[] {
  const hostFields = (text ?? '').split('\n').map((line) => line.trim().split(/[ \t]+/)[0] ?? '').filter((h) => h !== '' && !h.startsWith('#'));
  return names.filter((name) => !hostFields.some((hosts) => namesAny(hosts, [name.toLowerCase()])));
}

/** A host whose pinned key a new pin replaces, with both fingerprints. */
export interface ReplacedPin {
  name: string;
  old: string[];
  new: string[];
}

/**
 * The known hosts file after pinning `pinned`: its lines for other hosts stay (the file is shared
 * by every account, and each pins its own hosts), those for a host pinned again go, so that a
 * replaced key is no longer trusted; a host whose keys differ from before is named with both.
 */
export function mergePins(old: string | undefined, pinned: KnownHostsLine[]): { text: string; replaced: ReplacedPin[] } {
  const names = pinned.flatMap((l) => l.names.map((n) => n.toLowerCase()));
  const lines = (old ?? '').split('\n').filter((line) => line.trim() !== '' && !line.trim().startsWith('#'));
  const kept = lines.filter((line) => !namesAny(line.trim().split(/[ \t]+/)[0]!, names));
  const keysOf = (of: string[], name: string) =>
    of.filter((line) => namesAny(line.trim().split(/[ \t]+/)[0]!, [name])).map((line) => fingerprint(line.trim().split(/[ \t]+/)[2] ?? '')).sort();
  const replaced = [...new Set(names)].flatMap((name) => {
    const before = keysOf(lines, name);
    const after = keysOf(pinned.map((l) => l.text), name);
    return before.length > 0 && before.join() !== after.join() ? [{ name, old: before, new: after }] : [];
  });
  return { text: `${[...kept, ...pinned.map((l) => l.text)].join('\n')}\n`, replaced };
}

/** The known hosts text without the lines for `names` (lower case): what setup --purge leaves. */
export function dropPins(old: string, names: string[]): string {
  const kept = old.split('\n').filter((line) => line.trim() !== '' && !namesAny(line.trim().split(/[ \t]+/)[0]!, names));
  return kept.length === 0 ? '' : `${kept.join('\n')}\n`;
}
