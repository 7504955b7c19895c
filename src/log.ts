/**
 * Diagnostic logging with `debug` (DEBUG=cscs-sa:*), loaded only when DEBUG is set so the hot
 * path pays nothing, plus an optional log file for the proxy (whose stderr is /dev/null under
 * ControlPersist). Every line passes through redact(): secrets are registered the moment they
 * are read, so no code path can log them by mistake.
 */
import { appendFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { format } from 'node:util';

export type Log = (formatter: string, ...args: unknown[]) => void;

const secrets = new Set<string>();
let logFile: string | undefined;
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

/** Also append diagnostics (of every namespace) to this file. */
export function setLogFile(path: string): void {
  logFile = path;
}

function loadDebug(): (namespace: string) => Log {
  const debug = createRequire(import.meta.url)('debug') as typeof import('debug');
  debug.log = (...args: unknown[]) => process.stderr.write(redact(format(...args)) + '\n');
  return debug;
}

export function createLog(namespace: string): Log {
  let log: Log | undefined;
  return (formatter, ...args) => {
    if (logFile) {
      const line = `${new Date().toISOString()} ${process.pid} cscs-sa:${namespace} ${format(formatter, ...args)}\n`;
      try {
        appendFileSync(logFile, redact(line), { mode: 0o600 });
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
