/**
 * The certificate store: the key pair and `KEY-cert.pub`, and what state they are in.
 *
 * This module is on the hot path (`match` with a fresh certificate), so it reads two small files
 * synchronously and imports nothing heavy. Refreshing lives in refresh.ts, loaded only when needed.
 *
 * The clock offset to the gateway is kept in the certificate line's comment (ssh ignores it):
 * one file, replaced atomically, so the certificate and the clock it was judged by never disagree.
 * So is a change of the signing CA: the certificate itself carries its CA's key (whose
 * fingerprint is therefore kept with it), and when a refresh brings a certificate from another CA
 * than the one it replaces, the comment records when and which CA it was before, carried on by
 * later refreshes from the same CA, for status and doctor to show.
 * So is the fresh window (freshWindow) in this machine's clock and the key it is for, for the
 * shell check of the Match line (src/ssh/freshcheck.ts), which can read a line but neither parse
 * a certificate nor add a clock offset: written by the same rename that installs the certificate,
 * it can never describe another certificate, and one put there by any other hand has no such word.
 */
import { type Stats, statSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { CscsSaError, describeFsError, LocalFileError } from '../base/errors.js';
import { type FileRules, readTrusted } from '../base/trust.js';
import {
  type Certificate,
  CertType,
  FOREVER,
  type PublicKey,
  certifies,
  CertificateParseError,
  parseCertificate,
  parsePublicKey,
  printable,
  secondsLeft,
  namesLogin,
  unusableBecause,
} from './certificate.js';

/** The files beside a key pair: every module names them through keyPaths, none by hand. */
export interface KeyPaths {
  key: string;
  /** Where ssh-keygen puts the public half of KEY, and where ssh looks for it. */
  publicKey: string;
  /** Where ssh looks for a certificate of KEY (its CertificateFile default). */
  certificate: string;
  /** The refresh lock (src/refresh/lock.ts). */
  lock: string;
  /** The failure memo (src/refresh/memo.ts). */
  failed: string;
}

export function keyPaths(key: string): KeyPaths {
  return { key, publicKey: `${key}.pub`, certificate: `${key}-cert.pub`, lock: `${key}.lock`, failed: `${key}.failed` };
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    // Without an exception for a missing file: this runs for every ssh, several times.
    return statSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined; // missing, or unreachable: then it is named by its path
  }
}

/** A folder as what it is: the device and inode of its nearest existing ancestor, then the names below that. */
function folderIdentity(dir: string): string {
  const below: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    const stats = statOrUndefined(d);
    if (stats) return [`${stats.dev}:${stats.ino}`, ...below].join('/');
    if (d === dirname(d)) return dir;
    below.unshift(basename(d));
  }
}

/**
 * What the files of the key pair at `key` are, whatever the spelling of the path: each file by
 * its folder's identity and its name, and each existing one by its own device and inode (a hard
 * link). Two key pairs share a file when their lists meet.
 */
export function pairIdentity(key: string): string[] {
  const folder = folderIdentity(dirname(key));
  return Object.values(keyPaths(key)).flatMap((path) => {
    const stats = statOrUndefined(path);
    return [`${folder}/${basename(path)}`, ...(stats ? [`file ${stats.dev}:${stats.ino}`] : [])];
  });
}

export type CertStatus =
  | 'fresh'
  | 'missing'
  | 'unreadable'
  | 'no-public-key'
  | 'other-key'
  | 'not-user-certificate'
  | 'unusable'
  | 'other-login'
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
  /** The last change of the signing CA: when, and the fingerprint of the CA before. */
  caChange?: CaChange;
}

export interface CaChange {
  at: Date;
  /** `SHA256:...`, as ssh-keygen -l prints a key's fingerprint. */
  was: string;
}

/**
 * The comment word for the Match line's shell check: `fresh=FROM..UNTIL..KEY`, the fresh window in
 * whole seconds of this machine's clock and the base64 of the public key it was judged for (as the
 * `.pub` file has it), so that the shell can tell "this certificate, for this key pair" too.
 */
export const FRESH_WORD = 'fresh=';
export const FRESH_SEPARATOR = '..';

const META = /(?:^|\s)cscs-sa (?:fresh=\S+ )?offset=(-?\d+) refreshed=(\S+)(?: ca-changed=(\S+) ca-was=(SHA256:[A-Za-z0-9+/]+))?/;

/** What the fresh window is computed from: the certificate, the key it was checked for, the refresh margin. */
export interface FreshFor {
  certificate: Certificate;
  publicKey: PublicKey;
  marginSeconds: number;
}

/**
 * The certificate file's content for the gateway's certificate `line`: its type and data, and our
 * comment in place of the gateway's, which readMeta reads back: with `fresh`, the fresh window
 * first (freshWindow in seconds; none for a certificate that never expires), then the clock offset
 * and when it was written, and last a change of CA (caChange). The window is computed from the
 * offset as written, which is what judge() reads back.
 */
export function certificateFileText(line: string, clockOffsetMs: number, refreshedAt: Date, { fresh, caChange }: { fresh?: FreshFor; caChange?: CaChange } = {}): string {
  const [type, base64] = line.split(/\s+/);
  const offset = Math.round(clockOffsetMs);
  const window = fresh && freshWindow(fresh.certificate, fresh.marginSeconds, offset);
  const word = window && Number.isFinite(window.untilMs) ? `${FRESH_WORD}${[window.fromMs / 1000, window.untilMs / 1000, fresh.publicKey.blob.toString('base64')].join(FRESH_SEPARATOR)} ` : '';
  const change = caChange ? ` ca-changed=${caChange.at.toISOString()} ca-was=${caChange.was}` : '';
  return `${type} ${base64} cscs-sa ${word}offset=${offset} refreshed=${refreshedAt.toISOString()}${change}\n`;
}

function date(text: string | undefined): Date | undefined {
  const d = text === undefined ? undefined : new Date(text);
  return d && !Number.isNaN(d.getTime()) ? d : undefined;
}

function readMeta(comment: string): { clockOffsetMs: number; refreshedAt?: Date; caChange?: CaChange } {
  const m = META.exec(comment);
  if (!m) return { clockOffsetMs: 0 };
  const changedAt = date(m[3]);
  return { clockOffsetMs: Number(m[1]), refreshedAt: date(m[2]), caChange: changedAt && { at: changedAt, was: m[4]! } };
}

/**
 * What may be read of a file beside the key (public key, certificate): a regular file of a few
 * KB. ssh asks nothing more of them; anything else there (a FIFO, a device, a huge file) is not
 * one and must not block or slow the hot path.
 */
export function pairFileRules(what: string): FileRules {
  return { what, error: LocalFileError, maxBytes: 64 * 1024, owners: 'anyone', mode: 'any', action: 'read' };
}

function readText(path: string, what: string): string | undefined {
  return readTrusted(path, pairFileRules(what))?.text;
}

/**
 * The one rule for "fresh": the interval of this machine's clock, in ms, [fromMs, untilMs), in
 * which the certificate has started and has more than `marginSeconds` left by the gateway's clock
 * (local + clockOffsetMs). The offset is an upper bound (src/refresh/gateway.ts clockOffset): a
 * certificate counts as expiring up to a second and a round trip early, never late. One second
 * before valid_after counts as started, for a clock a little behind a gateway that sent no Date
 * header (offset 0). Both ends are whole seconds, rounded inward, because the
 * Match line's shell check compares `date +%s`: judge() decides by the same window the refresh
 * writes beside the certificate for it, so the two agree at every instant (a window rounded for
 * the shell alone left up to a second per lifetime in which the shell sent ssh to `match` and
 * match found the certificate fresh: a Node start for nothing).
 */
export function freshWindow(certificate: Certificate, marginSeconds: number, clockOffsetMs: number): { fromMs: number; untilMs: number } {
  const fromMs = Math.ceil(((Number(certificate.validAfter) - 1) * 1000 - clockOffsetMs) / 1000) * 1000;
  const untilMs = certificate.validBefore === FOREVER ? Infinity : Math.floor(((Number(certificate.validBefore) - marginSeconds) * 1000 - clockOffsetMs) / 1000) * 1000;
  return { fromMs, untilMs };
}

/**
 * Judges a certificate for `publicKey` at the gateway's clock. `marginSeconds` is how much
 * validity must be left for it to count as fresh; `login`, when known, the name ssh logs in as.
 */
export function judge(
  certificate: Certificate,
  publicKey: PublicKey,
  marginSeconds: number,
  clockOffsetMs: number,
  localNowMs = Date.now(),
  login?: string,
): { status: CertStatus; detail?: string; secondsLeft: number } {
  const left = secondsLeft(certificate, (localNowMs + clockOffsetMs) / 1000);
  const { fromMs, untilMs } = freshWindow(certificate, marginSeconds, clockOffsetMs);
  if (certificate.certType !== CertType.user) return { status: 'not-user-certificate', detail: 'a host certificate, not a user certificate', secondsLeft: left };
  if (!certifies(certificate, publicKey)) return { status: 'other-key', detail: 'certifies another key', secondsLeft: left };
  const unusable = unusableBecause(certificate);
  if (unusable) return { status: 'unusable', detail: unusable, secondsLeft: left };
  if (login !== undefined && !namesLogin(certificate, login)) {
    const names = certificate.principals.map((p) => `"${printable(p)}"`).join(', ') || 'no principal';
    return { status: 'other-login', detail: `names ${names}, not the login name "${printable(login)}"`, secondsLeft: left };
  }
  if (localNowMs < fromMs) return { status: 'not-yet-valid', detail: `valid only from ${new Date(Number(certificate.validAfter) * 1000).toISOString()}`, secondsLeft: left };
  if (left <= 0) return { status: 'expired', detail: `expired ${Math.round(-left)} s ago`, secondsLeft: left };
  if (localNowMs >= untilMs) return { status: 'expiring', detail: `${Math.floor(left)} s left, refresh margin ${marginSeconds} s`, secondsLeft: left };
  return { status: 'fresh', secondsLeft: left };
}

/**
 * Reads the key's public half and certificate and says whether the certificate can be used now,
 * for a login as `login` when that is known (the "user" setting).
 */
export function inspect(paths: KeyPaths, marginSeconds: number, localNowMs = Date.now(), login?: string): CertState {
  let certText: string | undefined;
  try {
    certText = readText(paths.certificate, 'certificate');
  } catch (err) {
    return { status: 'unreadable', detail: err instanceof CscsSaError ? err.message : describeFsError(err, 'read', paths.certificate), clockOffsetMs: 0 };
  }
  if (certText === undefined) return { status: 'missing', detail: `no certificate at ${paths.certificate}`, clockOffsetMs: 0 };
  let certificate: Certificate;
  try {
    certificate = parseCertificate(certText);
  } catch (err) {
    if (!(err instanceof CertificateParseError)) throw err;
    return { status: 'unreadable', detail: `${paths.certificate}: ${err.message}`, clockOffsetMs: 0 };
  }
  const base = { certificate, ...readMeta(certificate.comment) };
  let publicKey: PublicKey;
  try {
    const pubText = readText(paths.publicKey, 'public key');
    if (pubText === undefined) return { ...base, status: 'no-public-key', detail: `no public key at ${paths.publicKey}` };
    publicKey = parsePublicKey(pubText);
  } catch (err) {
    return { ...base, status: 'no-public-key', detail: `${paths.publicKey}: ${(err as Error).message}` };
  }
  return { ...base, publicKey, ...judge(certificate, publicKey, marginSeconds, base.clockOffsetMs, localNowMs, login) };
}
