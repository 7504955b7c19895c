import { closeSync, existsSync, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { hostname } from 'node:os';
import { createHash, randomBytes } from 'node:crypto';
import { pidAlive } from './proc.js';

/** This host, short, in temporaries' names: a sweep judges a writer's pid only on its own host. */
const HOST_TAG = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);

/** The prefix of every temporary that stands for `path`: it carries the file's own name. */
export function tempPrefix(path: string): string {
  return `${basename(path)}.tmp-`;
}

/**
 * A temporary beside `path`, named after it (so each key's refresh sweeps only its own), with
 * this host and pid (so a sweep can tell a dead writer's leftover from a live one's work).
 */
export function tempPath(path: string): string {
  return join(dirname(path), `${tempPrefix(path)}${HOST_TAG}.${process.pid}.${randomBytes(4).toString('hex')}`);
}

/**
 * Replaces `path` so that a concurrent reader sees the old content or the new, never a part:
 * temp file in the same folder, fsync, rename, fsync of the folder.
 */
export function writeFileAtomic(path: string, data: string, mode: number): void {
  const tmp = tempPath(path);
  const fd = openSync(tmp, 'wx', mode);
  try {
    try {
      writeSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // Already renamed or never created: nothing to clean up.
    }
    throw err;
  }
  fsyncDir(dirname(path));
}

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some file systems refuse fsync on a directory; the rename itself is still atomic.
  }
}

function writerIsGone(suffix: string): boolean {
  const [host, pid] = suffix.split('.');
  return host === HOST_TAG && pid !== undefined && /^\d+$/.test(pid) && !pidAlive(Number(pid));
}

/**
 * Removes what an earlier process killed mid-write left in `dir`: temporaries of `paths` (named
 * by tempPath) that are certainly orphaned, because they are older than `maxAgeMs` (no writer
 * works longer than the deadline) or their writer's pid is gone on this host. A live writer's
 * temporary, of this key or any other, is never touched. The stat and the unlink need no lock
 * between them: a temporary's name is its writer's alone, and a writer that is gone or past its
 * deadline never writes it again.
 */
export function sweepLeftovers(dir: string, paths: string[], maxAgeMs: number): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  const prefixes = paths.map(tempPrefix);
  const now = Date.now();
  for (const name of names) {
    const prefix = prefixes.find((p) => name.startsWith(p));
    if (!prefix) continue;
    const path = join(dir, name);
    try {
      if (now - lstatSync(path).mtimeMs > maxAgeMs || writerIsGone(name.slice(prefix.length))) {
        unlinkSync(path);
        removed.push(path);
      }
    } catch {
      // Gone already.
    }
  }
  return removed;
}

/**
 * `mkdir -p DIR` with MODE for each folder it makes, one level at a time: Node 20's recursive
 * mkdirSync loops for ever where mkdir fails with ENOENT under a parent that exists (/proc),
 * and a Match exec that never ends hangs ssh. Here that is one error.
 */
export function makeFolders(dir: string, mode: number): void {
  const missing: string[] = [];
  for (let d = dir; !existsSync(d) && d !== dirname(d); d = dirname(d)) missing.unshift(d);
  for (const d of missing) {
    try {
      mkdirSync(d, { mode });
    } catch (err) {
      // Made meanwhile by a process beside us: what we wanted.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}
