/**
 * What the refresh lock beside a key says, read without taking it: who holds it, and whether it
 * may be taken over. The lock's rules are in src/refresh/lock.ts, which takes, holds and breaks
 * it; the hot path (src/core/fastpath.ts) only reads it, to wait for a holder on this host.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { hostname } from 'node:os';
import { pidAlive, processIdentity } from '../base/proc.js';
import { ownedBy } from '../base/trust.js';

/** A lock file without a readable owner is taken over once it is this old: writing one line takes microseconds. */
const UNFINISHED_MS = 1000;

/** How often a waiter looks at a held lock, on average. */
export const POLL_MS = 50;

/** The pause before a waiter's next look: jittered, so that a crowd of waiters does not poll in lockstep. */
export function pollPauseMs(pollMs = POLL_MS): number {
  return pollMs / 2 + Math.random() * pollMs;
}

export interface Owner {
  pid: number;
  host: string;
  nonce: string;
  identity?: string;
}

function parseOwner(text: string): Owner | undefined {
  const [pid, host, nonce, identity] = text.split('\n');
  if (!pid || !host || !nonce || !/^\d+$/.test(pid)) return undefined;
  return { pid: Number(pid), host, nonce, identity: identity || undefined };
}

function isAlive(owner: Owner): boolean {
  if (!pidAlive(owner.pid)) return false;
  // The pid exists; is it still the process that took the lock?
  const now = owner.identity && processIdentity(owner.pid);
  return !now || now === owner.identity;
}

export type Seen =
  | { kind: 'gone' }
  | { kind: 'strange'; what: string }
  | { kind: 'lock'; text: string; owner?: Owner; ageMs: number; id: string };

/**
 * Looks at the lock through one open file: its metadata (fstat) and its content come from the
 * same inode, so no rename or unlink between a stat and a read can pair one file's age with
 * another's owner. O_NOFOLLOW refuses a symlink instead of following it (a dangling one would
 * otherwise look absent forever); O_NONBLOCK keeps a FIFO from blocking the open.
 */
export function look(path: string): Seen {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'gone' };
    if (code === 'ELOOP') return { kind: 'strange', what: 'is a symbolic link' };
    if (code === 'EACCES' || code === 'EPERM') return { kind: 'strange', what: 'cannot be read (permission denied)' };
    throw err;
  }
  try {
    const stats = fstatSync(fd, { bigint: true });
    if (stats.isDirectory()) return { kind: 'strange', what: 'is a directory' };
    if (!stats.isFile()) return { kind: 'strange', what: 'is not a regular file' };
    // Another user's lock could hold us off for ever with the pid of any live process.
    if (!ownedBy({ uid: Number(stats.uid) }, 'us')) return { kind: 'strange', what: `belongs to another user (uid ${stats.uid})` };
    const buffer = Buffer.alloc(512);
    const n = readSync(fd, buffer, 0, buffer.length, 0);
    const text = buffer.subarray(0, n).toString('utf8');
    const ageMs = Date.now() - Number(stats.mtimeNs / 1_000_000n);
    // Inode and nanosecond mtime name this very file: a new lock (even on a reused inode) differs.
    const id = `${stats.dev}:${stats.ino}:${stats.mtimeNs}:${stats.size}`;
    return { kind: 'lock', text, owner: parseOwner(text), ageMs, id };
  } finally {
    closeSync(fd);
  }
}

/**
 * Why a lock seen with `owner` whose heartbeat is `ageMs` old may be taken over, or undefined
 * while it must be waited for (the rules are in src/refresh/lock.ts's first comment).
 */
export function staleReason(seen: { owner?: Owner; ageMs: number }, staleMs: number): string | undefined {
  const { owner, ageMs } = seen;
  if (!owner) return ageMs > UNFINISHED_MS ? `not a finished lock (${Math.round(ageMs)} ms old)` : undefined;
  if (owner.host === hostname()) return isAlive(owner) ? undefined : `holder pid ${owner.pid} is gone`;
  return ageMs > staleMs ? `no heartbeat from ${owner.host} for ${Math.round(ageMs)} ms` : undefined;
}
