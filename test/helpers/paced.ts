/**
 * Runs spread over a span of time (certificate lifetimes) at a steady pace, each starting when the
 * last has ended and its turn has come: the span, not the number of runs, is what such a test is
 * about, and ssh started as fast as it can only takes the cores from the test files beside it.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Calls `run(i, elapsedMs)` every `everyMs` (or as soon as the previous run ends, when it took
 * longer) until `seconds` have passed and at least `minRuns` runs were made. Returns how many
 * runs there were and how long they took in all, in seconds.
 */
export async function paced(seconds: number, everyMs: number, run: (i: number, elapsedMs: number) => Promise<void>, minRuns = 0): Promise<{ runs: number; elapsed: number }> {
  const started = Date.now();
  let runs = 0;
  while (runs < minRuns || Date.now() - started < seconds * 1000) {
    await run(runs, Date.now() - started);
    runs++;
    await sleep(Math.max(0, started + runs * everyMs - Date.now()));
  }
  return { runs, elapsed: (Date.now() - started) / 1000 };
}
