/**
 * An exclusive lock file beside the key, shared by every cscs-sa process that may refresh.
 *
 * Created with O_EXCL; holds "pid host nonce". A lock whose holder died on this host is broken
 * at the next poll (within ~50 ms); one from another host (a home folder on NFS) or one that
 * nobody finished writing is broken once it is older than `staleMs`. No waiter waits longer
 * than `waitMs`: the holder's own work is bounded by the gateway deadline, so a lock held longer
 * is stale by definition.
 */
import { closeSync, linkSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLog } from './log.js';

const log = createLog('lock');

export interface LockOptions {
  /** The longest a waiter waits before it breaks the lock. */
  waitMs: number;
  /** Age after which a lock that cannot be checked by pid counts as abandoned. */
  staleMs: number;
  pollMs?: number;
  /** Called between polls; returning true stops waiting (someone else did the work). */
  done?: () => boolean;
}

export interface Lock {
  release(): void;
}

interface Owner {
  pid: number;
  host: string;
  nonce: string;
}

function parseOwner(text: string): Owner | undefined {
  const [pid, host, nonce] = text.split('\n');
  if (!pid || !host || !nonce || !/^\d+$/.test(pid)) return undefined;
  return { pid: Number(pid), host, nonce };
}

function readOwner(path: string): { text: string; owner?: Owner; ageMs: number } | undefined {
  try {
    const ageMs = Date.now() - statSync(path).mtimeMs;
    const text = readFileSync(path, 'utf8');
    return { text, owner: parseOwner(text), ageMs };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function staleReason(seen: { owner?: Owner; ageMs: number }, staleMs: number): string | undefined {
  const { owner, ageMs } = seen;
  if (owner && owner.host === hostname() && !isAlive(owner.pid)) return `holder pid ${owner.pid} is gone`;
  if (ageMs > staleMs) return `held for ${Math.round(ageMs)} ms`;
  return undefined;
}

/**
 * Removes the lock we judged stale, but only if it is still that lock: it is first renamed to a
 * name of our own, so between two processes breaking it at once only one moves it, and a fresh
 * lock taken meanwhile by a third is put back instead of deleted.
 */
function breakLock(path: string, judged: string): void {
  const aside = `${path}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    renameSync(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    if (readFileSync(aside, 'utf8') !== judged) {
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

function tryCreate(path: string, content: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    writeSync(fd, content);
  } catch (err) {
    // An empty lock (disk full) would hold everyone off until it turned stale.
    closeSync(fd);
    unlinkSync(path);
    throw err;
  }
  closeSync(fd);
  return true;
}

/** Takes the lock, or returns undefined when `done()` says there is nothing left to do. */
export async function acquireLock(path: string, options: LockOptions): Promise<Lock | undefined> {
  const content = `${process.pid}\n${hostname()}\n${randomBytes(8).toString('hex')}\n`;
  const pollMs = options.pollMs ?? 50;
  const started = Date.now();
  for (;;) {
    if (tryCreate(path, content)) return heldLock(path, content);
    const seen = readOwner(path);
    if (!seen) continue;
    // A dead holder's lock is cleared even when there is nothing left to do, so none lingers.
    const waited = Date.now() - started;
    const reason = staleReason(seen, options.staleMs) ?? (waited >= options.waitMs ? `waited ${waited} ms` : undefined);
    if (reason) {
      log('breaking lock %s: %s', path, reason);
      breakLock(path, seen.text);
      continue;
    }
    if (options.done?.()) return undefined;
    // Jitter keeps a crowd of waiters from polling in lockstep.
    await sleep(pollMs / 2 + Math.random() * pollMs);
  }
}

const held = new Map<string, string>();
let exitHookInstalled = false;

function heldLock(path: string, content: string): Lock {
  held.set(path, content);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // A refresh cut short by a signal or an error exit must not leave its lock for others to wait on.
    process.on('exit', () => {
      for (const [p, c] of held) releaseIfOurs(p, c);
    });
  }
  return {
    release() {
      held.delete(path);
      releaseIfOurs(path, content);
    },
  };
}

function releaseIfOurs(path: string, content: string): void {
  try {
    if (readFileSync(path, 'utf8') === content) unlinkSync(path);
  } catch {
    // Gone already, or broken by a waiter that judged us stale.
  }
}
