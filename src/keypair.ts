/**
 * The service account's own key pair. Created once (ed25519, private 0600) when missing; an
 * existing pair is never replaced: the new private key is linked into place, which fails rather
 * than overwrite.
 */
import { linkSync, lstatSync, readFileSync, renameSync, rmSync, type Stats } from 'node:fs';
import { hostname } from 'node:os';
import { type PublicKey, parsePublicKey } from './certificate.js';
import { runOpenSshTool } from './child.js';
import { describeFsError, LocalFileError } from './errors.js';
import { tempPath, writeFileAtomic } from './fsutil.js';
import { createLog } from './log.js';
import type { KeyPaths } from './store.js';

const log = createLog('keypair');

function statOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new LocalFileError(describeFsError(err, 'read', path));
  }
}

/** The checks ssh itself makes before it uses a private key, with the fix in the message. */
export function checkPrivateKey(path: string, stats: Stats): void {
  if (stats.isDirectory()) throw new LocalFileError(`key ${path} is a directory: point -f (or "key") at a private key file`);
  if (stats.isSymbolicLink()) return; // ssh follows it; the target's mode is what counts and lstat cannot see it
  if (!stats.isFile()) throw new LocalFileError(`key ${path} is not a regular file`);
  if ((stats.mode & 0o077) !== 0) {
    const mode = (stats.mode & 0o777).toString(8).padStart(4, '0');
    throw new LocalFileError(`key ${path} has permissions ${mode}, which ssh refuses: run chmod 600 ${path}`);
  }
}

function sshKeygen(args: string[], signal?: AbortSignal): Promise<string> {
  return runOpenSshTool('ssh-keygen', args, 'ssh-keygen failed', signal);
}

function readPublicKey(path: string): PublicKey {
  try {
    return parsePublicKey(readFileSync(path, 'utf8'));
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ? describeFsError(err, 'read', path) : `${path}: ${(err as Error).message}`;
    throw new LocalFileError(reason);
  }
}

/** Makes sure the key pair exists and returns its public key. Call under the refresh lock. */
export async function ensureKeyPair(paths: KeyPaths, signal?: AbortSignal): Promise<PublicKey> {
  const keyStats = statOrUndefined(paths.key);
  if (keyStats) {
    checkPrivateKey(paths.key, keyStats);
    if (statOrUndefined(paths.publicKey)) return readPublicKey(paths.publicKey);
    // ssh-keygen -y derives the public half; an encrypted key would prompt, so BatchMode-like: no stdin.
    const line = await sshKeygen(['-y', '-f', paths.key], signal);
    writePublicKey(paths.publicKey, `${line.trim()}\n`);
    log('derived %s from the private key', paths.publicKey);
    return parsePublicKey(line);
  }
  if (statOrUndefined(paths.publicKey)) {
    throw new LocalFileError(`${paths.publicKey} exists but its private key ${paths.key} does not: restore the key or move the .pub away`);
  }
  return createKeyPair(paths, signal);
}

function writePublicKey(path: string, line: string): void {
  try {
    writeFileAtomic(path, line, 0o644);
  } catch (err) {
    throw new LocalFileError(describeFsError(err, 'write', path));
  }
}

/** Creates the pair in the key's folder, which the refresh lock beside the key has already made. */
async function createKeyPair(paths: KeyPaths, signal?: AbortSignal): Promise<PublicKey> {
  // Named after the key: a refresh of another key in the same folder sweeps only its own temporaries.
  const tmp = tempPath(paths.key);
  try {
    await sshKeygen(['-q', '-t', 'ed25519', '-N', '', '-C', `cscs-sa@${hostname()}`, '-f', tmp], signal);
    try {
      linkSync(tmp, paths.key);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        // Another process (not holding our lock: an older version, a user) created it: keep theirs.
        return ensureKeyPair(paths, signal);
      }
      throw new LocalFileError(describeFsError(err, 'create', paths.key));
    }
    try {
      renameSync(`${tmp}.pub`, paths.publicKey);
    } catch (err) {
      throw new LocalFileError(describeFsError(err, 'create', paths.publicKey));
    }
    log('created key pair %s', paths.key);
    return readPublicKey(paths.publicKey);
  } finally {
    rmSync(tmp, { force: true });
    rmSync(`${tmp}.pub`, { force: true });
  }
}
