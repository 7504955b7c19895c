/**
 * Trust in the files cscs-sa reads and the folders they sit in, judged as OpenSSH judges them:
 * a file is opened once and judged on its open descriptor (owner, mode, type, size), so nothing
 * can be swapped in between; where the path itself matters (a config file names commands to run)
 * every component of the path as given is walked first, as safe_path() in OpenSSH's misc.c
 * walks the folders above a file, but also through each symbolic link and the folder that holds it.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readlinkSync, readSync, realpathSync, type Stats } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { type CscsSaError, describeFsError, type ErrorDetails } from './errors.js';

/** Who may own a file: we alone (files only cscs-sa writes), us or root (as OpenSSH), or anyone (a file the user names to read once). */
export type Owners = 'us' | 'us-or-root' | 'anyone';

/** Whether `stats` belongs to one of `owners`. */
export function ownedBy(stats: Pick<Stats, 'uid'>, owners: Owners = 'us-or-root'): boolean {
  const uid = process.getuid?.();
  if (owners === 'anyone' || uid === undefined) return true;
  return stats.uid === uid || (owners === 'us-or-root' && stats.uid === 0);
}

/** Mode as people write it: 0644. */
export function modeText(stats: Pick<Stats, 'mode'>): string {
  return (stats.mode & 0o777).toString(8).padStart(4, '0');
}

export interface FileRules {
  /** How messages name the file: "config file", "API key file", "key". */
  what: string;
  /** The error class of a refusal (its exit code is the caller's concern). */
  error: new (message: string, details?: ErrorDetails) => CscsSaError;
  /** The most bytes it may hold: a file far larger than its kind is not one, and must not cost every ssh a long read. */
  maxBytes: number;
  owners?: Owners;
  /**
   * 'secret': readable by us alone (mode & 077 == 0, sshkey_perm_ok); 'private': mode exactly 0600;
   * 'not-writable' (the default): writable by no one else (mode & 022 == 0, as StrictModes).
   */
  mode?: 'secret' | 'private' | 'not-writable' | 'any';
  /** Refusing a secret readable by others: what that means ("readable by others", "which ssh refuses"). */
  secretWhy?: string;
  /** After each refusal, what it means for the file ("so nothing in it is used"). */
  consequence?: string;
  /** The fix for a file of another user. */
  ownerFix?: string;
  /** The fix for something that is not a regular file. */
  typeFix?: string;
  /** One fix for every refusal, in place of the ones above (a file only cscs-sa names, e.g. a log). */
  fix?: string;
  /** The verb of an open failure: "cannot ACTION PATH: reason". */
  action?: string;
  /** Walk every component of the path as given before trusting what the open found (safe_path). */
  walk?: boolean;
  /** Refuse a symbolic link as the last component (O_NOFOLLOW), for files only cscs-sa creates. */
  noFollow?: boolean;
}

/** A file opened and judged: its descriptor (the caller closes it) and what fstat said of it. */
export interface TrustedFd {
  fd: number;
  stats: Stats;
}

function refuse(rules: FileRules, message: string, ownFix: string | undefined, cause?: unknown): CscsSaError {
  const fix = rules.fix ?? ownFix;
  return new rules.error(`${message}${rules.consequence ?? ''}`, { ...(fix === undefined ? {} : { fix }), ...(cause === undefined ? {} : { cause }) });
}

/** Judges an open file's status by `rules`: throws the refusal, with its fix. */
export function judgeFile(path: string, stats: Stats, rules: FileRules): void {
  const { what } = rules;
  if (!stats.isFile()) {
    throw refuse(rules, `${what} ${path} ${stats.isDirectory() ? 'is a directory' : 'is not a regular file'}`, rules.typeFix ?? `point it at a file, or remove what is at ${path}`);
  }
  const owners = rules.owners ?? 'us-or-root';
  if (!ownedBy(stats, owners)) {
    throw refuse(rules, `${what} ${path} belongs to another user (uid ${stats.uid})`, rules.ownerFix ?? 'remove it, or replace it with a file of your own');
  }
  const mode = rules.mode ?? 'not-writable';
  if (mode === 'not-writable' && (stats.mode & 0o022) !== 0) throw refuse(rules, `${what} ${path} is writable by others`, `chmod go-w ${path}`);
  if (mode === 'secret' && (stats.mode & 0o077) !== 0) throw refuse(rules, `${what} ${path} has permissions ${modeText(stats)}, ${rules.secretWhy ?? 'readable by others'}`, `run chmod 600 ${path}`);
  if (mode === 'private' && (stats.mode & 0o777) !== 0o600) throw refuse(rules, `${what} ${path} has permissions ${modeText(stats)}, not 0600`, `run chmod 600 ${path}`);
  if (stats.size > rules.maxBytes) throw refuse(rules, `${what} ${path} is ${stats.size} bytes, more than such a file holds (${rules.maxBytes})`, `check that ${path} is the right file`);
}

/** Folders at or above which the walk trusts what it finds: those strictly above the home folder (safe_path stops at home). */
function aboveHome(): Set<string> {
  const above = new Set<string>();
  let home: string;
  try {
    home = realpathSync.native(homedir());
  } catch {
    return above; // no home folder: the walk goes up to /
  }
  for (let dir = dirname(home); ; dir = dirname(dir)) {
    above.add(dir);
    if (dir === dirname(dir)) return above;
  }
}

/** Symbolic links followed at most, as the kernel's ELOOP limit. */
const MAX_LINKS = 40;

/**
 * Resolves `path` one component at a time, as the kernel does, and refuses it unless every
 * folder it passes through (below the home folder's parents) belongs to us or root and no one
 * else can write it, and every symbolic link on the way belongs to us or root. Whoever can write
 * such a folder or link could point the path at a file of their choosing between two uses. Returns
 * the real path.
 */
export function walkPath(path: string, rules: FileRules): string {
  const skip = aboveHome();
  // Folders already judged, and the status of those stepped into (so each is lstat'ed once).
  const judged = new Set<string>();
  const seen = new Map<string, Stats>();
  const folder = (dir: string) => {
    if (skip.has(dir) || judged.has(dir)) return;
    const stats = seen.get(dir) ?? lstatSync(dir);
    if (!ownedBy(stats)) throw refuse(rules, `${rules.what} ${path} is in folder ${dir}, which belongs to another user (uid ${stats.uid})`, `move the ${rules.what} to a folder of your own`);
    if ((stats.mode & 0o022) !== 0) throw refuse(rules, `${rules.what} ${path} is in folder ${dir}, which others can write`, `chmod go-w ${dir}, or move the ${rules.what} to a folder only you can write`);
    judged.add(dir);
  };
  const parts = (p: string) => p.split('/').filter((c) => c !== '' && c !== '.');
  let todo = parts(path);
  let current = isAbsolute(path) ? '/' : process.cwd();
  let links = 0;
  while (todo.length > 0) {
    const name = todo.shift()!;
    if (name === '..') {
      current = dirname(current);
      continue;
    }
    folder(current);
    const next = join(current, name);
    const stats = lstatSync(next);
    if (!stats.isSymbolicLink()) {
      seen.set(next, stats);
      current = next;
      continue;
    }
    if (++links > MAX_LINKS) throw refuse(rules, `${rules.what} ${path}: too many symbolic links`, 'point it at the file itself');
    if (!ownedBy(stats)) throw refuse(rules, `${rules.what} ${path} is reached through symbolic link ${next}, which belongs to another user (uid ${stats.uid})`, `point it at the file itself, or remove ${next}`);
    const target = readlinkSync(next);
    if (isAbsolute(target)) current = '/';
    todo = [...parts(target), ...todo];
  }
  return current;
}

/**
 * Opens `path` once (O_NONBLOCK: a FIFO is refused, not waited on) and judges the open file by
 * `rules`; with `rules.walk`, also the path as given, and the file the walk ends at must be the
 * one opened. Returns the descriptor, which the caller closes; undefined when there is no file.
 */
export function openTrusted(path: string, rules: FileRules, flags = constants.O_RDONLY): TrustedFd | undefined {
  let fd: number;
  try {
    // 0600 only matters with O_CREAT (a log file): what cscs-sa creates is ours alone.
    fd = openSync(path, flags | constants.O_NONBLOCK | (rules.noFollow ? constants.O_NOFOLLOW : 0), 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP' && rules.noFollow) throw refuse(rules, `${rules.what} ${path} is a symbolic link`, `remove it (rm ${path})`, err);
    // A FIFO without a reader refuses an O_WRONLY open; with one, fstat below refuses it.
    if (code === 'ENXIO') throw refuse(rules, `${rules.what} ${path} is not a regular file`, rules.typeFix ?? `remove what is at ${path}`, err);
    throw new rules.error(describeFsError(err, rules.action ?? `read ${rules.what}`, path), { cause: err, ...(rules.fix === undefined ? {} : { fix: rules.fix }) });
  }
  try {
    const stats = fstatSync(fd);
    judgeFile(path, stats, rules);
    if (rules.walk) {
      const real = lstatSync(walkPath(path, rules));
      if (real.dev !== stats.dev || real.ino !== stats.ino) throw refuse(rules, `${rules.what} ${path} changed while it was checked`, 'run the command again');
    }
    return { fd, stats };
  } catch (err) {
    closeSync(fd);
    if (err instanceof rules.error) throw err;
    throw new rules.error(describeFsError(err, rules.action ?? `read ${rules.what}`, path), { cause: err });
  }
}

/**
 * Reads at most `maxBytes` from `fd`, refusing more: a file may grow after its fstat, and a pipe
 * has no size. `size` (fstat's) sizes the buffer, so a small file costs a small read.
 */
export function readCapped(fd: number, path: string, rules: FileRules, size = 0): string {
  const buffer = Buffer.allocUnsafe(Math.min(rules.maxBytes, Math.max(size, 4096)) + 1);
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buffer, 0, buffer.length, null);
    } catch (err) {
      throw new rules.error(describeFsError(err, rules.action ?? `read ${rules.what}`, path), { cause: err });
    }
    if (n === 0) break;
    total += n;
    if (total > rules.maxBytes) throw refuse(rules, `${rules.what} ${path} holds more than ${rules.maxBytes} bytes, more than such a file holds`, `check that ${path} is the right file`);
    chunks.push(Buffer.from(buffer.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The text of a trusted file (see openTrusted), or undefined when there is none. */
export function readTrusted(path: string, rules: FileRules): { text: string; stats: Stats } | undefined {
  const opened = openTrusted(path, rules);
  if (!opened) return undefined;
  try {
    return { text: readCapped(opened.fd, path, rules, opened.stats.size), stats: opened.stats };
  } finally {
    closeSync(opened.fd);
  }
}
