/**
 * What every process on the machine shows to others while a test runs: argv and environment,
 * read from /proc by a process of its own, as fast as it can, until stopped.
 */
import { execa } from 'execa';
import { setTimeout as sleep } from 'node:timers/promises';

/** Polls every process's argv and environment from its own process, until SIGTERM. */
const SCANNER = `
const fs = require('fs');
const seen = new Map();
let scans = 0;
function scan() {
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\\d+$/.test(pid) || pid === String(process.pid)) continue;
    let comm, cmdline, environ;
    try {
      comm = fs.readFileSync('/proc/' + pid + '/comm', 'latin1').trim();
      cmdline = fs.readFileSync('/proc/' + pid + '/cmdline', 'latin1');
      environ = fs.readFileSync('/proc/' + pid + '/environ', 'latin1');
    } catch { continue; }
    const key = pid + '\\0' + comm + '\\0' + cmdline + '\\0' + environ.length;
    if (!seen.has(key)) seen.set(key, { pid, comm, cmdline: cmdline.split('\\0').join(' '), environ: environ.split('\\0').join(' ') });
  }
  scans++;
}
process.on('SIGTERM', () => { process.stdout.write(JSON.stringify({ scans, processes: [...seen.values()] }), () => process.exit(0)); });
(function loop() { scan(); setImmediate(loop); })();
`;

export interface SeenProcess {
  pid: string;
  comm: string;
  cmdline: string;
  environ: string;
}

/**
 * Starts the scanner; stop() ends it and returns every process it saw (each distinct argv once).
 * stop() may be called again (from a finally, after a failed assertion): it answers the same.
 * A scanner left running would keep the test file alive.
 */
export async function scanProcesses(): Promise<{ stop(): Promise<{ scans: number; processes: SeenProcess[] }> }> {
  const scanner = execa(process.execPath, ['-e', SCANNER], { reject: false });
  await sleep(300);
  let seen: Promise<{ scans: number; processes: SeenProcess[] }> | undefined;
  return {
    stop() {
      seen ??= (async () => {
        scanner.kill('SIGTERM');
        return JSON.parse(String((await scanner).stdout)) as { scans: number; processes: SeenProcess[] };
      })();
      return seen;
    },
  };
}
