/**
 * The probe: how `cscs-sa doctor` learns from ssh itself whether, and with which arguments, ssh
 * runs `cscs-sa match` for a host. Doctor runs `ssh -G HOST` with CSCS_SA_PROBE naming a file it
 * made; `match` appends one JSON line (its arguments) to that file and exits 0 without refreshing.
 * Asking ssh is what makes the answer true whatever the config holds (Includes, a HostName above a
 * `Match host`, a `!` pattern, an older OpenSSH), where reading the config ourselves would guess.
 */
import { closeSync, constants, fstatSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { ExitCode } from '../base/errors.js';

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
  let fd: number | undefined;
  try {
    if (!basename(path).startsWith(PREFIX)) throw new Error(`not named ${PREFIX}*`);
    fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw new Error('not a regular file');
    if (stats.uid !== process.getuid?.()) throw new Error('owned by another user');
    if ((stats.mode & 0o777) !== 0o600) throw new Error(`mode ${(stats.mode & 0o777).toString(8).padStart(4, '0')}, not 0600`);
    writeSync(fd, `${JSON.stringify({ args })}\n`);
    return ExitCode.ok;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ELOOP' ? 'a symbolic link' : code ?? (err as Error).message;
    process.stderr.write(`cscs-sa: ${PROBE_ENV}=${path} is not a probe file of cscs-sa doctor (${reason}): unset ${PROBE_ENV}\n`);
    return ExitCode.localFiles;
  } finally {
    if (fd !== undefined) closeSync(fd);
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
