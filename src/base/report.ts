/**
 * How a command ends, for both entries (the CommonJS hot path and the ES module CLI): an error
 * becomes one line on stderr and its documented exit code, and a signal an orderly exit.
 */
import { CscsSaError, ExitCode } from './errors.js';
import { createLog, redact } from './log.js';

export function report(err: unknown): number {
  if (err instanceof CscsSaError) {
    process.stderr.write(`cscs-sa: ${redact(err.line)}\n`);
    if (process.env.DEBUG && err.stack) process.stderr.write(`${redact(err.stack)}\n`);
    return err.exitCode;
  }
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`cscs-sa: unexpected error: ${redact(message)} (run with DEBUG=cscs-sa:* for details)\n`);
  if (process.env.DEBUG && err instanceof Error && err.stack) process.stderr.write(`${redact(err.stack)}\n`);
  return ExitCode.failure;
}

/**
 * Exit by code, never by signal: ssh treats a Match exec killed by a signal as fatal, and the
 * 'exit' handlers (lock release) run only on an orderly exit. ssh's SIGHUP when it exits ends
 * a ProxyCommand this way too.
 */
export function exitOnSignals(): void {
  for (const [signal, number] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]] as const) {
    process.on(signal, () => {
      createLog('cli')('%s: exiting', signal);
      process.exit(128 + number);
    });
  }
}

/**
 * Runs a command to its end and exits explicitly: an open stdin (proxy) or a keep-alive socket
 * must not hold the process. On Linux, writes to stdout and stderr are synchronous, so nothing
 * printed is lost.
 */
export function runToExit(command: Promise<number>): void {
  command.then(
    (code) => process.exit(code),
    (err: unknown) => process.exit(report(err)),
  );
}
