import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { CertificateParseError, certifies, FOREVER, MAX_PRINCIPALS, parseCertificate, parsePublicKey, secondsLeft } from '../../src/core/certificate.ts';
import { verifySignature } from '../../src/core/signature.ts';
import { type CaKind, certificateLine, keyFieldsOf, options, str, TestCa } from '../helpers/certs.ts';

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

/** Flips one bit at `offset` of a certificate line's blob (negative: from the end). */
function flip(line: string, offset: number): string {
  const [type, b64] = line.trim().split(' ') as [string, string];
  const blob = Buffer.from(b64, 'base64');
  const at = offset < 0 ? blob.length + offset : offset;
  blob[at]! ^= 0x01;
  return `${type} ${blob.toString('base64')}`;
}

for (const [caType, bits, algorithm] of [['ed25519'], ['ecdsa', '256'], ['ecdsa', '384'], ['ecdsa', '521'], ['rsa', '2048', 'rsa-sha2-256'], ['rsa', '2048', 'rsa-sha2-512']] as const) {
  const name = `${caType}${bits ? `-${bits}` : ''}${algorithm ? ` ${algorithm}` : ''}`;
  test(`an ssh-keygen certificate signed by a ${name} CA verifies; one flipped bit in its body or signature does not`, async () => {
    const caFile = await keygen(`ca-${name.replace(' ', '-')}`, caType, bits);
    const key = await keygen(`for-${name.replace(' ', '-')}`, 'ed25519');
    await execa('ssh-keygen', ['-q', '-s', caFile, ...(algorithm ? ['-t', algorithm] : []), '-I', 'x', '-n', 'alice', '-V', '+1m', `${key}.pub`]);
    const line = readFileSync(`${key}-cert.pub`, 'utf8');
    const cert = parseCertificate(line);
    verifySignature(cert);
    assert.equal(cert.extensions, ['permit-X11-forwarding', 'permit-agent-forwarding', 'permit-port-forwarding', 'permit-pty', 'permit-user-rc']);
    // Bit 60 is inside the serial/nonce region; -10 inside the signature.
    for (const offset of [60, -10]) {
      assert.throws(() => verifySignature(parseCertificate(flip(line, offset))), /CA signature does not verify|malformed/, `offset ${offset}`);
    }
  });
}

test('a certificate signed with ssh-rsa (SHA-1) is refused, as sshd refuses it since OpenSSH 8.2', async () => {
  const caFile = await keygen('ca-rsa-sha1', 'rsa', '2048');
  const key = await keygen('for-rsa-sha1', 'ed25519');
  await execa('ssh-keygen', ['-q', '-s', caFile, '-t', 'ssh-rsa', '-I', 'x', '-n', 'alice', '-V', '+1m', `${key}.pub`]);
  const cert = parseCertificate(readFileSync(`${key}-cert.pub`, 'utf8'));
  assert.throws(() => verifySignature(cert), /signed with ssh-rsa \(SHA-1\), which sshd refuses since OpenSSH 8\.2/);
});

test('a signature that claims another CA key type, or a CA key that is itself wrong, is refused', () => {
  const key = parsePublicKey(readFileSync(`${join(dir, 'a')}.pub`, 'utf8'));
  const { type, keyFields } = keyFieldsOf(`${key.type} ${key.blob.toString('base64')}`);
  const body = { type: `${type}-cert-v01@openssh.com`, keyFields };
  const ed = new TestCa('ed25519');
  const ec = new TestCa('ecdsa-256');
  // The ecdsa CA's signature under the ed25519 CA's name.
  const good = certificateLine(body, ed);
  const t = good.split(' ')[0]!;
  const cert = parseCertificate(good);
  const swapped = Buffer.concat([cert.signed, str(ec.sign(cert.signed))]);
  assert.throws(() => verifySignature(parseCertificate(`${t} ${swapped.toString('base64')}`)), /signature algorithm ecdsa-sha2-nistp256 does not match the ssh-ed25519 CA key/);
  const forged = (kind: CaKind) => {
    const ca = new TestCa(kind);
    const line = certificateLine(body, ca);
    verifySignature(parseCertificate(line));
    return line;
  };
  for (const kind of ['ed25519', 'ecdsa-256', 'ecdsa-384', 'ecdsa-521', 'rsa'] as const) assert.throws(() => verifySignature(parseCertificate(flip(forged(kind), -3))), /./, kind);
});

test('cert_parse checks: NULs in key id and principals, too many principals, malformed or unordered options', () => {
  const { type, keyFields } = keyFieldsOf(readFileSync(`${join(dir, 'a')}.pub`, 'utf8'));
  const ca = new TestCa('ed25519');
  const body = { type: `${type}-cert-v01@openssh.com`, keyFields };
  const ok = (extra: object) => {
    const cert = parseCertificate(certificateLine({ ...body, ...extra }, ca));
    verifySignature(cert);
    return cert;
  };
  const refused = (extra: object, why: RegExp) => {
    const line = certificateLine({ ...body, ...extra }, ca);
    assert.throws(() => parseCertificate(line), why);
  };
  refused({ keyId: Buffer.from('sa-1\0root') }, /key id contains a NUL byte/);
  refused({ principals: ['alice', Buffer.from('alice\0root')] }, /a principal contains a NUL byte/);
  const many = Array.from({ length: MAX_PRINCIPALS }, (_, i) => `user${i}`);
  assert.is(ok({ principals: many }).principals.length, MAX_PRINCIPALS);
  refused({ principals: [...many, 'one-more'] }, /more than 256 principals/);
  refused({ principals: Buffer.from([0, 0, 0, 9, 0x61]) }, /principals malformed/);
  refused({ critical: str('force-command') }, /critical options malformed/);
  refused({ critical: Buffer.from([0, 0, 0]) }, /critical options malformed/);
  refused({ extensions: options([['permit-pty', ''], ['permit-agent-forwarding', '']]) }, /extensions "permit-agent-forwarding" out of order or repeated/);
  refused({ extensions: options([['permit-pty', ''], ['permit-pty', '']]) }, /extensions "permit-pty" out of order or repeated/);
  refused({ extensions: options([[Buffer.from('permit-pty\0x'), '']]) }, /extensions name contains a NUL byte/);
  refused({ certType: 3 }, /unknown certificate type 3/);
  const cert = ok({ critical: options([['force-command', '/bin/true'], ['source-address', '10.0.0.0/8']]) });
  assert.equal(cert.criticalOptions, ['force-command', 'source-address']);
});

test('security-key (sk-) certificates parse and certify their key, application string included', async () => {
  const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
  const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
  // The public part without its final field, the FIDO application string.
  const ed = Buffer.concat([str('sk-ssh-ed25519@openssh.com'), str(randomBytes(32))]);
  const ec = Buffer.concat([str('sk-ecdsa-sha2-nistp256@openssh.com'), str('nistp256'), str(point)]);
  for (const [name, head, certType] of [['sk-ed25519', ed, 'sk-ssh-ed25519-cert-v01@openssh.com'], ['sk-ecdsa', ec, 'sk-ecdsa-sha2-nistp256-cert-v01@openssh.com']] as const) {
    const blob = Buffer.concat([head, str('ssh:')]);
    const type = blob.subarray(4, 4 + blob.readUInt32BE(0)).toString();
    const pubFile = join(dir, `${name}.pub`);
    writeFileSync(pubFile, `${type} ${blob.toString('base64')} ${name}\n`);
    // ssh-keygen certifies a security key's public half without the token.
    await execa('ssh-keygen', ['-q', '-s', ca, '-I', name, '-n', 'alice', '-V', '+1m', pubFile]);
    const cert = parseCertificate(readFileSync(join(dir, `${name}-cert.pub`), 'utf8'));
    assert.is(cert.type, certType);
    assert.is(cert.keyType, type);
    verifySignature(cert);
    assert.ok(certifies(cert, parsePublicKey(readFileSync(pubFile, 'utf8'))), `${name} certifies its key`);
    const other = Buffer.concat([head, str('ssh:other')]);
    assert.not.ok(certifies(cert, parsePublicKey(`${type} ${other.toString('base64')}`)), `${name}: another application is another key`);
  }
});

test.run();
