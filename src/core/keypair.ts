/**
 * The service account's own key pair. Created once (ed25519, private 0600) when missing; an
 * existing pair is never replaced: the new private key is linked into place, which fails rather
 * than overwrite.
 *
 * An existing pair is checked as ssh checks it: the private key is opened (symlinks followed, as
 * ssh does) and the open file's owner and mode judged, and the `.pub` must be the private key's
 * public half, else the gateway would certify a key ssh cannot use.
 */
import { closeSync, constants, fstatSync, linkSync, lstatSync, openSync, readFileSync, renameSync, rmSync, type Stats } from 'node:fs';
import { hostname } from 'node:os';
import { type Certificate, certifies, type PublicKey, parsePublicKey } from './certificate.js';
import { trustedOwner } from './config.js';
import { runOpenSshTool } from '../base/child.js';
import { describeFsError, LocalFileError } from '../base/errors.js';
import { tempPath, writeFileAtomic } from '../base/fsutil.js';
import { createLog } from '../base/log.js';
import { type KeyPaths, keyPaths } from './store.js';

const log = createLog('keypair');

function statOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new LocalFileError(describeFsError(err, 'read', path), { cause: err });
  }
}

/**
 * The checks ssh itself makes before it uses a private key (sshkey_perm_ok: mode & 077 == 0), on
 * the open file (so a symlink's target), with the fix as data. ssh ignores the mode of a key
 * another user owns; we refuse such a key, since its owner can read it (root excepted: root can
 * read it anyway, and may provision it).
 */
function checkPrivateKey(path: string, stats: Stats): void {
  if (stats.isDirectory()) throw new LocalFileError(`key ${path} is a directory`, { fix: 'point -f (or "key") at a private key file' });
  if (!stats.isFile()) throw new LocalFileError(`key ${path} is not a regular file`, { fix: 'point -f (or "key") at a private key file' });
  if (!trustedOwner(stats)) {
    throw new LocalFileError(`key ${path} belongs to another user (uid ${stats.uid})`, { fix: 'use a key of your own (cscs-sa creates one at a path where none exists)' });
  }
  if ((stats.mode & 0o077) !== 0) {
    const mode = (stats.mode & 0o777).toString(8).padStart(4, '0');
    throw new LocalFileError(`key ${path} has permissions ${mode}, which ssh refuses`, { fix: `run chmod 600 ${path}` });
  }
}

/**
 * Opens the private key as ssh will and judges the open file (checkPrivateKey): its status when it
 * may be used, undefined when there is none, a LocalFileError with the fix otherwise. The refresh
 * and doctor both ask here, so doctor's verdict is the refresh's.
 */
export function openPrivateKey(path: string): Stats | undefined {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO at the path is refused below (not a regular file) instead of blocking us.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      // A dangling symlink is a key that is not there, but not one to create: linkSync would fail on it.
      if (lstatSync(path, { throwIfNoEntry: false })?.isSymbolicLink()) throw new LocalFileError(`key ${path} is a symbolic link to nothing`, { fix: 'restore its target or remove the link' });
      return undefined;
    }
    throw new LocalFileError(describeFsError(err, 'read', path));
  }
  let stats: Stats;
  try {
    stats = fstatSync(fd);
  } finally {
    closeSync(fd);
  }
  checkPrivateKey(path, stats);
  return stats;
}

/**
 * What proves a pair was checked before: the certificate of the last refresh certifies this very
 * `.pub`, and the private key file has not changed (ctime: content, mode, owner, a rename into
 * place) since that certificate was written. Every certificate is written only after its pair was
 * checked, so nothing needs storing beside it; the proof costs no I/O, as the refresh has read both.
 */
export interface PairProof {
  certificate?: Certificate;
  refreshedAt?: Date;
}

function provenPair(keyStats: Stats, publicKey: PublicKey, proof: PairProof | undefined): boolean {
  if (!proof?.certificate || !proof.refreshedAt) return false;
  return certifies(proof.certificate, publicKey) && keyStats.ctimeMs < proof.refreshedAt.getTime();
}

/** Refuses a `.pub` that is not the private key's public half, as `ssh-keygen -y` derives it. */
async function checkPair(paths: KeyPaths, publicKey: PublicKey, signal?: AbortSignal): Promise<void> {
  // -P '': an encrypted key fails at once instead of prompting on the terminal ssh runs us from.
  const derived = parsePublicKey(await sshKeygen(['-y', '-P', '', '-f', paths.key], signal));
  if (derived.type === publicKey.type && derived.blob.equals(publicKey.blob)) return;
  throw new LocalFileError(`${paths.publicKey} is not the public key of ${paths.key}`, {
    fix: `replace it with the private key's own: ssh-keygen -y -f ${paths.key} > ${paths.publicKey}`,
  });
}

function sshKeygen(args: string[], signal?: AbortSignal): Promise<string> {
  return runOpenSshTool('ssh-keygen', args, 'ssh-keygen failed', signal);
}

function readPublicKey(path: string): PublicKey {
  try {
    return parsePublicKey(readFileSync(path, 'utf8'));
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ? describeFsError(err, 'read', path) : `${path}: ${(err as Error).message}`;
    throw new LocalFileError(reason, { cause: err });
  }
}

export interface KeyPair {
  publicKey: PublicKey;
  /** Whether this call created the pair: there was no key at that path (a mistyped -f, a first run). */
  created: boolean;
}

/**
 * Makes sure the key pair exists and returns its public key. Call under the refresh lock.
 * `proof`: what the last refresh left (see PairProof), to skip deriving the public key again;
 * `signal`: the refresh's deadline.
 */
export async function ensureKeyPair(paths: KeyPaths, proof?: PairProof, signal?: AbortSignal): Promise<KeyPair> {
  const keyStats = openPrivateKey(paths.key);
  if (keyStats) {
    if (statOrUndefined(paths.publicKey)) {
      const publicKey = readPublicKey(paths.publicKey);
      if (!provenPair(keyStats, publicKey, proof)) {
        await checkPair(paths, publicKey, signal);
        log('checked that %s belongs to %s', paths.publicKey, paths.key);
      }
      return { publicKey, created: false };
    }
    // ssh-keygen -y derives the public half; an encrypted key would prompt, so BatchMode-like: no stdin.
    const line = await sshKeygen(['-y', '-P', '', '-f', paths.key], signal);
    writePublicKey(paths.publicKey, `${line.trim()}\n`);
    log('derived %s from the private key', paths.publicKey);
    return { publicKey: parsePublicKey(line), created: false };
  }
  if (statOrUndefined(paths.publicKey)) {
    throw new LocalFileError(`${paths.publicKey} exists but its private key ${paths.key} does not`, { fix: 'restore the key or move the .pub away' });
  }
  return createKeyPair(paths, signal);
}

function writePublicKey(path: string, line: string): void {
  try {
    writeFileAtomic(path, line, 0o644);
  } catch (err) {
    throw new LocalFileError(describeFsError(err, 'write', path), { cause: err });
  }
}

/** Creates the pair in the key's folder, which the refresh lock beside the key has already made. */
async function createKeyPair(paths: KeyPaths, signal?: AbortSignal): Promise<KeyPair> {
  // Named after the key: a refresh of another key in the same folder sweeps only its own temporaries.
  const tmp = keyPaths(tempPath(paths.key));
  try {
    await sshKeygen(['-q', '-t', 'ed25519', '-N', '', '-C', `cscs-sa@${hostname()}`, '-f', tmp.key], signal);
    try {
      linkSync(tmp.key, paths.key);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        // Another process (not holding our lock: an older version, a user) created it: keep theirs.
        return ensureKeyPair(paths, undefined, signal);
      }
      throw new LocalFileError(describeFsError(err, 'create', paths.key), { cause: err });
    }
    try {
      renameSync(tmp.publicKey, paths.publicKey);
    } catch (err) {
      throw new LocalFileError(describeFsError(err, 'create', paths.publicKey), { cause: err });
    }
    log('created key pair %s', paths.key);
    return { publicKey: readPublicKey(paths.publicKey), created: true };
  } finally {
    rmSync(tmp.key, { force: true });
    rmSync(tmp.publicKey, { force: true });
  }
}
