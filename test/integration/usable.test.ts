/**
 * What a certificate must mean before ssh gets it, through real ssh to the loopback sshd that
 * trust the gateway double's CA: valid long enough to log in (a certificate at its last second is
 * refreshed, not used), for the login name, with the extensions ProxyJump needs, no forced
 * command, a finite validity. A certificate that fails any of these is refused (exit 6, one line
 * with the fix) and the previous one kept byte for byte; a change of CA is shown, said once.
 */
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { worldSuite } from '../helpers/suites.ts';
import { cscsSa } from '../helpers/cli.ts';
import { parseCertificate } from '../../src/core/certificate.ts';
import { certificateLine, TestCa } from '../helpers/certs.ts';
import { certificateInPlace, withKeyPair } from '../helpers/prepared.ts';

const { world, test } = worldSuite('usable');

function cscsSaLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.startsWith('cscs-sa: '));
}

/**
 * A certificate in place with at most 5 s left when the next match judges it (clock offset 0):
 * still valid, inside the refresh margin, but less than the 1.5 s short try plus the 5 s a login
 * needs. No fresh window, as none would be current: the Match line's shell check leaves it to match.
 */
async function lastSeconds(): Promise<string> {
  return certificateInPlace(world.home, world.gateway, { validity: '-60s:+5s' });
}

/**
 * That match judged the certificate `before` (lastSeconds') while it was still valid: it asked for
 * a new one before the old one's end. On a machine so slow that it had expired first, the test
 * would pass without testing its case (an expired certificate gets the whole deadline too).
 */
function judgedStillValid(before: string): void {
  const endMs = Number(parseCertificate(before).validBefore) * 1000;
  const sign = world.gateway.requests.find((r) => r.path.endsWith('/ssh-keys/sign'));
  assert.ok(sign && sign.atMs < endMs, `sign request ${sign ? sign.atMs - endMs : '(none)'} ms after the certificate's end: too slow a machine to test its last seconds`);
}

/** A key pair with an expired certificate from the double's CA: the one a refused refresh must keep. */
async function expiredCertificate(): Promise<string> {
  withKeyPair(world.home);
  writeFileSync(world.home.cert, `${await world.gateway.sign(readFileSync(world.home.pub, 'utf8'), { validity: '-10m:-5m' })}\n`);
  world.gateway.reset();
  return readFileSync(world.home.cert, 'utf8');
}

test('a certificate at its last seconds and a gateway slower than the short try: ssh waits for the refresh and logs in', async () => {
  const home = world.freshHome();
  const before = await lastSeconds();
  world.gateway.faults.sign.push({ delayMs: 2500 });
  const started = Date.now();
  const r = await world.ssh('sa-clariden', 'echo', 'hello');
  const ms = Date.now() - started;
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(r.stdout, 'hello');
  assert.is(r.stderr, '', 'no "using the current certificate, valid for -1 s more"');
  assert.is(world.gateway.signCalls, 1);
  assert.is.not(readFileSync(home.cert, 'utf8'), before);
  judgedStillValid(before);
  console.log(`    5 s left, sign takes 2.5 s: ssh through ProxyJump logged in after ${ms} ms`);
});

test('a certificate at its last seconds and a gateway that does not answer: the whole deadline, exit 5, the certificate kept', async () => {
  const home = world.freshHome({ env: { CSCS_SA_TIMEOUT: '3' } });
  const before = await lastSeconds();
  world.gateway.faults.sign.push({ hang: true });
  const r = await cscsSa(['match'], world.env);
  assert.is(r.exitCode, 5, r.stderr);
  assert.match(r.stderr, /^cscs-sa: gateway 127\.0\.0\.1:\d+ did not answer in 3 s: check the network or HTTPS_PROXY, or raise "timeout"\n$/);
  assert.is(readFileSync(home.cert, 'utf8'), before);
  judgedStillValid(before);
});

const WRONG: [string, string[], string, string][] = [
  ['valid forever', ['-V', 'always:forever'], 'is valid forever, not for a limited time', 'ask CSCS about the certificates its gateway signs'],
  ['a forced command', ['-O', 'force-command=echo forced'], 'forces a command (critical option force-command) in place of every command', 'ask CSCS about the certificates its gateway signs'],
  [
    'no port forwarding',
    ['-O', 'no-port-forwarding'],
    'lacks the extension permit-port-forwarding (ProxyJump through the jump host needs it)',
    'ask CSCS about the certificates its gateway signs',
  ],
  ['another login name', ['-n', 'someone-else'], 'names "someone-else", not the login name "LOGIN"', 'check that the API key is this account\'s, and the "user" setting (CSCS_SA_USERNAME)'],
];

/**
 * The case whose certificate would run something else in place of the command also goes through
 * ssh: what ssh shows and runs after a refusal is the same for every reason, which match alone
 * tells apart.
 */
const THROUGH_SSH = 'a forced command';

for (const [name, keygen, why, fix] of WRONG) {
  const viaSsh = name === THROUGH_SSH;
  test(`a certificate with ${name} is refused: exit 6, one line with the fix, the previous one kept byte for byte${viaSsh ? ', ssh through ProxyJump says it once and runs nothing' : ''}`, async () => {
    // The login name is known (CSCS_SA_USERNAME): the block's User, what certificates must name.
    const home = world.freshHome({ env: { CSCS_SA_USERNAME: world.user } });
    const before = await expiredCertificate();
    world.gateway.faults.sign.push({ keygen });
    const line = `cscs-sa: gateway sent a certificate that ${why.replace('LOGIN', world.user)}; the previous certificate was kept: ${fix}`;
    const r = await cscsSa(['match'], world.env);
    assert.is(r.exitCode, 6, r.stderr);
    assert.is(r.stderr, `${line}\n`);
    assert.is(readFileSync(home.cert, 'utf8'), before);
    if (!viaSsh) return;
    // Through ssh: the line once (the ProxyJump hop recalls it quietly), no login, nothing forced.
    world.gateway.faults.sign.push({ keygen });
    const ssh = await world.ssh('sa-clariden', 'echo', 'hello');
    assert.is(ssh.exitCode, 255, ssh.stderr);
    assert.equal(cscsSaLines(ssh.stderr), [line]);
    assert.is(ssh.stdout, '');
    assert.is(readFileSync(home.cert, 'utf8'), before);
  });
}

test('status never shows a certificate valid forever as fresh, nor "Infinity"', async () => {
  // One written by an older cscs-sa, before such certificates were refused.
  const home = world.freshHome();
  withKeyPair(home);
  writeFileSync(home.cert, `${await world.gateway.sign(readFileSync(home.pub, 'utf8'), { extra: ['-V', 'always:forever'] })}\n`);
  world.gateway.reset();
  const status = await cscsSa(['status'], world.env);
  assert.is(status.exitCode, 1, status.stdout);
  assert.match(status.stdout, /^status +unusable \(is valid forever, not for a limited time\)$/m);
  assert.match(status.stdout, /^seconds left +forever$/m);
  assert.not.match(status.stdout, /Infinity/);
  // match replaces it with a certificate of limited validity.
  const r = await cscsSa(['match'], world.env);
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(world.gateway.signCalls, 1);
  assert.is.not(parseCertificate(readFileSync(home.cert, 'utf8')).validBefore, 2n ** 64n - 1n);
});

test('a certificate from another CA: used, said once, shown by status and doctor', async () => {
  const home = world.freshHome();
  await certificateInPlace(home, world.gateway);
  // The double's CA as ssh-keygen -l names it: the one the note and status must name as replaced.
  const was = execFileSync('ssh-keygen', ['-l', '-f', world.gateway.caPublicKey]).toString().split(' ')[1]!;
  const other = new TestCa('ed25519');
  const resign = (line: string) => {
    const { type, keyFields, principals } = parseCertificate(line);
    return certificateLine({ type, keyFields, principals }, other);
  };
  world.gateway.faults.sign.push({ rewrite: resign }, { rewrite: resign });
  const first = await cscsSa(['sign', '--force'], world.env);
  assert.is(first.exitCode, 0, first.stderr);
  const [status] = JSON.parse((await cscsSa(['status', '--json'], world.env)).stdout);
  assert.is.not(status.ca, was);
  assert.is(status.caWas, was);
  assert.is(
    first.stderr,
    `cscs-sa: note: the gateway signed ${home.cert} with another CA (${status.ca}) than the certificate it replaced (${was}): if sshd refuses it, ask CSCS whether their CA changed\n`,
  );
  // The next certificate from the same (new) CA says nothing, and the change stays on record.
  const second = await cscsSa(['sign', '--force'], world.env);
  assert.is(second.exitCode, 0, second.stderr);
  assert.is(second.stderr, '');
  const [again] = JSON.parse((await cscsSa(['status', '--json'], world.env)).stdout);
  assert.is(again.caWas, was);
  assert.is(again.caChangedAt, status.caChangedAt);
  const text = (await cscsSa(['status'], world.env)).stdout;
  assert.match(text, new RegExp(`^CA +${escape(status.ca)} \\(since ${escape(status.caChangedAt)}; was ${escape(was)}\\)$`, 'm'));
  const doctor = await cscsSa(['doctor'], world.env, { timeout: 60_000 });
  assert.match(doctor.stdout + doctor.stderr, new RegExp(`certificate signed by another CA since ${escape(status.caChangedAt)}: ${escape(status.ca)}, was ${escape(was)}`));
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

test.run();
