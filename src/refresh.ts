/**
 * The slow path: one refresh shared by every process that needs it.
 *
 * Under the lock beside the key: look again (another process may have refreshed while we
 * waited), make sure the key pair exists, fetch a certificate, check it, and replace the file
 * atomically. A certificate that fails any check leaves the previous file untouched.
 */
import { mkdirSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { readApiKey } from './apikey.js';
import { type Certificate, CertificateParseError, parseCertificate, type PublicKey } from './certificate.js';
import type { Settings } from './config.js';
import { describeFsError, GatewayResponseError, LocalFileError } from './errors.js';
import { sweepLeftovers, writeFileAtomic } from './fsutil.js';
import { type GatewayOptions, requestCertificate } from './gateway.js';
import { ensureKeyPair, KEYGEN_PREFIX, type KeyPair } from './keypair.js';
import { verifySignature } from './signature.js';
import { acquireLock, type Lock } from './lock.js';
import { createLog } from './log.js';
import { type CertState, formatComment, inspect, judge, type KeyPaths, keyPaths } from './store.js';
import { version } from './version.js';

const log = createLog('refresh');

export function gatewayOptions(settings: Settings): GatewayOptions {
  return {
    baseUrl: settings.authxUrl,
    timeoutSeconds: settings.timeout,
    connectTimeoutSeconds: settings.connectTimeout,
    userAgent: `cscs-sa/${version()} (${process.platform}; ${process.arch}; node ${process.versions.node})`,
  };
}

export interface RefreshResult {
  state: CertState;
  /** Whether this process fetched the certificate (false: it was fresh, or another process refreshed). */
  refreshed: boolean;
  /** Whether this process created the key pair first. */
  createdKey?: boolean;
}

function publicKeyLine(key: PublicKey): string {
  return `${key.type} ${key.blob.toString('base64')}`;
}

/** Takes the lock beside the key (creating its folder), or returns undefined when `done()` says there is nothing left to do. */
async function lockKey(paths: KeyPaths, settings: Settings, done?: () => boolean): Promise<Lock | undefined> {
  const dir = dirname(paths.key);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new LocalFileError(describeFsError(err, 'create folder', dir));
  }
  // The holder's work is bounded by the gateway deadline, so no one waits much longer than that.
  const waitMs = (settings.timeout + 2) * 1000;
  try {
    return await acquireLock(paths.lock, { waitMs, staleMs: waitMs, done });
  } catch (err) {
    throw new LocalFileError(describeFsError(err, 'lock', paths.lock));
  }
}

/** Creates the key pair if it is missing, under the same lock as refreshes. */
export async function prepareKeyPair(settings: Settings): Promise<KeyPair> {
  const paths = keyPaths(settings.key);
  const lock = (await lockKey(paths, settings))!;
  try {
    return await ensureKeyPair(paths);
  } finally {
    lock.release();
  }
}

export async function refreshCertificate(settings: Settings, { force = false } = {}): Promise<RefreshResult> {
  const paths = keyPaths(settings.key);
  const fresh = () => inspect(paths, settings.refreshMargin);
  // While another process refreshes, its result is ours too (unless told to force).
  const lock = await lockKey(paths, settings, force ? undefined : () => fresh().status === 'fresh');
  if (!lock) return { state: fresh(), refreshed: false };
  const dir = dirname(paths.key);
  try {
    // Under the lock no live process writes temporaries, so any there are from one killed mid-refresh;
    // a broken lock's aside copy is left alone for a while in case its breaker is still at work.
    const swept = [
      ...sweepLeftovers(dir, [`${basename(paths.certificate)}.tmp-`, `${basename(paths.publicKey)}.tmp-`, KEYGEN_PREFIX], 0),
      ...sweepLeftovers(dir, [`${basename(paths.lock)}.stale-`], 10_000),
    ];
    if (swept.length > 0) log('removed leftovers of an interrupted refresh: %o', swept);
    const previous = fresh();
    if (!force) {
      if (previous.status === 'fresh') return { state: previous, refreshed: false };
      log('refreshing: %s', previous.detail ?? previous.status);
    }
    const { publicKey, created } = await ensureKeyPair(paths, previous);
    const apiKey = await readApiKey(settings);
    const signed = await requestCertificate(apiKey, publicKeyLine(publicKey), gatewayOptions(settings));
    const clockOffsetMs = signed.clockOffsetMs ?? 0;
    const { certificate, verdict } = checkSigned(signed.line, publicKey, clockOffsetMs);

    const refreshedAt = new Date();
    const [type, base64] = signed.line.split(/\s+/);
    const content = `${type} ${base64} ${formatComment(clockOffsetMs, refreshedAt)}\n`;
    try {
      writeFileAtomic(paths.certificate, content, 0o644);
    } catch (err) {
      throw new LocalFileError(`${describeFsError(err, 'write certificate', paths.certificate)}; the previous certificate was kept`);
    }
    log('wrote %s (clock offset %d ms)', paths.certificate, clockOffsetMs);
    return { state: { ...verdict, certificate, publicKey, clockOffsetMs, refreshedAt }, refreshed: true, createdKey: created };
  } finally {
    lock.release();
  }
}

/**
 * The gateway's answer must be a certificate as sshd would parse it (cert_parse: structure and CA
 * signature), a user certificate for our key, valid now by the gateway's clock.
 */
function checkSigned(line: string, publicKey: PublicKey, clockOffsetMs: number): { certificate: Certificate; verdict: ReturnType<typeof judge> } {
  let certificate;
  try {
    certificate = parseCertificate(line);
  } catch (err) {
    if (!(err instanceof CertificateParseError)) throw err;
    throw new GatewayResponseError(`gateway sent a certificate that does not parse (${err.message}); the previous certificate was kept`);
  }
  try {
    verifySignature(certificate);
  } catch (err) {
    if (!(err instanceof CertificateParseError)) throw err;
    throw new GatewayResponseError(`gateway sent a certificate with a bad CA signature (${err.message}); the previous certificate was kept`);
  }
  const verdict = judge(certificate, publicKey, 0, clockOffsetMs);
  if (verdict.status !== 'fresh') {
    throw new GatewayResponseError(`gateway sent an unusable certificate (${verdict.detail}); the previous certificate was kept`);
  }
  return { certificate, verdict };
}
