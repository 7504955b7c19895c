/**
 * The program's entry, built as CommonJS (dist/entry.cjs): an ES module entry costs ~6 ms more
 * start-up, a third of bare Node's, on the path that runs for every ssh invocation. With a fresh
 * certificate `match` ends here; everything else loads the ES module CLI.
 */
import { matchIsFresh } from './core/fastpath.js';
import { PROBE_ENV, recordProbe } from './doctor/probe.js';

// doctor's probe comes first: under it match only says that ssh ran it, and never refreshes.
if (process.argv[2] === 'match' && process.env[PROBE_ENV]) {
  process.exitCode = recordProbe(process.env[PROBE_ENV], process.argv.slice(3));
} else if (!(process.argv[2] === 'match' && matchIsFresh(process.argv.slice(3)))) {
  void import('./cli.js');
}
