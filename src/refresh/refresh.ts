/**
 * The slow path: one refresh shared by every process that needs it.
 *
 * Under the lock beside the key: look again (another process may have refreshed while we
 * waited), make sure the key pair exists, fetch a certificate, check it, and replace the file
 * atomically. A certificate that fails any check leaves the previous file untouched.
 */
import { dirname } from 'node:path';
import { apiKeyIdentity, readApiKey } from './apikey.js';
import { type Certificate, CertificateParseError, parseCertificate, type PublicKey } from '../core/certificate.js';
import type { Settings } from '../core/config.js';
import { Deadline } from '../base/deadline.js';
import { ApiKeyError, CscsSaError, describeFsError, GatewayResponseError, GatewayUnavailableError, LocalFileError } from '../base/errors.js';
import { makeFolders, sweepLeftovers, writeFileAtomic } from '../base/fsutil.js';
import { type GatewayOptions, requestCertificate } from './gateway.js';
import { ensureKeyPair, type KeyPair } from '../core/keypair.js';
import { verifySignature } from '../core/signature.js';
import { acquireLock, type Lock, LockBusyError } from './lock.js';
import { createLog } from '../base/log.js';
import { forgetFailure, isShownAbove, recalledFailure, rememberFailure } from './memo.js';
import { type CertState, certificateFileText, inspect, judge, type KeyPaths, keyPaths } from '../core/store.js';
import { version } from '../base/version.js';

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
async function lockKey(paths: KeyPaths, settings: Settings, deadline: Deadline, done?: () => boolean): Promise<Lock | undefined> {
  const dir = dirname(paths.key);
  try {
    makeFolders(dir, 0o700);
  } catch (err) {
    throw new LocalFileError(describeFsError(err, 'create folder', dir), { cause: err });
  }
  try {
    // A holder heartbeats while it works, so a lock from another host whose heartbeat is older
    // than a whole deadline has no one behind it.
    return await acquireLock(paths.lock, { deadline, staleMs: settings.timeout * 1000, done });
  } catch (err) {
    if (err instanceof CscsSaError) throw err;
    if (err instanceof LockBusyError) {
      throw new GatewayUnavailableError(`${err.holder} is still refreshing ${paths.certificate} after ${deadline}`, { fix: 'try again later, or raise "timeout"', cause: err });
    }
    throw new LocalFileError(describeFsError(err, 'lock', paths.lock), { cause: err });
  }
}

/** Creates the key pair if it is missing, under the same lock as refreshes. */
export async function prepareKeyPair(settings: Settings): Promise<KeyPair> {
  const paths = keyPaths(settings.key);
  const deadline = new Deadline(settings.timeout);
  const lock = (await lockKey(paths, settings, deadline))!;
  try {
    return await ensureKeyPair(paths, undefined, deadline.signal);
  } finally {
    lock.release();
  }
}

/** The failure memo beside the key, and what keys it (see memo.ts). */
function memoOf(paths: KeyPaths, settings: Settings): { path: string; material: string } {
  return { path: paths.failed, material: `${settings.authxUrl}\n${apiKeyIdentity(settings)}` };
}

/** Failures that are the same for whoever tries next within seconds: the key, the gateway. */
function isShared(err: unknown): err is CscsSaError {
  return err instanceof ApiKeyError || err instanceof GatewayUnavailableError || err instanceof GatewayResponseError;
}

export interface RefreshOptions {
  /** Refresh even when fresh, and ignore a remembered failure (sign --force, doctor). */
  force?: boolean;
  /** The budget for everything: lock wait, key pair, API key, gateway. Default: the "timeout" setting. */
  deadline?: Deadline;
}

export async function refreshCertificate(settings: Settings, { force = false, deadline = new Deadline(settings.timeout) }: RefreshOptions = {}): Promise<RefreshResult> {
  const paths = keyPaths(settings.key);
  const fresh = () => inspect(paths, settings.refreshMargin);
  const memo = memoOf(paths, settings);
  // Someone failed at this within seconds, with this gateway and this key: so do we, at once.
  const recall = () => {
    const failure = force ? undefined : recalledFailure(memo.path, memo.material, deadline.short);
    if (failure) throw failure;
  };
  recall();
  // While another process refreshes, its result is ours too (unless told to force), failure included.
  const lock = await lockKey(paths, settings, deadline, force ? undefined : () => fresh().status === 'fresh' || (recall(), false));
  if (!lock) return { state: fresh(), refreshed: false };
  const dir = dirname(paths.key);
  try {
    const swept = sweepLeftovers(dir, [paths.certificate, paths.publicKey, paths.key, paths.lock, memo.path], settings.timeout * 1000);
    if (swept.length > 0) log('removed leftovers of an interrupted refresh: %o', swept);
    const previous = fresh();
    if (!force) {
      if (previous.status === 'fresh') return { state: previous, refreshed: false };
      recall();
      log('refreshing: %s', previous.detail ?? previous.status);
    }
    try {
      const result = await fetchAndWrite(paths, settings, deadline, previous);
      forgetFailure(memo.path);
      return result;
    } catch (err) {
      // A short budget running out says little about the gateway: it binds only other short attempts.
      if (isShared(err)) rememberFailure(memo.path, memo.material, err, deadline.short && deadline.expired);
      throw err;
    }
  } finally {
    lock.release();
  }
}

async function fetchAndWrite(paths: KeyPaths, settings: Settings, deadline: Deadline, previous: CertState): Promise<RefreshResult> {
  const { publicKey, created } = await ensureKeyPair(paths, previous, deadline.signal);
  const apiKey = await readApiKey(settings, process.env, deadline);
  const signed = await requestCertificate(apiKey, publicKeyLine(publicKey), gatewayOptions(settings), deadline);
  const clockOffsetMs = signed.clockOffsetMs ?? 0;
  const { certificate, verdict } = checkSigned(signed.line, publicKey, clockOffsetMs);

  const refreshedAt = new Date();
  try {
    writeFileAtomic(paths.certificate, certificateFileText(signed.line, clockOffsetMs, refreshedAt, { certificate, publicKey, marginSeconds: settings.refreshMargin }), 0o644);
  } catch (err) {
    throw new LocalFileError(`${describeFsError(err, 'write certificate', paths.certificate)}; the previous certificate was kept`, { cause: err });
  }
  log('wrote %s (clock offset %d ms)', paths.certificate, clockOffsetMs);
  return { state: { ...verdict, certificate, publicKey, clockOffsetMs, refreshedAt }, refreshed: true, createdKey: created };
}

/** How long `match` tries to refresh a certificate that is still valid, waiting for the lock included. */
const OPPORTUNITY_SECONDS = 1.5;

/**
 * What `match` does when the certificate is not fresh. A missing or expired certificate is
 * refreshed within the whole deadline, and a failure is an error. One that is still valid, only
 * inside the refresh margin, makes the refresh an opportunity: a short budget, and on failure a
 * line to print (returned) while ssh goes on with the valid certificate. Another process still at
 * work on the refresh is no failure: nothing is printed.
 */
export async function refreshForSsh(settings: Settings, state: CertState): Promise<{ refreshed: boolean; warning?: string }> {
  if (state.status !== 'expiring') return { refreshed: (await refreshCertificate(settings)).refreshed };
  const deadline = new Deadline(Math.min(OPPORTUNITY_SECONDS, settings.timeout), true);
  try {
    return { refreshed: (await refreshCertificate(settings, { deadline })).refreshed };
  } catch (err) {
    if (!(err instanceof CscsSaError)) throw err;
    const left = Math.floor(inspect(keyPaths(settings.key), 0).secondsLeft ?? 0);
    if (err.cause instanceof LockBusyError || isShownAbove(err)) {
      log('another process is still refreshing; the current certificate has %d s left', left);
      return { refreshed: false };
    }
    return { refreshed: false, warning: `${err.message}: using the current certificate, valid for ${left} s more` };
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
    throw new GatewayResponseError(`gateway sent a certificate that does not parse (${err.message}); the previous certificate was kept`, { cause: err });
  }
  try {
    verifySignature(certificate);
  } catch (err) {
    if (!(err instanceof CertificateParseError)) throw err;
    throw new GatewayResponseError(`gateway sent a certificate with a bad CA signature (${err.message}); the previous certificate was kept`, { cause: err });
  }
  const verdict = judge(certificate, publicKey, 0, clockOffsetMs);
  if (verdict.status !== 'fresh') {
    throw new GatewayResponseError(`gateway sent an unusable certificate (${verdict.detail}); the previous certificate was kept`);
  }
  return { certificate, verdict };
}
