/**
 * Another cscs-sa at work on a refresh, as the lock beside a key shows it: a live process on this
 * host whose pid is in the lock file, with no start time (as an older cscs-sa wrote it), so that
 * the lock is never judged stale while the process lives.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { execa } from 'execa';

export interface Holder {
  pid: number;
  /** The lock file's text, as written. */
  text: string;
  /** Ends the process and removes the lock file, if still there. */
  release(): Promise<void>;
}

/** Writes the lock file LOCK (its folder must exist) for a new live process, which lives at most `seconds`. */
export function holdLock(lock: string, seconds = 60): Holder {
  const sleeper = execa('sleep', [String(seconds)]);
  const text = `${sleeper.pid}\n${hostname()}\nfeedface\n`;
  writeFileSync(lock, text);
  return {
    pid: sleeper.pid!,
    text,
    async release() {
      sleeper.kill();
      await sleeper.catch(() => {});
      rmSync(lock, { force: true });
    },
  };
}
