/** What the system says about processes: whether a pid is in use, and our ancestry (Linux /proc). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ancestors, pidAlive, procStat } from '../../src/base/proc.ts';
import { skipTest } from '../helpers/suites.ts';

test('our own pid is alive; a pid above Linux PID_MAX_LIMIT never is', () => {
  assert.ok(pidAlive(process.pid));
  assert.not.ok(pidAlive(4_194_305));
});

const LINEAGE = 'ancestors start at our parent, go up by ppid, stop at maxDepth and never include init';
if (procStat(process.pid)) {
  test(LINEAGE, () => {
    const all = ancestors(64);
    assert.is(all[0]?.pid, process.ppid);
    for (let i = 1; i < all.length; i++) assert.is(all[i]!.pid, procStat(all[i - 1]!.pid)!.ppid);
    assert.not.ok(all.some((a) => a.pid <= 1));
    assert.equal(ancestors(1), all.slice(0, 1));
  });
} else {
  skipTest(LINEAGE, 'no /proc here');
}

test.run();
