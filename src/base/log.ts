/**
 * Diagnostic logging with `debug` (DEBUG=cscs-sa:*), loaded only when DEBUG is set so the hot
 * path pays nothing, plus an optional log file for the proxy (whose stderr is /dev/null under
 * ControlPersist). Every line passes through redact(): secrets are registered the moment they
 * are read, so no code path can log them by mistake.
 */
import { constants, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { format } from 'node:util';
import { LocalFileError } from './errors.js';
import { openTrusted } from './trust.js';

export type Log = (formatter: string, ...args: unknown[]) => void;

const secrets = new Set<string>();
let logFd: number | undefined;
let debugFactory: ((namespace: string) => Log) | undefined;

/** Marks a value (API key, JWT) that must never be printed, logged or written. */
export function registerSecret(value: string): void {
  if (value.length >= 4) secrets.add(value);
}

export function redact(text: string): string {
  let out = text;
  for (const secret of secrets) out = out.split(secret).join('[redacted]');
  return out;
}

/**
 * Also append diagnostics (of every namespace) to `path`, opened once the way a file in a shared
 * place must be: O_NOFOLLOW (a symlink planted there is refused, not followed to a file of the
 * attacker's choosing), O_APPEND, created 0600, and the open file must be a regular file of ours.
 */
export function setLogFile(path: string): void {
  const fix = 'point --log at a file in a folder of your own, e.g. ~/.ssh/cscs-sa-proxy.log';
  const opened = openTrusted(
    path,
    {
      what: 'log file',
      error: LocalFileError,
      maxBytes: Number.MAX_SAFE_INTEGER,
      owners: 'us',
      mode: 'any',
      noFollow: true,
      action: 'log to',
      fix,
    },
    constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT,
  );
  if (!opened) throw new LocalFileError(`cannot log to ${path}: its folder does not exist`, { fix });
  logFd = opened.fd;
}

function loadDebug(): (namespace: string) => Log {
  const debug = createRequire(import.meta.url)('debug') as typeof import('debug');
  debug.log = (...args: unknown[]) => process.stderr.write(redact(format(...args)) + '\n');
  return debug;
}

export function createLog(namespace: string): Log {
  let log: Log | undefined;
  return (formatter, ...args) => {
    if (logFd !== undefined) {
      const line = `${new Date().toISOString()} ${process.pid} cscs-sa:${namespace} ${format(formatter, ...args)}\n`;
      try {
        writeSync(logFd, redact(line));
      } catch {
        // A log file that cannot be written must not break the connection it describes.
      }
    }
    if (!process.env.DEBUG) return;
    debugFactory ??= loadDebug();
    log ??= debugFactory(`cscs-sa:${namespace}`);
    log(formatter, ...args);
  };
}
