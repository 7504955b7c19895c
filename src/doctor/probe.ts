/**
 * The probe: how `cscs-sa doctor` learns from ssh itself whether, and with which arguments, ssh
 * runs `cscs-sa match` for a host. Doctor runs `ssh -G HOST` with CSCS_SA_PROBE naming a file it
 * made; `match` appends one JSON line (its arguments) to that file and exits 0 without refreshing.
 * Asking ssh is what makes the answer true whatever the config holds (Includes, a HostName above a
 * `Match host`, a `!` pattern, an older OpenSSH), where reading the config ourselves would guess.
 */
import { closeSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { ExitCode, LocalFileError } from '../base/errors.js';
import { type FileRules, openTrusted, type TrustedFd } from '../base/trust.js';

export const PROBE_ENV = 'CSCS_SA_PROBE';
const PREFIX = 'cscs-sa-probe-';

/**
 * match's side: records `args` in the probe file and returns match's exit code. The variable makes
 * match write to a file, and a variable can reach ssh's environment from places the user does not
 * watch (a CI job's settings, a wrapper script). So it must not be usable to append to any other
 * file (~/.bashrc, authorized_keys): only an existing file (no O_CREAT) that is no symbolic link
 * (O_NOFOLLOW) and no FIFO to block on (O_NONBLOCK), and, judged on the open descriptor so nothing
 * can be swapped in between, a regular file of ours with mode 0600 named cscs-sa-probe-*. The line
 * is JSON, so an argument (the host name typed) cannot start a line of its own.
 */
export function recordProbe(path: string, args: string[]): number {
  const fix = `unset ${PROBE_ENV} (it names no probe file of cscs-sa doctor)`;
  let opened: TrustedFd | undefined;
  try {
    if (!basename(path).startsWith(PREFIX)) throw new LocalFileError(`probe file ${path} is not named ${PREFIX}*`, { fix });
    const rules: FileRules = { what: 'probe file', error: LocalFileError, maxBytes: 1024 * 1024, owners: 'us', mode: 'private', noFollow: true, action: 'append to', fix };
    opened = openTrusted(path, rules, constants.O_WRONLY | constants.O_APPEND);
    if (!opened) throw new LocalFileError(`probe file ${path} does not exist`, { fix });
    writeSync(opened.fd, `${JSON.stringify({ args })}\n`);
    return ExitCode.ok;
  } catch (err) {
    process.stderr.write(`cscs-sa: ${err instanceof LocalFileError ? err.line : (err as Error).message}\n`);
    return ExitCode.localFiles;
  } finally {
    if (opened) closeSync(opened.fd);
  }
}

/** doctor's side: a private folder for probe files, one file per ssh run. */
export class Probe {
  private readonly dir = mkdtempSync(join(tmpdir(), 'cscs-sa-doctor-'));
  private count = 0;

  /** A new empty probe file (0600 in a 0700 folder). */
  file(): string {
    const path = join(this.dir, `${PREFIX}${this.count++}`);
    writeFileSync(path, '', { mode: 0o600, flag: 'wx' });
    return path;
  }

  /** The argument lists of every `cscs-sa match` that wrote to `path`. */
  read(path: string): string[][] {
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => (JSON.parse(line) as { args: string[] }).args);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
