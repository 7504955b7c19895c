/**
 * The failure memo: `KEY.failed`, what the last refresh failed with, valid for a few seconds.
 *
 * Waiters on the lock read it when the holder gives up and fail with the same line instead of
 * trying again one after another; the ProxyJump hop's `match`, and every ssh of a burst, fail at
 * once instead of each paying the whole deadline against a gateway that is already failing.
 *
 * It is keyed by what decides the outcome, the gateway URL and the API key's source, so that
 * fixing the cause (a new API key, another gateway) is never masked by an old failure. The file
 * never holds the key: only a salted scrypt hash of it, with a random salt per memo. scrypt makes
 * each guess expensive and the salt makes each memo's hash different, so the file cannot be
 * turned back into the key (nor matched against another machine's memo), even for a weak key.
 *
 * Through ProxyJump, ssh runs a second ssh for the jump host, whose `match` would print the same
 * line again on the same terminal. The memo lists the ssh processes whose user has seen the line
 * (pid and start time of the nearest `ssh` ancestor of each process that printed it); a process
 * below one of them stays quiet and only exits with the same code (Linux /proc; elsewhere the
 * line shows twice).
 */
import { readFileSync, rmSync } from 'node:fs';
import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { ApiKeyError, ConfigError, type CscsSaError, GatewayResponseError, GatewayUnavailableError, LocalFileError } from '../base/errors.js';
import { writeFileAtomic } from '../base/fsutil.js';
import { createLog } from '../base/log.js';
import { type Ancestor, ancestors } from '../base/proc.js';

const log = createLog('memo');

/** How long a failure stands for everyone: long enough for a burst and a ProxyJump hop. */
export const MEMO_TTL_MS = 5000;

const CLASSES = [ApiKeyError, GatewayUnavailableError, GatewayResponseError, LocalFileError, ConfigError];

interface Stored {
  salt: string;
  hash: string;
  at: number;
  /** Failed on a shortened budget (the refresh margin's opportunity): binds only such attempts. */
  short: boolean;
  /** ssh processes (pid/start) below which the line has been printed. */
  shownTo: string[];
  code: string;
  message: string;
  fix?: string;
}

/** Errors recalled from a memo whose line an ancestor ssh has already shown: exit with their code, print nothing. */
const shownAbove = new WeakSet<Error>();

export function isShownAbove(err: unknown): boolean {
  return err instanceof Error && shownAbove.has(err);
}

/** This process's ancestors as pid/start (Linux), nearest first, and the nearest one named ssh. */
function lineage(): { ids: string[]; ssh?: string } {
  const list = ancestors(12);
  const id = (a: Ancestor) => `${a.pid}/${a.start}`;
  const ssh = list.find((a) => a.comm === 'ssh');
  return { ids: list.map(id), ssh: ssh && id(ssh) };
}

function hashOf(material: string, salt: Buffer): Buffer {
  // N = 2^12: about 5 ms, paid only on the refresh path.
  return scryptSync(material, salt, 32, { N: 4096 });
}

/** Records `err` as the outcome for `material` (gateway URL and API key source). */
export function rememberFailure(path: string, material: string, err: CscsSaError, short: boolean): void {
  const salt = randomBytes(16);
  const { ssh } = lineage();
  write(path, {
    salt: salt.toString('hex'),
    hash: hashOf(material, salt).toString('hex'),
    at: Date.now(),
    short,
    shownTo: ssh ? [ssh] : [],
    code: err.code,
    message: err.message,
    fix: err.fix,
  });
}

function write(path: string, stored: Stored): void {
  try {
    writeFileAtomic(path, `${JSON.stringify(stored)}\n`, 0o600);
  } catch (err) {
    log('cannot write %s: %s', path, (err as Error).message);
  }
}

export function forgetFailure(path: string): void {
  rmSync(path, { force: true });
}

/**
 * The failure recorded for `material` within the last few seconds, as the error it was; else
 * undefined. A failure on a shortened budget binds only `short` attempts: a full deadline may
 * well succeed where 1.5 s did not.
 */
export function recalledFailure(path: string, material: string, short: boolean, now = Date.now()): CscsSaError | undefined {
  let stored: Stored;
  try {
    stored = JSON.parse(readFileSync(path, 'utf8')) as Stored;
  } catch {
    return undefined; // none, or unreadable: a memo is only ever a shortcut
  }
  // A memo from the future (a clock stepped back) is not trusted.
  if (typeof stored.at !== 'number' || now - stored.at >= MEMO_TTL_MS || stored.at > now + 1000) return undefined;
  if (stored.short && !short) return undefined;
  const Class = CLASSES.find((c) => new c('').code === stored.code);
  if (!Class || typeof stored.message !== 'string' || typeof stored.salt !== 'string' || typeof stored.hash !== 'string') return undefined;
  const expected = Buffer.from(stored.hash, 'hex');
  const actual = hashOf(material, Buffer.from(stored.salt, 'hex'));
  if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) return undefined;
  log('failure recorded %d ms ago: %s', now - stored.at, stored.message);
  const err = new Class(stored.message, stored.fix === undefined ? {} : { fix: stored.fix });
  const shownTo = Array.isArray(stored.shownTo) ? stored.shownTo : [];
  const { ids, ssh } = lineage();
  if (ids.some((id) => shownTo.includes(id))) {
    shownAbove.add(err);
  } else if (ssh) {
    // We print it below this ssh: its ProxyJump hop need not. A lost update costs one more line.
    write(path, { ...stored, shownTo: [...shownTo.slice(-63), ssh] });
  }
  return err;
}
