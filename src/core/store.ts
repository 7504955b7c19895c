/**
 * The certificate store: the key pair and `KEY-cert.pub`, and what state they are in.
 *
 * This module is on the hot path (`match` with a fresh certificate), so it reads two small files
 * synchronously and imports nothing heavy. Refreshing lives in refresh.ts, loaded only when needed.
 *
 * The clock offset to the gateway is kept in the certificate line's comment (ssh ignores it):
 * one file, replaced atomically, so the certificate and the clock it was judged by never disagree.
 * So is the fresh window (freshWindow) in this machine's clock and the key it is for, for the
 * shell check of the Match line (src/ssh/freshcheck.ts), which can read a line but neither parse
 * a certificate nor add a clock offset: written by the same rename that installs the certificate,
 * it can never describe another certificate, and one put there by any other hand has no such word.
 */
import { readFileSync } from 'node:fs';
import { describeFsError } from '../base/errors.js';
import {
  type Certificate,
  CertType,
  FOREVER,
  type PublicKey,
  certifies,
  CertificateParseError,
  parseCertificate,
  parsePublicKey,
  secondsLeft,
} from './certificate.js';

export interface KeyPaths {
  key: string;
  publicKey: string;
  certificate: string;
  lock: string;
}

export function keyPaths(key: string): KeyPaths {
  return { key, publicKey: `${key}.pub`, certificate: `${key}-cert.pub`, lock: `${key}.lock` };
}

export type CertStatus =
  | 'fresh'
  | 'missing'
  | 'unreadable'
  | 'no-public-key'
  | 'other-key'
  | 'not-user-certificate'
  | 'not-yet-valid'
  | 'expiring'
  | 'expired';

export interface CertState {
  status: CertStatus;
  /** Human detail for anything but fresh. */
  detail?: string;
  certificate?: Certificate;
  publicKey?: PublicKey;
  /** Seconds left by the gateway's clock (local clock + offset). */
  secondsLeft?: number;
  /** Gateway clock minus local clock, in ms, learned at the last refresh. */
  clockOffsetMs: number;
  refreshedAt?: Date;
}

/**
 * The comment word for the Match line's shell check: `fresh=FROM..UNTIL..KEY`, the fresh window in
 * whole seconds of this machine's clock and the base64 of the public key it was judged for (as the
 * `.pub` file has it), so that the shell can tell "this certificate, for this key pair" too.
 */
export const FRESH_WORD = 'fresh=';
export const FRESH_SEPARATOR = '..';

const META = /(?:^|\s)cscs-sa (?:fresh=\S+ )?offset=(-?\d+) refreshed=(\S+)/;

/**
 * The comment the refresh writes after a certificate for `publicKey`: the fresh window (unless the
 * certificate never expires), the clock offset and when it was written. A second n in
 * [FROM, UNTIL) has all of its instants in freshWindow.
 */
export function formatComment(certificate: Certificate, publicKey: PublicKey, marginSeconds: number, clockOffsetMs: number, refreshedAt: Date): string {
  const { fromMs, untilMs } = freshWindow(certificate, marginSeconds, clockOffsetMs);
  const fresh = Number.isFinite(untilMs) ? `${FRESH_WORD}${[Math.ceil(fromMs / 1000), Math.floor(untilMs / 1000), publicKey.blob.toString('base64')].join(FRESH_SEPARATOR)} ` : '';
  return `cscs-sa ${fresh}offset=${Math.round(clockOffsetMs)} refreshed=${refreshedAt.toISOString()}`;
}

function readMeta(comment: string): { clockOffsetMs: number; refreshedAt?: Date } {
  const m = META.exec(comment);
  if (!m) return { clockOffsetMs: 0 };
  const refreshedAt = new Date(m[2]!);
  return { clockOffsetMs: Number(m[1]), refreshedAt: Number.isNaN(refreshedAt.getTime()) ? undefined : refreshedAt };
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * The one rule for "fresh": the interval of this machine's clock, in ms, [fromMs, untilMs), in
 * which the certificate has started and has more than `marginSeconds` left by the gateway's clock
 * (local + clockOffsetMs). The gateway's Date header has one-second resolution, so one second
 * before valid_after counts as started. judge() decides by it, and the refresh writes it beside
 * the certificate for the Match line's shell check, so the two cannot disagree.
 */
export function freshWindow(certificate: Certificate, marginSeconds: number, clockOffsetMs: number): { fromMs: number; untilMs: number } {
  const fromMs = (Number(certificate.validAfter) - 1) * 1000 - clockOffsetMs;
  const untilMs = certificate.validBefore === FOREVER ? Infinity : (Number(certificate.validBefore) - marginSeconds) * 1000 - clockOffsetMs;
  return { fromMs, untilMs };
}

/**
 * Judges a certificate for `publicKey` at the gateway's clock. `marginSeconds` is how much
 * validity must be left for it to count as fresh.
 */
export function judge(
  certificate: Certificate,
  publicKey: PublicKey,
  marginSeconds: number,
  clockOffsetMs: number,
  localNowMs = Date.now(),
): { status: CertStatus; detail?: string; secondsLeft: number } {
  const left = secondsLeft(certificate, (localNowMs + clockOffsetMs) / 1000);
  const { fromMs, untilMs } = freshWindow(certificate, marginSeconds, clockOffsetMs);
  if (certificate.certType !== CertType.user) return { status: 'not-user-certificate', detail: 'a host certificate, not a user certificate', secondsLeft: left };
  if (!certifies(certificate, publicKey)) return { status: 'other-key', detail: 'certifies another key', secondsLeft: left };
  if (localNowMs < fromMs) return { status: 'not-yet-valid', detail: `valid only from ${new Date(Number(certificate.validAfter) * 1000).toISOString()}`, secondsLeft: left };
  if (left <= 0) return { status: 'expired', detail: `expired ${Math.round(-left)} s ago`, secondsLeft: left };
  if (localNowMs >= untilMs) return { status: 'expiring', detail: `${Math.floor(left)} s left, refresh margin ${marginSeconds} s`, secondsLeft: left };
  return { status: 'fresh', secondsLeft: left };
}

/** Reads the key's public half and certificate and says whether the certificate can be used now. */
export function inspect(paths: KeyPaths, marginSeconds: number, localNowMs = Date.now()): CertState {
  let certText: string | undefined;
  try {
    certText = readText(paths.certificate);
  } catch (err) {
    return { status: 'unreadable', detail: describeFsError(err, 'read', paths.certificate), clockOffsetMs: 0 };
  }
  if (certText === undefined) return { status: 'missing', detail: `no certificate at ${paths.certificate}`, clockOffsetMs: 0 };
  let certificate: Certificate;
  try {
    certificate = parseCertificate(certText);
  } catch (err) {
    if (!(err instanceof CertificateParseError)) throw err;
    return { status: 'unreadable', detail: `${paths.certificate}: ${err.message}`, clockOffsetMs: 0 };
  }
  const { clockOffsetMs, refreshedAt } = readMeta(certificate.comment);
  const base = { certificate, clockOffsetMs, refreshedAt };
  let publicKey: PublicKey;
  try {
    const pubText = readText(paths.publicKey);
    if (pubText === undefined) return { ...base, status: 'no-public-key', detail: `no public key at ${paths.publicKey}` };
    publicKey = parsePublicKey(pubText);
  } catch (err) {
    return { ...base, status: 'no-public-key', detail: `${paths.publicKey}: ${(err as Error).message}` };
  }
  return { ...base, publicKey, ...judge(certificate, publicKey, marginSeconds, clockOffsetMs, localNowMs) };
}
