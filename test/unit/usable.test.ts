/**
 * The rules a certificate must meet to be used, on certificates built in-process (only the one
 * property under test wrong), the refresh budget at the last seconds, the CA fingerprint (checked
 * once against ssh-keygen -l) and the one check of --env / CSCS_SA_ENV / "env".
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { FOREVER, namesLogin, parseCertificate, parsePublicKey, unusableBecause } from '../../src/core/certificate.ts';
import { caFingerprint } from '../../src/core/signature.ts';
import { certificateFileText, inspect, judge, keyPaths } from '../../src/core/store.ts';
import { LOGIN_SECONDS, OPPORTUNITY_SECONDS, refreshBudget } from '../../src/refresh/refresh.ts';
import { checkEnvironment } from '../../src/core/config.ts';
import { ConfigError, UsageError } from '../../src/base/errors.ts';
import { type CertBody, certificateLine, options, str, TestCa } from '../helpers/certs.ts';

const ca = new TestCa('ed25519');
const keyBlob = Buffer.concat([str('ssh-ed25519'), str(Buffer.alloc(32, 9))]);
const publicKey = parsePublicKey(`ssh-ed25519 ${keyBlob.toString('base64')}`);

function cert(extra: Partial<CertBody> = {}) {
  return parseCertificate(certificateLine({ type: 'ssh-ed25519-cert-v01@openssh.com', keyFields: keyBlob.subarray(15), principals: ['svc_ci'], ...extra }, ca));
}

test('a certificate as the gateway signs it is usable', () => {
  assert.is(unusableBecause(cert()), undefined);
  assert.is(judge(cert(), publicKey, 20, 0, Date.now(), 'svc_ci').status, 'fresh');
});

test('valid forever, a forced command, no permit-port-forwarding: each refused with its reason', () => {
  const cases: [string, Partial<CertBody>, string][] = [
    ['forever', { validAfter: 0n, validBefore: FOREVER }, 'is valid forever, not for a limited time'],
    ['force-command', { critical: options([['force-command', '/bin/true']]) }, 'forces a command (critical option force-command) in place of every command'],
    ['no port forwarding', { extensions: options([['permit-pty', '']]) }, 'lacks the extension permit-port-forwarding (ProxyJump through the jump host needs it)'],
    ['no extension at all', { extensions: Buffer.alloc(0) }, 'lacks the extension permit-port-forwarding (ProxyJump through the jump host needs it)'],
  ];
  for (const [name, extra, why] of cases) {
    assert.is(unusableBecause(cert(extra)), why, name);
    const verdict = judge(cert(extra), publicKey, 20, 0);
    assert.is(verdict.status, 'unusable', name);
    assert.is(verdict.detail, why, name);
  }
});

test('permit-pty is not required: a login without a terminal (commands, scp, rsync, git) needs none', () => {
  assert.is(unusableBecause(cert({ extensions: options([['permit-port-forwarding', '']]) })), undefined);
});

test('source-address and other critical options sshd enforces are not ours to refuse', () => {
  assert.is(unusableBecause(cert({ critical: options([['source-address', '10.0.0.0/8']]) })), undefined);
});

test('the login name must be a principal when it is known; unknown, any principal passes', () => {
  assert.ok(namesLogin(cert({ principals: ['a', 'svc_ci'] }), 'svc_ci'));
  assert.not.ok(namesLogin(cert({ principals: ['svc_ci2'] }), 'svc_ci'));
  const other = judge(cert({ principals: ['other', 'x\x1b[2J'] }), publicKey, 20, 0, Date.now(), 'svc_ci');
  assert.is(other.status, 'other-login');
  assert.is(other.detail, 'names "other", "x\\x1b[2J", not the login name "svc_ci"');
  assert.is(judge(cert({ principals: [] }), publicKey, 20, 0, Date.now(), 'svc_ci').detail, 'names no principal, not the login name "svc_ci"');
  assert.is(judge(cert({ principals: ['other'] }), publicKey, 20, 0).status, 'fresh');
});

test('a host certificate is named as such before the rules it also breaks', () => {
  assert.is(judge(cert({ certType: 2, validAfter: 0n, validBefore: FOREVER }), publicKey, 20, 0).status, 'not-user-certificate');
});

test('refresh budget: the short try only when the certificate outlives it by a login; the whole one counted from when match began to wait', () => {
  const settings = { timeout: 10 };
  const enough = OPPORTUNITY_SECONDS + LOGIN_SECONDS;
  const short = refreshBudget(settings, { status: 'expiring', secondsLeft: enough + 0.1 });
  assert.ok(short.short);
  assert.is(short.seconds, OPPORTUNITY_SECONDS);
  for (const [status, secondsLeft] of [['expiring', enough - 0.1], ['expiring', 1], ['expiring', -1], ['expired', -3], ['missing', undefined], ['unusable', 1e9], ['other-login', 40]] as const) {
    const full = refreshBudget(settings, { status, secondsLeft });
    assert.not.ok(full.short, `${status} ${secondsLeft}`);
    assert.is(full.seconds, 10, `${status} ${secondsLeft}`);
  }
  // A timeout shorter than the short try: the short try is the timeout.
  assert.is(refreshBudget({ timeout: 1 }, { status: 'expiring', secondsLeft: 60 }).seconds, 1);
  // Counted from when match's hot path began to wait for another's refresh.
  const started = Date.now() - 9_000;
  const rest = refreshBudget(settings, { status: 'missing' }, started);
  assert.is(rest.at, started + 10_000);
  assert.ok(rest.remainingMs() <= 1_000, `${rest.remainingMs()} ms left of 10 s begun 9 s ago`);
  assert.is(refreshBudget(settings, { status: 'missing' }, started - 5_000).remainingMs(), 0);
  // The short try is not: the hot path never waits for a certificate that is still valid.
  // (Its end, not what is left of it: a runner that stalls between the two lines must not fail this.)
  const before = Date.now();
  assert.ok(refreshBudget(settings, { status: 'expiring', secondsLeft: enough + 0.1 }, started).at >= before + 1_500);
});

test('the CA fingerprint is the one ssh-keygen -l prints for the CA key', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cscs-sa-unit-'));
  try {
    writeFileSync(join(dir, 'ca.pub'), `ssh-ed25519 ${ca.blob.toString('base64')} ca\n`);
    const printed = (await execa('ssh-keygen', ['-l', '-E', 'sha256', '-f', join(dir, 'ca.pub')])).stdout.split(' ')[1];
    assert.is(caFingerprint(cert()), printed);
    assert.is.not(caFingerprint(parseCertificate(certificateLine({ type: 'ssh-ed25519-cert-v01@openssh.com', keyFields: keyBlob.subarray(15) }, new TestCa('ed25519')))), printed);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a CA change written in the comment is read back with the certificate; without one there is none', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cscs-sa-unit-'));
  try {
    const paths = keyPaths(join(dir, 'k'));
    writeFileSync(paths.publicKey, `ssh-ed25519 ${keyBlob.toString('base64')}\n`);
    const line = certificateLine({ type: 'ssh-ed25519-cert-v01@openssh.com', keyFields: keyBlob.subarray(15) }, ca);
    const at = new Date('2026-12-07T18:00:00.000Z');
    writeFileSync(paths.certificate, certificateFileText(line, -250, at, { caChange: { at, was: 'SHA256:abc+/def' } }));
    const state = inspect(paths, 20);
    assert.is(state.clockOffsetMs, -250);
    assert.equal(state.caChange, { at, was: 'SHA256:abc+/def' });
    writeFileSync(paths.certificate, certificateFileText(line, 0, at));
    assert.is(inspect(paths, 20).caChange, undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--env: exact lower-case names; a wrong one is a usage error (exit 2) from a flag, a configuration error (exit 3) from a setting, with the name meant', () => {
  assert.is(checkEnvironment('prod', '--env', 'flag'), 'prod');
  assert.is(checkEnvironment('tds', 'CSCS_SA_ENV'), 'tds');
  const refused = (value: string, from: string, source: 'flag' | 'setting' | undefined, Class: typeof UsageError | typeof ConfigError, exitCode: number, line: string) => {
    assert.throws(
      () => checkEnvironment(value, from, source),
      (err: unknown) => err instanceof Class && (err as UsageError).exitCode === exitCode && (err as UsageError).line === line,
      `${from}=${value}`,
    );
  };
  refused('PROD', '--env', 'flag', UsageError, 2, '--env: "PROD" is not a CSCS environment: did you mean "prod"?');
  refused('Tds', 'CSCS_SA_ENV', undefined, ConfigError, 3, 'CSCS_SA_ENV: "Tds" is not a CSCS environment: did you mean "tds"?');
  refused('bogus', '--env', 'flag', UsageError, 2, '--env: "bogus" is not a CSCS environment: use prod or tds');
  refused('', '--env', 'flag', UsageError, 2, '--env: "" is not a CSCS environment: use prod or tds');
  refused('__proto__', '--env', 'flag', UsageError, 2, '--env: "__proto__" is not a CSCS environment: use prod or tds');
});

test.run();
