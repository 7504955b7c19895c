/**
 * The program's entry, built as CommonJS (dist/entry.cjs): an ES module entry costs ~6 ms more
 * start-up, a third of bare Node's, on the path that runs for every ssh invocation. With a fresh
 * certificate `match` ends here; everything else loads the ES module CLI.
 */
import { matchIsFresh } from './fastpath.js';

if (!(process.argv[2] === 'match' && matchIsFresh(process.argv.slice(3)))) {
  void import('./cli.js');
}
