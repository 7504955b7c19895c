/**
 * Slow secret managers and failing gateways, with many `match` at once as a burst of ssh makes
 * them: one deadline for everything, one refresh for everyone, one outcome shared, and a valid
 * certificate used when its refresh fails. Calls are counted at the gateway double.
 */
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gatewaySuite } from '../helpers/suites.ts';
import { cscsSa, type Home, type Run } from '../helpers/cli.ts';
import { certificateInPlace, withKeyPair } from '../helpers/prepared.ts';

const API_KEY = 'sa-outage-key-0123456789abcdef';
const { gw, test } = gatewaySuite('outage', API_KEY);

/** Replaces CSCS_API_KEY by an apiKeyCommand that takes `seconds` to print the key, like a slow `vault`. */
function slowKeyCommand(home: Home, env: Record<string, string>, script: string): void {
  delete env.CSCS_API_KEY;
  const keyFile = join(home.dir, 'vault-secret');
  writeFileSync(keyFile, API_KEY, { mode: 0o600 });
  mkdirSync(join(home.dir, '.config', 'cscs-sa'), { recursive: true });
  writeFileSync(join(home.dir, '.config', 'cscs-sa', 'config.json'), JSON.stringify({ apiKeyCommand: ['sh', '-c', script.replace('KEYFILE', keyFile)] }));
}

/** Runs `n` commands at once; each result with its own wall time from start to exit. */
async function parallel(n: number, args: string[], env: Record<string, string>): Promise<(Run & { ms: number })[]> {
  return Promise.all(
    Array.from({ length: n }, async () => {
      const started = Date.now();
      const r = await cscsSa(args, env, { timeout: 60_000 });
      return { ...r, ms: Date.now() - started };
    }),
  );
}

/**
 * What starting `n` cscs-sa processes at once costs on this machine before any deadline starts
 * (Node start-up, on two busy cores seconds for 16): bounds below are "deadline + 1 s" on top of it.
 */
async function startupMs(n: number, env: Record<string, string>): Promise<number> {
  return Math.max(...(await parallel(n, ['status'], env)).map((r) => r.ms));
}

// Four processes at once are three waiters on one holder, as eight were: each more costs a Node start.
test('slow API key command and slow sign that together fit the deadline: 4 parallel match, one token and one sign call', async ({ home, env }) => {
  env.CSCS_SA_TIMEOUT = '10';
  slowKeyCommand(home, env, 'sleep 2; cat KEYFILE');
  gw.faults.sign.push({ delayMs: 2000 });
  const runs = await parallel(4, ['match'], env);
  for (const r of runs) assert.is(r.exitCode, 0, r.stderr);
  assert.is(gw.tokenCalls, 1);
  assert.is(gw.signCalls, 1);
  console.log(`    key command 2 s + sign 2 s, deadline 10 s: 4 parallel match, ${gw.tokenCalls} token and ${gw.signCalls} sign call, slowest ${Math.max(...runs.map((r) => r.ms))} ms`);
});

test('slow API key command and slow sign that exceed the deadline: all fail within it, one line, no second refresh', async ({ home, env }) => {
  // The key command takes a part of the deadline, the sign more than the rest. Wide margins both
  // ways, so that a loaded machine neither ends the key command past the deadline nor the sign in time.
  env.CSCS_SA_TIMEOUT = '6';
  slowKeyCommand(home, env, 'sleep 1; cat KEYFILE');
  gw.faults.sign.push({ delayMs: 8000 });
  const startup = await startupMs(4, env);
  const runs = await parallel(4, ['match'], env);
  const slowest = Math.max(...runs.map((r) => r.ms));
  // Each failure names what every process printed: a mismatch under load shows which line it was.
  const printed = runs.map((r) => `exit ${r.exitCode} after ${r.ms} ms: ${JSON.stringify(r.stderr)}`).join('\n');
  for (const r of runs) {
    assert.is(r.exitCode, 5, printed);
    assert.match(r.stderr, /^cscs-sa: gateway 127\.0\.0\.1:\d+ did not answer in 6 s: check the network or HTTPS_PROXY, or raise "timeout"\n$/, printed);
  }
  assert.is(new Set(runs.map((r) => r.stderr)).size, 1, `every process printed the same line:\n${printed}`);
  assert.is(gw.tokenCalls, 1, 'no waiter started a refresh of its own');
  // One deadline, not two: the bound is generous for a loaded machine, but below a second deadline.
  assert.ok(slowest < startup + 2 * 6000, `slowest ${slowest} ms for a 6 s deadline (start-up ${startup} ms)`);
  console.log(`    key command 1 s + sign 8 s, deadline 6 s: 4 parallel match all exit 5 in at most ${slowest} ms (start-up alone ${startup} ms), ${gw.tokenCalls} token call`);
});

test('a persistent 5xx outage with 8 parallel match: about one deadline in all, calls bounded by one holder', async ({ home, env }) => {
  // Long enough for the holder's four attempts on a loaded machine: the waiters must see its
  // answer, not run out of time first.
  env.CSCS_SA_TIMEOUT = '10';
  // The key pair exists, as on every refresh but the first: its ssh-keygen is not what this measures.
  withKeyPair(home);
  for (let i = 0; i < 500; i++) gw.faults.token.push({ status: 503 });
  const startup = await startupMs(8, env);
  const started = Date.now();
  const runs = await parallel(8, ['match'], env);
  const total = Date.now() - started;
  for (const r of runs) {
    assert.is(r.exitCode, 5, r.stderr);
    assert.ok(/^cscs-sa: gateway 127\.0\.0\.1:\d+ failed \(503\): scripted 503 after [1-4] attempt\(s\): try again later\n$/.test(r.stderr), r.stderr);
  }
  assert.is(new Set(runs.map((r) => r.stderr)).size, 1, 'every process printed the holder\'s line');
  assert.ok(gw.tokenCalls >= 1 && gw.tokenCalls <= 4, `${gw.tokenCalls} token calls: at most one holder's 4 attempts`);
  assert.ok(total < startup + 2 * 10_000, `${total} ms in all for a 10 s deadline (start-up ${startup} ms): not a second deadline`);
  console.log(`    persistent 503, 8 parallel match: ${gw.tokenCalls} token calls in all, ${total} ms (start-up alone ${startup} ms)`);
});

test('a failure is remembered for seconds: the next match fails at once without a call, a new API key is tried', async ({ home, env }) => {
  // 4 s: the memo's run must end well inside another deadline, and a loaded machine takes seconds to start Node.
  env.CSCS_SA_TIMEOUT = '4';
  gw.faults.token.push({ hang: true });
  const first = await cscsSa(['match'], env);
  assert.is(first.exitCode, 5);
  assert.is(gw.tokenCalls, 1);
  const memo = readFileSync(`${home.key}.failed`, 'utf8');
  assert.not.ok(memo.includes(API_KEY), 'the memo holds no API key');
  const started = Date.now();
  const second = await cscsSa(['match'], env);
  assert.is(second.exitCode, 5);
  assert.is(second.stderr, first.stderr);
  assert.is(gw.tokenCalls, 1, 'no call for a failure seen a moment ago');
  const ms = Date.now() - started;
  assert.ok(ms < 4000, `${ms} ms: not another deadline`);
  // Another key (or another gateway) is another question: the memo does not answer it.
  const other = await cscsSa(['match'], { ...env, CSCS_API_KEY: 'sa-other-key-but-wrong' });
  assert.is(other.exitCode, 4, other.stderr);
  assert.is(gw.tokenCalls, 2);
  // The memo now stands for the other key: the first key is asked about again, and its success clears the memo.
  const fixed = await cscsSa(['match'], env);
  assert.is(fixed.exitCode, 0, fixed.stderr);
  assert.not.ok(existsSync(`${home.key}.failed`), 'success removed the memo');
  console.log(`    remembered failure: second match exit 5 in ${ms} ms with no gateway call`);
});

test('an outage while the certificate is still valid inside the margin: match exits 0 quickly with one line', async ({ home, env }) => {
  const before = await certificateInPlace(home, gw);
  env.CSCS_SA_REFRESH_MARGIN = '3600';
  env.CSCS_SA_TIMEOUT = '10';
  gw.reset();
  for (let i = 0; i < 10; i++) gw.faults.token.push({ hang: true });
  const started = Date.now();
  const r = await cscsSa(['match'], env);
  const ms = Date.now() - started;
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stderr, /^cscs-sa: gateway 127\.0\.0\.1:\d+ did not answer in 1\.5 s: using the current certificate, valid for \d+ s more\n$/);
  assert.ok(ms < 10_000, `${ms} ms: the full 10 s deadline is for a certificate that cannot be used`);
  assert.is(readFileSync(home.cert, 'utf8'), before);
  // The next ssh within seconds (a burst, the ProxyJump hop) does not try again.
  const calls1 = gw.tokenCalls;
  const next = await cscsSa(['match'], env);
  assert.is(next.exitCode, 0);
  // The same line; the seconds left are counted again, and a slow machine may have spent some.
  const anySeconds = (line: string) => line.replace(/valid for \d+ s more/, 'valid for N s more');
  assert.is(anySeconds(next.stderr), anySeconds(r.stderr));
  assert.is(gw.tokenCalls, calls1);
  // ... but a full deadline is not bound by a 1.5 s failure: `sign` tries (and here fails) in full.
  const full = await cscsSa(['sign'], { ...env, CSCS_SA_TIMEOUT: '2' });
  assert.is(full.exitCode, 5);
  assert.match(full.stderr, /did not answer in 2 s/);
  // A 5xx is a real answer: remembered, so the next ssh does not ask again.
  rmSync(`${home.key}.failed`); // as if the memo's few seconds had passed
  gw.reset();
  for (let i = 0; i < 10; i++) gw.faults.token.push({ status: 500 });
  const failing = await cscsSa(['match'], env);
  assert.is(failing.exitCode, 0, failing.stderr);
  assert.match(failing.stderr, /failed \(500\).*: using the current certificate, valid for \d+ s more\n$/);
  const calls = gw.tokenCalls;
  const again = await cscsSa(['match'], env);
  assert.is(again.exitCode, 0);
  assert.match(again.stderr, /failed \(500\).*: using the current certificate/);
  assert.is(gw.tokenCalls, calls, 'the remembered failure cost no call');
  console.log(`    outage inside the margin: match exit 0 in ${ms} ms with one line; ${calls} token calls, none for the next`);
});

test('an API key command whose child keeps running: the whole group is stopped at the deadline', async ({ home, env }) => {
  env.CSCS_SA_TIMEOUT = '3';
  slowKeyCommand(home, env, 'sleep 25; cat KEYFILE');
  const startup = await startupMs(1, env);
  const started = Date.now();
  const r = await cscsSa(['match'], env, { timeout: 30_000 });
  const ms = Date.now() - started;
  assert.is(r.exitCode, 4, r.stderr);
  assert.is(r.stderr, 'cscs-sa: apiKeyCommand (sh) failed: no answer within the 3 s deadline\n');
  // Generous for a loaded machine, and far below the 25 s the command's child would run.
  assert.ok(ms < startup + 2 * 3000, `${ms} ms for a 3 s deadline (start-up ${startup} ms)`);
  console.log(`    key command "sleep 25; ...", deadline 3 s: exit 4 after ${ms} ms`);
});

test('an API key command that leaves a child holding its output: the key is used, the child stopped', async ({ home, env }) => {
  slowKeyCommand(home, env, '(sleep 25 &); cat KEYFILE');
  const started = Date.now();
  const r = await cscsSa(['match'], env, { timeout: 30_000 });
  const ms = Date.now() - started;
  assert.is(r.exitCode, 0, r.stderr);
  assert.ok(ms < 10_000, `${ms} ms, not the child's 25 s`);
  assert.is(gw.signCalls, 1);
});

test('an API key command that prints without end is cut off', async ({ home, env }) => {
  slowKeyCommand(home, env, 'exec 2>/dev/null; yes sa-outage-key');
  const r = await cscsSa(['match'], env, { timeout: 30_000 });
  assert.is(r.exitCode, 4, r.stderr);
  assert.is(r.stderr, 'cscs-sa: apiKeyCommand (sh) failed: printed more than 64 KiB\n');
});

test.run();
