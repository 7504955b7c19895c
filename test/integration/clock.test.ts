/**
 * A runner whose clock is 10 minutes off the gateway's (and sshd's). libfaketime shifts the
 * clock of cscs-sa alone, through the Match exec line, as a wrong system clock would.
 */
import * as assert from 'uvu/assert';
import { worldSuite } from '../helpers/suites.ts';
import { cscsSa } from '../helpers/cli.ts';
import { paced } from '../helpers/paced.ts';

const { world, test } = worldSuite('clock');
const LIFETIME = 12;
// ssh's login must fit in the margin, on a loaded machine too: 5 s, as the refresh allows one through a jump host.
const MARGIN = 5;

test.before(() => {
  world.gateway.options.validity = `-5s:+${LIFETIME}s`;
});

/**
 * ssh runs, one every 2 s, for `seconds`, with cscs-sa's clock shifted by `shift` (faketime
 * syntax): each Match line starts match on the skewed clock, and a run every 2 s still lands in
 * every refresh margin (MARGIN s) and finds an expired certificate within 2 s of its expiry.
 */
async function runSkewed(shift: string, seconds: number) {
  world.freshHome({ match: `faketime -f ${shift} cscs-sa match %h`, env: { CSCS_SA_REFRESH_MARGIN: String(MARGIN) } });
  const { runs, elapsed } = await paced(seconds, 2000, async (i, ms) => {
    const r = await world.ssh('sa-ela', 'true');
    assert.is(r.exitCode, 0, `run ${i} at ${(ms / 1000).toFixed(1)} s: ${r.stderr}`);
  });
  return { runs, elapsed, signCalls: world.gateway.signCalls };
}

for (const [shift, offset] of [['+10m', -600], ['-10m', 600]] as const) {
  test(`local clock ${shift} off: never an expired certificate, no refresh on every call`, async () => {
    const { runs, elapsed, signCalls } = await runSkewed(shift, 2 * LIFETIME);
    // Ideal: one certificate per (lifetime - margin) seconds; allow one more.
    const ideal = Math.ceil(elapsed / (LIFETIME - MARGIN));
    assert.ok(signCalls <= ideal + 1, `${signCalls} sign calls for ${runs} runs in ${elapsed.toFixed(1)} s (ideal ${ideal})`);
    assert.ok(signCalls >= 2, `${signCalls} sign calls over two lifetimes: a certificate was used after it expired`);
    // The offset it learned is what status shows: never below the truth (src/refresh/gateway.ts
    // clockOffset), above it by the Date header's second and the sign call's round trip at most.
    const [status] = JSON.parse((await cscsSa(['status', '--json'], world.env)).stdout);
    const over = status.clockOffsetMs - offset * 1000;
    assert.ok(over >= 0 && over < 3000, `learned offset ${status.clockOffsetMs} ms`);
    console.log(`    clock ${shift}: ${runs} runs in ${elapsed.toFixed(1)} s, ${signCalls} sign calls (ideal ${ideal})`);
  });
}

test.run();
