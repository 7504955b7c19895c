/**
 * A gateway outage as a user of real ssh sees it, through ProxyJump (sa-clariden behind sa-ela):
 * with no usable certificate, one deadline and one line, not one per hop; with a certificate
 * still valid inside the refresh margin, ssh goes on with it, quickly, told once.
 */
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { holdLock } from '../helpers/holder.ts';
import { certificateInPlace } from '../helpers/prepared.ts';
import { worldSuite } from '../helpers/suites.ts';

const { world, test } = worldSuite('jump');

function cscsSaLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.startsWith('cscs-sa: '));
}

test('ProxyJump with the gateway not answering: one deadline, one token request, the line printed once', async () => {
  world.freshHome({ env: { CSCS_SA_TIMEOUT: '5' } });
  for (let i = 0; i < 20; i++) world.gateway.faults.token.push({ hang: true });
  const started = Date.now();
  const r = await world.ssh('sa-clariden', 'true');
  const ms = Date.now() - started;
  assert.is(r.exitCode, 255);
  const lines = cscsSaLines(r.stderr);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /^cscs-sa: gateway 127\.0\.0\.1:\d+ did not answer in 5 s: check the network or HTTPS_PROXY, or raise "timeout"$/);
  assert.is(world.gateway.tokenCalls, 1, 'the jump hop asked no one');
  // One deadline, not one per hop (the hop's match fails at once from the memo).
  assert.ok(ms < 5000 * 2, `${ms} ms`);
  console.log(`    ProxyJump, gateway not answering, 5 s deadline: ssh exit 255 after ${ms} ms, ${world.gateway.tokenCalls} token request, ${lines.length} line`);
});

test('an outage while the certificate is valid but inside the margin: ssh through ProxyJump succeeds, one line, quickly', async () => {
  // A margin longer than the certificate's life: every certificate is inside it as soon as it is
  // written, for the Match line's shell check (whose window the refresh writes with this margin)
  // as for match.
  const home = world.freshHome({ env: { CSCS_SA_TIMEOUT: '10', CSCS_SA_REFRESH_MARGIN: '3600' } });
  // The certificate as a refresh with this margin writes it, fresh window included, without one.
  const cert = await certificateInPlace(home, world.gateway, { fresh: { marginSeconds: 3600 } });
  for (let i = 0; i < 20; i++) world.gateway.faults.token.push({ hang: true });
  const started = Date.now();
  const r = await world.ssh('sa-clariden', 'echo ok');
  const ms = Date.now() - started;
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(r.stdout, 'ok');
  const lines = cscsSaLines(r.stderr);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /^cscs-sa: gateway 127\.0\.0\.1:\d+ did not answer in 1\.5 s: using the current certificate, valid for \d+ s more$/);
  assert.is(readFileSync(home.cert, 'utf8'), cert);
  assert.ok(ms < 10_000, `${ms} ms: far from the 10 s deadline`);
  console.log(`    outage inside the margin, ProxyJump: ssh exit 0 after ${ms} ms, ${lines.length} line, ${world.gateway.tokenCalls} token request(s)`);
});

test('ProxyJump while another process holds the lock past the deadline: the line once, the hop recalls it instead of waiting again', async () => {
  const home = world.freshHome({ env: { CSCS_SA_TIMEOUT: '3' } });
  mkdirSync(dirname(home.key), { recursive: true, mode: 0o700 });
  // A live holder that never finishes (as a refresh stuck on a hung API key command would be).
  const holder = holdLock(home.lock);
  try {
    const started = Date.now();
    const r = await world.ssh('sa-clariden', 'true');
    const ms = Date.now() - started;
    assert.is(r.exitCode, 255);
    // Without the memo, the hop's match waited a second deadline and printed the line again.
    assert.equal(cscsSaLines(r.stderr), [`cscs-sa: cscs-sa pid ${holder.pid} is still refreshing ${home.cert} after 3 s: try again later, or raise "timeout"`], r.stderr);
    assert.ok(existsSync(`${home.key}.failed`), 'the outcome is remembered for the hop');
    // Two deadlines (the hop waiting the holder out again) take more than 6 s.
    assert.ok(ms < 2 * 3000, `ssh took ${ms} ms: the hop waited for the holder again`);
    assert.is(readFileSync(home.lock, 'utf8'), holder.text, "the live holder's lock is untouched");
    assert.is(world.gateway.tokenCalls, 0);
    console.log(`    ProxyJump, lock held past the 3 s deadline: ssh exit 255 after ${ms} ms, 1 line`);
  } finally {
    await holder.release();
  }
});

test.run();
