/**
 * The program's entry, built as CommonJS (dist/entry.cjs): an ES module entry costs ~6 ms more
 * start-up, a third of bare Node's, on the path that runs for every ssh invocation. With a fresh
 * certificate, or one that another process here is refreshing, `match` ends here, and a plain
 * `proxy` relays from here; everything else loads the ES module CLI.
 */
import { matchIsDone, plainRelay } from './core/fastpath.js';
import { exitOnSignals, runToExit } from './base/report.js';
import { PROBE_ENV, recordProbe } from './doctor/probe.js';
import { relay } from './ssh/relay.js';

const [command, ...args] = process.argv.slice(2);
const plain = command === 'proxy' ? plainRelay(args) : undefined;
// doctor's probe comes first: under it match only says that ssh ran it, and never refreshes.
if (command === 'match' && process.env[PROBE_ENV]) {
  process.exitCode = recordProbe(process.env[PROBE_ENV], args);
} else if (plain) {
  exitOnSignals();
  runToExit(relay(plain.host, plain.port, plain.timeoutSeconds, plain.log));
} else if (!(command === 'match' && matchIsDone(args))) {
  void import('./cli.js');
}
