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
 * not, a directory, a FIFO, a file it may not read, another user's file) is reported at once,
 * never followed or waited on.
 */
import { closeSync, fstatSync, futimesSync, linkSync, lstatSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Deadline } from '../base/deadline.js';
import { LocalFileError } from '../base/errors.js';
import { tempPath } from '../base/fsutil.js';
import { createLog } from '../base/log.js';
import { processIdentity } from '../base/proc.js';
import { look, type Owner, pollPauseMs, staleReason } from '../core/lockfile.js';

const log = createLog('lock');

const HEARTBEAT_MS = 1000;
/** A waiter whose deadline is up polls this much longer: its holder started first and settles by then. */
const SETTLE_GRACE_MS = 300;

export interface LockOptions {
  /** The waiter's deadline: it never waits beyond it. */
  deadline: Deadline;
  /** Heartbeat age after which a lock from another host counts as abandoned. */
  staleMs: number;
  /** Mean pause between looks (default POLL_MS, src/core/lockfile.ts). */
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
    await sleep(pollPauseMs(options.pollMs));
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
