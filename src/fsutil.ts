import { closeSync, fsyncSync, openSync, readdirSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * Replaces `path` so that a concurrent reader sees the old content or the new, never a part:
 * temp file in the same folder, fsync, rename, fsync of the folder.
 */
export function writeFileAtomic(path: string, data: string, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
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

/**
 * Removes what an earlier process killed mid-refresh left in `dir`: files whose names start with
 * one of `prefixes` and are older than `minAgeMs`. Call while holding the refresh lock, when no
 * live process can be writing them.
 */
export function sweepLeftovers(dir: string, prefixes: string[], minAgeMs: number): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  const now = Date.now();
  for (const name of names) {
    if (!prefixes.some((prefix) => name.startsWith(prefix))) continue;
    const path = join(dir, name);
    try {
      if (now - statSync(path).mtimeMs >= minAgeMs) {
        unlinkSync(path);
        removed.push(path);
      }
    } catch {
      // Gone already.
    }
  }
  return removed;
}
