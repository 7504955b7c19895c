/**
 * An exclusive lock file beside the key, shared by every cscs-sa process that may refresh.
 *
 * Created with O_EXCL; holds "pid host nonce identity", where identity is the boot and the start
 * time of the holder (Linux /proc), so a pid reused after the holder died, or after a reboot,
 * does not pass for the holder. The holder keeps the file open and touches its mtime every
 * second (a heartbeat) until it releases it.
 *
 * A lock is never broken while its holder is alive on this host: a waiter waits for it until its
 * own deadline and then gives up with one line. A lock whose holder died on this host is taken
 * over at the next poll. A lock from another host (a home folder on NFS) is taken over only once
 * its heartbeat is older than `staleMs`, judged by the lock's own mtime, never by how long the
 * waiter has waited. A lock file that nobody finished writing (empty, garbage) is taken over
 * after a second. Something at the lock path that cscs-sa never creates (a symlink, dangling or
 * not, a directory, a FIFO, a file it may not read) is reported at once, never followed or waited on.
 */
import { closeSync, constants, fstatSync, futimesSync, linkSync, lstatSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Deadline } from '../base/deadline.js';
import { LocalFileError } from '../base/errors.js';
import { tempPath } from '../base/fsutil.js';
import { createLog } from '../base/log.js';
import { pidAlive, processIdentity } from '../base/proc.js';

const log = createLog('lock');

/** A lock file without a readable owner is taken over once it is this old: writing one line takes microseconds. */
const UNFINISHED_MS = 1000;
const HEARTBEAT_MS = 1000;
/** A waiter whose deadline is up polls this much longer: its holder started first and settles by then. */
const SETTLE_GRACE_MS = 300;

export interface LockOptions {
  /** The waiter's deadline: it never waits beyond it. */
  deadline: Deadline;
  /** Heartbeat age after which a lock from another host counts as abandoned. */
  staleMs: number;
  pollMs?: number;
  /**
   * Called between polls: true stops waiting (someone else did the work). It may throw to end
   * the wait with the outcome the holder left behind.
   */
  done?: () => boolean;
}

export interface Lock {
  release(): void;
}

/** A live holder kept the lock until the waiter's deadline. */
export class LockBusyError extends Error {
  constructor(
    readonly holder: string,
    readonly heldMs: number,
  ) {
    super(`lock held by ${holder} for ${Math.round(heldMs / 1000)} s`);
  }
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

type Seen =
  | { kind: 'gone' }
  | { kind: 'strange'; what: string }
  | { kind: 'lock'; text: string; owner?: Owner; ageMs: number; id: string };

/**
 * Looks at the lock through one open file: its metadata (fstat) and its content come from the
 * same inode, so no rename or unlink between a stat and a read can pair one file's age with
 * another's owner. O_NOFOLLOW refuses a symlink instead of following it (a dangling one would
 * otherwise look absent forever); O_NONBLOCK keeps a FIFO from blocking the open.
 */
function look(path: string): Seen {
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
 * while it must be waited for (the rules are in the comment at the top).
 */
export function staleReason(seen: { owner?: Owner; ageMs: number }, staleMs: number): string | undefined {
  const { owner, ageMs } = seen;
  if (!owner) return ageMs > UNFINISHED_MS ? `not a finished lock (${Math.round(ageMs)} ms old)` : undefined;
  if (owner.host === hostname()) return isAlive(owner) ? undefined : `holder pid ${owner.pid} is gone`;
  return ageMs > staleMs ? `no heartbeat from ${owner.host} for ${Math.round(ageMs)} ms` : undefined;
}

/**
 * Removes the lock we judged stale, but only if it is still that lock. It is first renamed to a
 * name of our own, which only one of several breakers can do; then the moved file is compared
 * with what was judged (inode and nanosecond mtime, which a live holder's heartbeat changes), and
 * anything else (a lock taken in between, a holder that came back) is linked back into place.
 * If a fourth process took the path in that instant, the moved lock is lost and two refreshes
 * run at once: that costs one extra gateway call, never a torn file (every write is a rename).
 */
function breakLock(path: string, judgedId: string): void {
  const aside = tempPath(path);
  try {
    renameSync(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    const moved = look(aside);
    if (moved.kind !== 'lock' || moved.id !== judgedId) {
      try {
        linkSync(aside, path);
      } catch {
        // Someone took the lock in between; theirs stands.
      }
    }
  } finally {
    unlinkSync(aside);
  }
}

function ownerText(): string {
  return `${process.pid}\n${hostname()}\n${randomBytes(8).toString('hex')}\n${processIdentity(process.pid) ?? ''}\n`;
}

function tryCreate(path: string, content: string): Lock | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
    throw err;
  }
  try {
    writeSync(fd, content);
  } catch (err) {
    // An empty lock (disk full) would hold everyone off for a while.
    closeSync(fd);
    unlinkSync(path);
    throw err;
  }
  return heldLock(path, fd);
}

function describeHolder(owner: Owner | undefined): string {
  if (!owner) return 'an unfinished lock';
  return owner.host === hostname() ? `cscs-sa pid ${owner.pid}` : `cscs-sa pid ${owner.pid} on ${owner.host}`;
}

/** Takes the lock, or returns undefined when `done()` says there is nothing left to do. */
export async function acquireLock(path: string, options: LockOptions): Promise<Lock | undefined> {
  const content = ownerText();
  const pollMs = options.pollMs ?? 50;
  let vanished = 0;
  for (;;) {
    const lock = tryCreate(path, content);
    if (lock) return lock;
    const seen = look(path);
    if (seen.kind === 'strange') {
      throw new LocalFileError(`lock ${path} ${seen.what}, which cscs-sa never creates`, { fix: `remove it (rm ${path})` });
    }
    if (seen.kind === 'lock') {
      vanished = 0;
      const reason = staleReason(seen, options.staleMs);
      if (reason) {
        log('taking over lock %s: %s', path, reason);
        breakLock(path, seen.id);
        continue;
      }
    } else if (++vanished < 3) {
      continue; // released between our create and our look: try again at once, but not forever
    }
    if (options.done?.()) return undefined;
    const left = options.deadline.remainingMs();
    if (left === 0 && Date.now() > options.deadline.at + SETTLE_GRACE_MS) {
      throw new LockBusyError(seen.kind === 'lock' ? describeHolder(seen.owner) : 'another process', seen.kind === 'lock' ? seen.ageMs : 0);
    }
    // Jitter keeps a crowd of waiters from polling in lockstep.
    await sleep(pollMs / 2 + Math.random() * pollMs);
  }
}

const held = new Map<string, number>();
let exitHookInstalled = false;

function heldLock(path: string, fd: number): Lock {
  held.set(path, fd);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // A refresh cut short by a signal or an error exit must not leave its lock for others to wait on.
    process.on('exit', () => {
      for (const [p, f] of held) releaseIfOurs(p, f);
    });
  }
  // The heartbeat tells waiters on other hosts that the holder still works (futimes: on our own
  // open file, whatever is at the path now).
  const heartbeat = setInterval(() => {
    try {
      const now = new Date();
      futimesSync(fd, now, now);
    } catch {
      // Disk trouble: the refresh itself will say so.
    }
  }, HEARTBEAT_MS);
  heartbeat.unref();
  return {
    release() {
      clearInterval(heartbeat);
      held.delete(path);
      releaseIfOurs(path, fd);
    },
  };
}

/**
 * Unlinks the path only if it is still our file (same inode as our open descriptor). Nobody
 * breaks a live holder's lock on this host, so between this check and the unlink the path can
 * change only on another host after our heartbeat went stale for the whole deadline.
 */
function releaseIfOurs(path: string, fd: number): void {
  try {
    const ours = fstatSync(fd);
    const there = lstatSync(path);
    if (there.ino === ours.ino && there.dev === ours.dev) unlinkSync(path);
  } catch {
    // Gone already, or taken over by a waiter that judged us stale.
  }
  try {
    closeSync(fd);
  } catch {
    // Closed already.
  }
}
