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
import type { GatewayOptions } from './gateway.js';
import { ensureKeyPair, type KeyPair } from '../core/keypair.js';
import { caFingerprint, verifySignature } from '../core/signature.js';
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
  /**
   * A line for people when this refresh replaced a certificate from one CA with one from another:
   * said once, by the process that saw the change (later refreshes carry it in the file quietly).
   */
  notice?: string;
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
  const fresh = () => inspect(paths, settings.refreshMargin, Date.now(), settings.user);
  const memo = memoOf(paths, settings);
  // Someone failed at this within seconds, with this gateway and this key: so do we, at once.
  const started = Date.now();
  const recall = (waitingSince?: number) => {
    const failure = force ? undefined : recalledFailure(memo.path, memo.material, deadline.short, waitingSince);
    if (failure) throw failure;
  };
  recall();
  // While another process refreshes, its result is ours too (unless told to force), failure included.
  const lock = await lockKey(paths, settings, deadline, force ? undefined : () => fresh().status === 'fresh' || (recall(started), false)).catch((err: unknown) => {
    // A holder busy for a whole deadline is the outcome for a process that comes after and finds
    // it still at work (the ProxyJump hop's match): remembered, that one fails at its first look
    // at the lock, quietly, instead of waiting a deadline more and printing the line again; one
    // that finds the lock free or abandoned goes on, and those already waiting wait out their own
    // deadlines. Not on a short budget: that wait ends quietly.
    if (!deadline.short && err instanceof CscsSaError && err.cause instanceof LockBusyError) rememberFailure(memo.path, memo.material, err, false, true);
    throw err;
  });
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
  // The HTTP client (undici, ~0.6 MB) is loaded only here: a process that waited for another's
  // refresh, or made only the key pair (setup), never needs it.
  const { requestCertificate } = await import('./gateway.js');
  const signed = await requestCertificate(apiKey, publicKeyLine(publicKey), gatewayOptions(settings), deadline);
  const clockOffsetMs = signed.clockOffsetMs ?? 0;
  const { certificate, verdict } = checkSigned(signed.line, publicKey, clockOffsetMs, settings);

  const refreshedAt = new Date();
  const ca = caFingerprint(certificate);
  const was = previous.certificate && caFingerprint(previous.certificate);
  const caChange = was === undefined ? undefined : was === ca ? previous.caChange : { at: refreshedAt, was };
  try {
    writeFileAtomic(paths.certificate, certificateFileText(signed.line, clockOffsetMs, refreshedAt, { caChange, fresh: { certificate, publicKey, marginSeconds: settings.refreshMargin } }), 0o644);
  } catch (err) {
    throw new LocalFileError(`${describeFsError(err, 'write certificate', paths.certificate)}; the previous certificate was kept`, { cause: err });
  }
  log('wrote %s (clock offset %d ms, CA %s)', paths.certificate, clockOffsetMs, ca);
  const notice =
    caChange?.at === refreshedAt
      ? `note: the gateway signed ${paths.certificate} with another CA (${ca}) than the certificate it replaced (${was}): if sshd refuses it, ask CSCS whether their CA changed`
      : undefined;
  return { state: { ...verdict, certificate, publicKey, clockOffsetMs, refreshedAt, caChange }, refreshed: true, createdKey: created, notice };
}

/** How long `match` tries to refresh a certificate that is still valid, waiting for the lock included. */
export const OPPORTUNITY_SECONDS = 1.5;

/**
 * How long a certificate must stay valid after that short try, by the gateway's clock, to be used
 * when the try fails: ssh reads it only after match exits, then connects through the jump host
 * (two key exchanges) before sshd checks it, which takes seconds on a slow link or a busy runner.
 * A certificate with less left is as good as expired: ssh would offer it and get "Permission
 * denied (publickey)".
 */
export const LOGIN_SECONDS = 5;

/**
 * The budget for `match`'s refresh of a certificate in `state`: the whole deadline counted from
 * `since`. A certificate that is still valid (only inside the refresh margin) and stays valid for
 * LOGIN_SECONDS beyond a short try makes the refresh an opportunity: that short budget, and on
 * failure ssh goes on with the certificate. Anything else (missing, expired, unusable, or about
 * to expire) gets the whole deadline.
 */
export function refreshBudget(settings: Pick<Settings, 'timeout'>, state: Pick<CertState, 'status' | 'secondsLeft'>, since = Date.now()): Deadline {
  const opportunity = Math.min(OPPORTUNITY_SECONDS, settings.timeout);
  const usable = state.status === 'expiring' && (state.secondsLeft ?? 0) >= opportunity + LOGIN_SECONDS;
  // The short try counts from now: the hot path never waits for a certificate that is still valid.
  return usable ? new Deadline(opportunity, true) : new Deadline(settings.timeout, false, since);
}

/**
 * What `match` does when the certificate is not fresh: refresh within refreshBudget from `since`
 * (when its hot path began to wait on another's refresh, if it did; else now). On the whole
 * deadline a failure is an error. On the short one it is a line to print (returned) while ssh goes
 * on with the valid certificate; another process still at work on the refresh is no failure:
 * nothing is printed. A refresh that brought another CA returns its notice as the line.
 */
export async function refreshForSsh(settings: Settings, state: CertState, since?: number): Promise<{ refreshed: boolean; warning?: string }> {
  const deadline = refreshBudget(settings, state, since);
  try {
    const { refreshed, notice } = await refreshCertificate(settings, { deadline });
    return { refreshed, warning: notice };
  } catch (err) {
    if (!deadline.short || !(err instanceof CscsSaError)) throw err;
    const left = Math.floor(inspect(keyPaths(settings.key), 0).secondsLeft ?? 0);
    if (err.cause instanceof LockBusyError || isShownAbove(err)) {
      log('another process is still refreshing; the current certificate has %d s left', left);
      return { refreshed: false };
    }
    return { refreshed: false, warning: `${err.message}: using the current certificate, valid for ${left} s more` };
  }
}

/** What to do about a certificate the gateway should not have sent, by what is wrong with it. */
const UNUSABLE_FIX: Partial<Record<CertState['status'], string>> = {
  'other-login': 'check that the API key is this account\'s, and the "user" setting (CSCS_SA_USERNAME)',
  unusable: 'ask CSCS about the certificates its gateway signs',
};

/**
 * The gateway's answer must be a certificate as sshd would parse it (cert_parse: structure and CA
 * signature), a user certificate for our key, valid now by the gateway's clock, that serves a
 * login through the block (certificate.ts unusableBecause) as the login name, when one is set.
 */
function checkSigned(line: string, publicKey: PublicKey, clockOffsetMs: number, settings: Pick<Settings, 'user'>): { certificate: Certificate; verdict: ReturnType<typeof judge> } {
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
  const verdict = judge(certificate, publicKey, 0, clockOffsetMs, Date.now(), settings.user);
  const fix = UNUSABLE_FIX[verdict.status];
  if (fix) throw new GatewayResponseError(`gateway sent a certificate that ${verdict.detail}; the previous certificate was kept`, { fix });
  if (verdict.status !== 'fresh') {
    throw new GatewayResponseError(`gateway sent an unusable certificate (${verdict.detail}); the previous certificate was kept`);
  }
  return { certificate, verdict };
}
