/**
 * What every process on the machine shows to others while a test runs: argv and environment,
 * read from /proc by a process of its own, every few milliseconds, until stopped. Only processes in
 * the scanner's network namespace are read: under scripts/test.js that is the test file's own
 * (every process it starts is in it, the other files' are not, and reading theirs made each scan
 * many times slower on a shared machine); without a namespace it is every process.
 */
import { execa } from 'execa';
import { setTimeout as sleep } from 'node:timers/promises';

/** Polls every process's argv and environment from its own process, until SIGTERM. */
const SCANNER = `
const fs = require('fs');
const seen = new Map();
let scans = 0;
const ownNet = fs.readlinkSync('/proc/self/ns/net');
// Processes seen in another namespace are not looked at again while their pid stays listed: a
// pid can only be reused after it has gone from /proc, and then it is checked afresh.
let foreign = new Set();
function scan() {
  const listed = fs.readdirSync('/proc');
  const stillForeign = new Set();
  for (const pid of listed) {
    if (!/^\\d+$/.test(pid) || pid === String(process.pid)) continue;
    if (foreign.has(pid)) { stillForeign.add(pid); continue; }
    let comm, cmdline, environ;
    try {
      if (fs.readlinkSync('/proc/' + pid + '/ns/net') !== ownNet) { stillForeign.add(pid); continue; }
      comm = fs.readFileSync('/proc/' + pid + '/comm', 'latin1').trim();
      cmdline = fs.readFileSync('/proc/' + pid + '/cmdline', 'latin1');
      environ = fs.readFileSync('/proc/' + pid + '/environ', 'latin1');
    } catch { continue; }
    const key = pid + '\\0' + comm + '\\0' + cmdline + '\\0' + environ.length;
    if (!seen.has(key)) seen.set(key, { pid, comm, cmdline: cmdline.split('\\0').join(' '), environ: environ.split('\\0').join(' ') });
  }
  foreign = stillForeign;
  scans++;
}
process.on('SIGTERM', () => { process.stdout.write(JSON.stringify({ scans, processes: [...seen.values()] }), () => process.exit(0)); });
// A pause of 3 ms between scans: with only the file's own processes to read, a scan every 4 ms
// or so, more often than the busy loop over the whole machine managed (5 ms a scan, measured in
// a namespace of scripts/test.js), for a quarter of its CPU.
(function loop() { scan(); setTimeout(loop, 3); })();
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
 * A scanner left running would keep the test file alive. pause() and resume() stop and continue
 * it while the test waits with nothing running (scanning costs CPU the other files need).
 */
export async function scanProcesses(): Promise<{ pause(): void; resume(): void; stop(): Promise<{ scans: number; processes: SeenProcess[] }> }> {
  const scanner = execa(process.execPath, ['-e', SCANNER], { reject: false });
  await sleep(300);
  let seen: Promise<{ scans: number; processes: SeenProcess[] }> | undefined;
  return {
    pause: () => void scanner.kill('SIGSTOP'),
    resume: () => void scanner.kill('SIGCONT'),
    stop() {
      seen ??= (async () => {
        scanner.kill('SIGCONT');
        scanner.kill('SIGTERM');
        return JSON.parse(String((await scanner).stdout)) as { scans: number; processes: SeenProcess[] };
      })();
      return seen;
    },
  };
}
