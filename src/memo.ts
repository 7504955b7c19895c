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
 */
import { readFileSync, rmSync } from 'node:fs';
import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { ApiKeyError, ConfigError, type CscsSaError, GatewayResponseError, GatewayUnavailableError, LocalFileError } from './errors.js';
import { writeFileAtomic } from './fsutil.js';
import { createLog } from './log.js';

const log = createLog('memo');

/** How long a failure stands for everyone: long enough for a burst and a ProxyJump hop. */
export const MEMO_TTL_MS = 5000;

const CLASSES = [ApiKeyError, GatewayUnavailableError, GatewayResponseError, LocalFileError, ConfigError];

interface Stored {
  salt: string;
  hash: string;
  at: number;
  code: string;
  message: string;
  fix?: string;
}

function hashOf(material: string, salt: Buffer): Buffer {
  // N = 2^12: about 5 ms, paid only on the refresh path.
  return scryptSync(material, salt, 32, { N: 4096 });
}

/** Records `err` as the outcome for `material` (gateway URL and API key source). */
export function rememberFailure(path: string, material: string, err: CscsSaError): void {
  const salt = randomBytes(16);
  const stored: Stored = { salt: salt.toString('hex'), hash: hashOf(material, salt).toString('hex'), at: Date.now(), code: err.code, message: err.message, fix: err.fix };
  try {
    writeFileAtomic(path, `${JSON.stringify(stored)}\n`, 0o600);
  } catch (err) {
    log('cannot write %s: %s', path, (err as Error).message);
  }
}

export function forgetFailure(path: string): void {
  rmSync(path, { force: true });
}

/** The failure recorded for `material` within the last few seconds, as the error it was; else undefined. */
export function recalledFailure(path: string, material: string, now = Date.now()): CscsSaError | undefined {
  let stored: Stored;
  try {
    stored = JSON.parse(readFileSync(path, 'utf8')) as Stored;
  } catch {
    return undefined; // none, or unreadable: a memo is only ever a shortcut
  }
  // A memo from the future (a clock stepped back) is not trusted.
  if (typeof stored.at !== 'number' || now - stored.at >= MEMO_TTL_MS || stored.at > now + 1000) return undefined;
  const Class = CLASSES.find((c) => new c('').code === stored.code);
  if (!Class || typeof stored.message !== 'string' || typeof stored.salt !== 'string' || typeof stored.hash !== 'string') return undefined;
  const expected = Buffer.from(stored.hash, 'hex');
  const actual = hashOf(material, Buffer.from(stored.salt, 'hex'));
  if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) return undefined;
  log('failure recorded %d ms ago: %s', now - stored.at, stored.message);
  return new Class(stored.message, stored.fix === undefined ? {} : { fix: stored.fix });
}
