/**
 * Whether a certificate can be used now: for our key, a user certificate, started (one second of
 * grace for the gateway's Date header), more than the refresh margin left, all by the gateway's
 * clock (local clock + the offset learned at the refresh); and what the store makes of the files.
 * Keys and certificates are made in-process (test/helpers/certs.ts), the clock is a parameter.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertType, parseCertificate, parsePublicKey } from '../../src/core/certificate.ts';
import { verifySignature } from '../../src/core/signature.ts';
import { certificateFileText, inspect, judge, keyPaths } from '../../src/core/store.ts';
import { certificateLine, str, TestCa } from '../helpers/certs.ts';

function ed25519Line(): string {
  const x = Buffer.from(generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }).x!, 'base64url');
  return `ssh-ed25519 ${Buffer.concat([str('ssh-ed25519'), str(x)]).toString('base64')} user@test`;
}

const ca = new TestCa('ed25519');
const ours = ed25519Line();
const key = parsePublicKey(ours);
/** The local clock of these tests, in ms, and the certificate window around it: 60 s from NOW - 5 s. */
const NOW = Date.parse('2026-12-07T12:00:00Z');
const T = BigInt(NOW / 1000);

const cert = (o: { after?: bigint; before?: bigint; certType?: number; keyLine?: string } = {}) =>
  certificateLine(
    {
      type: 'ssh-ed25519-cert-v01@openssh.com',
      keyFields: Buffer.from((o.keyLine ?? ours).split(' ')[1]!, 'base64').subarray(4 + 'ssh-ed25519'.length),
      certType: o.certType,
      validAfter: o.after ?? T - 5n,
      validBefore: o.before ?? T + 55n,
    },
    ca,
  );

const verdict = (line: string, margin = 20, offsetMs = 0, now = NOW) => judge(parseCertificate(line), key, margin, offsetMs, now);

test('more than the margin left: fresh, with the seconds left', () => {
  assert.equal(verdict(cert()), { status: 'fresh', secondsLeft: 55 });
});

test('the margin or less left: expiring; none left: expired', () => {
  assert.is(verdict(cert(), 55).status, 'expiring');
  assert.is(verdict(cert(), 54).status, 'fresh');
  assert.equal(verdict(cert(), 20, 0, NOW + 55_000), { status: 'expired', detail: 'expired 0 s ago', secondsLeft: 0 });
  assert.is(verdict(cert(), 20, 0, NOW + 70_000).detail, 'expired 15 s ago');
});

test('not yet valid only beyond one second of grace', () => {
  assert.is(verdict(cert({ after: T + 1n })).status, 'fresh');
  assert.equal(verdict(cert({ after: T + 2n })).status, 'not-yet-valid');
});

test('judged by the gateway clock: the learned offset moves "now"', () => {
  // The local clock is 40 s behind the gateway's: 15 s left by the gateway, inside the margin.
  assert.is(verdict(cert(), 20, 40_000).status, 'expiring');
  // 10 s ahead: by the gateway's clock the certificate has not started yet.
  assert.is(verdict(cert({ after: T }), 20, -10_000).status, 'not-yet-valid');
});

test('a certificate for another key, or a host certificate, is never fresh', () => {
  assert.is(verdict(cert({ keyLine: ed25519Line() })).status, 'other-key');
  assert.is(verdict(cert({ certType: CertType.host })).status, 'not-user-certificate');
});

test('a certificate altered on the way fails its CA signature', () => {
  const line = cert();
  const blob = Buffer.from(line.split(' ')[1]!, 'base64');
  verifySignature(parseCertificate(line));
  // The serial (right after the key fields) is signed: change one bit of it.
  const serialAt = 4 + 'ssh-ed25519-cert-v01@openssh.com'.length + 4 + 32 + 4 + 32;
  blob[serialAt + 7]! ^= 1;
  const altered = parseCertificate(`ssh-ed25519-cert-v01@openssh.com ${blob.toString('base64')}`);
  assert.is(altered.serial, 0n);
  assert.throws(() => verifySignature(altered), /the CA signature does not verify/);
});

let dir: string;
test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'cscs-sa-unit-cert-'));
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('the store: no certificate, a damaged one, no public key, each with its own status', () => {
  const paths = keyPaths(join(dir, 'k1'));
  assert.is(inspect(paths, 20, NOW).status, 'missing');
  writeFileSync(paths.certificate, 'ssh-ed25519-cert-v01@openssh.com AAAA\n');
  assert.is(inspect(paths, 20, NOW).status, 'unreadable');
  writeFileSync(paths.certificate, `${cert()}\n`);
  assert.is(inspect(paths, 20, NOW).status, 'no-public-key');
  writeFileSync(paths.publicKey, `${ours}\n`);
  assert.is(inspect(paths, 20, NOW).status, 'fresh');
});

test('a certificate file another program clobbered (truncated, garbage, empty, NUL bytes) is unreadable, so refreshed', () => {
  const paths = keyPaths(join(dir, 'k4'));
  writeFileSync(paths.publicKey, `${ours}\n`);
  const good = `${cert()}\n`;
  for (const clobbered of [good.slice(0, 100), 'garbage\n', '', '\0\0\0\0']) {
    writeFileSync(paths.certificate, clobbered);
    assert.is(inspect(paths, 20, NOW).status, 'unreadable', JSON.stringify(clobbered));
  }
});

test('the store reads the clock offset and refresh time back from the certificate line comment, and judges by them', () => {
  const paths = keyPaths(join(dir, 'k2'));
  const refreshedAt = new Date(NOW - 2000);
  writeFileSync(paths.publicKey, `${ours}\n`);
  writeFileSync(paths.certificate, certificateFileText(`${cert()} gateway-comment`, 40_000, refreshedAt));
  const state = inspect(paths, 20, NOW);
  assert.equal([state.clockOffsetMs, state.refreshedAt?.toISOString(), state.status, state.secondsLeft], [40_000, refreshedAt.toISOString(), 'expiring', 15]);
});

test('the fresh window written for the shell check: exactly the seconds of this clock in which judge says fresh, and the key', () => {
  const paths = keyPaths(join(dir, 'k3'));
  writeFileSync(paths.publicKey, `${ours}\n`);
  const line = cert();
  const offset = 40_300;
  writeFileSync(paths.certificate, certificateFileText(line, offset, new Date(NOW), { fresh: { certificate: parseCertificate(line), publicKey: key, marginSeconds: 20 } }));
  const text = readFileSync(paths.certificate, 'utf8');
  const [, from, until, b64] = /cscs-sa fresh=(\d+)\.\.(\d+)\.\.(\S+) offset=40300 /.exec(text)!;
  assert.is(b64, ours.split(' ')[1]);
  // judge says fresh at every instant of the seconds [from, until) and at no instant outside them,
  // as the shell does with `date +%s`: the shell never sends ssh to match for a certificate that
  // match then finds fresh. (The offset's 300 ms put the exact ends inside a second.)
  for (const ms of [Number(from) * 1000, Number(until) * 1000 - 1]) assert.is(inspect(paths, 20, ms).status, 'fresh', String(ms));
  assert.is(inspect(paths, 20, Number(from) * 1000 - 1).status, 'not-yet-valid');
  assert.is(inspect(paths, 20, Number(until) * 1000).status, 'expiring');
  assert.is(inspect(paths, 20, NOW).clockOffsetMs, offset);
});

test.run();
