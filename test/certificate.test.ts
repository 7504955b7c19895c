import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { CertificateParseError, certifies, FOREVER, parseCertificate, parsePublicKey, secondsLeft } from '../src/certificate.ts';

const dir = mkdtempSync(join(tmpdir(), 'cscs-sa-cert-'));
const ca = join(dir, 'ca');

async function keygen(name: string, type: string, bits?: string): Promise<string> {
  const file = join(dir, name);
  await execa('ssh-keygen', ['-q', '-t', type, ...(bits ? ['-b', bits] : []), '-N', '', '-C', name, '-f', file]);
  return file;
}

/** Signs with ssh-keygen in UTC, so absolute validity times are unambiguous. */
async function sign(key: string, validity: string, extra: string[] = []): Promise<string> {
  await execa('ssh-keygen', ['-q', '-s', ca, '-I', `id-${key}`, '-n', 'alice,bob', '-V', validity, '-z', '4242', ...extra, `${key}.pub`], {
    env: { TZ: 'UTC' },
  });
  return readFileSync(`${key}-cert.pub`, 'utf8');
}

test.before(async () => {
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', ca]);
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

for (const [type, bits] of [['ed25519'], ['ecdsa', '256'], ['ecdsa', '384'], ['ecdsa', '521'], ['rsa', '2048']] as const) {
  test(`reads an ssh-keygen ${type}${bits ? `-${bits}` : ''} user certificate`, async () => {
    const key = await keygen(`${type}${bits ?? ''}`, type, bits);
    const cert = parseCertificate(await sign(key, '20300101000000:20300101000100'));
    const pub = parsePublicKey(readFileSync(`${key}.pub`, 'utf8'));
    assert.ok(cert.type.endsWith('-cert-v01@openssh.com'));
    assert.is(cert.keyType, pub.type);
    assert.is(cert.certType, 1);
    assert.is(cert.serial, 4242n);
    assert.is(cert.keyId, `id-${key}`);
    assert.equal(cert.principals, ['alice', 'bob']);
    assert.is(cert.validAfter, BigInt(Date.UTC(2030, 0, 1) / 1000));
    assert.is(cert.validBefore, BigInt(Date.UTC(2030, 0, 1, 0, 1) / 1000));
    assert.ok(certifies(cert, pub), 'certifies its own key');
  });
}

test('a certificate for one key does not certify another', async () => {
  const a = await keygen('a', 'ed25519');
  const b = await keygen('b', 'ed25519');
  const cert = parseCertificate(await sign(a, '+1m'));
  assert.not.ok(certifies(cert, parsePublicKey(readFileSync(`${b}.pub`, 'utf8'))));
});

test('"forever" has no end and never runs out', async () => {
  const key = await keygen('forever', 'ed25519');
  const cert = parseCertificate(await sign(key, 'always:forever'));
  assert.is(cert.validAfter, 0n);
  assert.is(cert.validBefore, FOREVER);
  assert.is(secondsLeft(cert, Date.now() / 1000), Infinity);
});

test('seconds left counts from the given clock, not from valid_after', async () => {
  const key = await keygen('left', 'ed25519');
  const cert = parseCertificate(await sign(key, '-1m:+1m'));
  const left = secondsLeft(cert, Date.now() / 1000);
  assert.ok(left > 50 && left <= 60, `left ${left}`);
});

test('a host certificate is read as certificate type 2', async () => {
  const key = await keygen('host', 'ed25519');
  assert.is(parseCertificate(await sign(key, '+1m', ['-h'])).certType, 2);
});

test('corrupt input is refused with a reason, never misread', async () => {
  const key = await keygen('corrupt', 'ed25519');
  const good = (await sign(key, '+1m')).trim();
  const [type, b64] = good.split(' ') as [string, string];
  const blob = Buffer.from(b64, 'base64');
  const cases: [string, string][] = [
    ['empty', ''],
    ['garbage', 'this is not a certificate'],
    ['truncated', `${type} ${blob.subarray(0, blob.length - 10).toString('base64')}`],
    ['trailing bytes', `${type} ${Buffer.concat([blob, Buffer.from([0, 0, 0, 0])]).toString('base64')}`],
    ['type mismatch', `ssh-rsa-cert-v01@openssh.com ${b64}`],
    ['a plain public key', readFileSync(`${key}.pub`, 'utf8')],
    ['half a line', good.slice(0, good.length / 2)],
    ['invalid base64', `${type} ${b64.replace(/[A-Z]/g, '*')}`],
  ];
  for (const [name, text] of cases) {
    // The class is what callers rely on (store.ts turns only CertificateParseError into "unreadable").
    assert.throws(() => parseCertificate(text), (err: unknown) => err instanceof CertificateParseError && err.message !== '', name);
  }
  assert.throws(() => parsePublicKey(good), (err: unknown) => err instanceof CertificateParseError && /certificate/.test((err as Error).message));
});

test.run();
