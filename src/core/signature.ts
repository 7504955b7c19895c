/**
 * Verifies a certificate's CA signature over its body, as OpenSSH's cert_parse does with
 * sshkey_verify: a certificate damaged or altered on its way from the gateway must not replace a
 * good one. Only the refresh path loads this module (node:crypto), never the hot path.
 *
 * The signature algorithms are sshd's default CASignatureAlgorithms without the security-key
 * ones (a CA on a FIDO token is not what a gateway signs with): ssh-rsa with SHA-1 is refused,
 * as sshd refuses it since OpenSSH 8.2, because the certificate would be useless there.
 */
import { createHash, createPublicKey, type KeyObject, verify } from 'node:crypto';
import { type Certificate, CertificateParseError, Reader } from './certificate.js';

/** OpenSSH's SSH_RSA_MINIMUM_MODULUS_SIZE. */
const RSA_MIN_BITS = 1024;

const EC_CURVES: Record<string, { curve: string; jwk: string; hash: string; size: number }> = {
  'ecdsa-sha2-nistp256': { curve: 'nistp256', jwk: 'P-256', hash: 'sha256', size: 32 },
  'ecdsa-sha2-nistp384': { curve: 'nistp384', jwk: 'P-384', hash: 'sha384', size: 48 },
  'ecdsa-sha2-nistp521': { curve: 'nistp521', jwk: 'P-521', hash: 'sha512', size: 66 },
};

const RSA_HASHES: Record<string, string> = { 'rsa-sha2-256': 'sha256', 'rsa-sha2-512': 'sha512' };

function fail(reason: string): never {
  throw new CertificateParseError(reason);
}

/** An mpint's magnitude without the sign-padding zero bytes. */
function unsigned(mpint: Buffer): Buffer {
  let start = 0;
  while (start < mpint.length && mpint[start] === 0) start++;
  return mpint.subarray(start);
}

function padded(value: Buffer, size: number, what: string): Buffer {
  if (value.length > size) fail(`${what} too long`);
  return Buffer.concat([Buffer.alloc(size - value.length), value]);
}

/** What to call node:crypto's verify() with for this CA key and signature algorithm. */
function verifier(caKey: Buffer, sigType: string, sigReader: Reader): { hash: string | null; key: KeyObject; signature: Buffer; dsaEncoding?: 'ieee-p1363' } {
  const k = new Reader(caKey, 'CA key truncated');
  const keyType = k.string();
  let result: { hash: string | null; key: KeyObject; signature: Buffer; dsaEncoding?: 'ieee-p1363' };
  if (keyType === 'ssh-ed25519') {
    const pk = k.bytes();
    if (pk.length !== 32) fail('CA key malformed');
    if (sigType !== keyType) fail(`signature algorithm ${sigType} does not match the ${keyType} CA key`);
    const signature = sigReader.bytes();
    if (signature.length !== 64) fail('signature malformed');
    result = { hash: null, key: createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: pk.toString('base64url') }, format: 'jwk' }), signature };
  } else if (EC_CURVES[keyType]) {
    const { curve, jwk, hash, size } = EC_CURVES[keyType];
    if (k.string() !== curve) fail('CA key curve does not match its type');
    const point = k.bytes();
    if (point.length !== 1 + 2 * size || point[0] !== 4) fail('CA key point malformed');
    if (sigType !== keyType) fail(`signature algorithm ${sigType} does not match the ${keyType} CA key`);
    const rs = new Reader(sigReader.bytes(), 'signature malformed');
    const r = padded(unsigned(rs.bytes()), size, 'signature r');
    const s = padded(unsigned(rs.bytes()), size, 'signature s');
    if (!rs.done) fail('signature malformed');
    const key = createPublicKey({
      key: { kty: 'EC', crv: jwk, x: point.subarray(1, 1 + size).toString('base64url'), y: point.subarray(1 + size).toString('base64url') },
      format: 'jwk',
    });
    result = { hash, key, signature: Buffer.concat([r, s]), dsaEncoding: 'ieee-p1363' };
  } else if (keyType === 'ssh-rsa') {
    const e = unsigned(k.bytes());
    const n = unsigned(k.bytes());
    const bits = n.length * 8 - Math.clz32(n[0] ?? 0) + 24;
    if (bits < RSA_MIN_BITS) fail(`RSA CA key of ${bits} bits, below OpenSSH's minimum of ${RSA_MIN_BITS}`);
    if (sigType === 'ssh-rsa') fail('signed with ssh-rsa (SHA-1), which sshd refuses since OpenSSH 8.2');
    const hash = RSA_HASHES[sigType];
    if (!hash) fail(`signature algorithm ${sigType} does not match the ssh-rsa CA key`);
    // OpenSSH accepts a signature shorter than the modulus and pads it, as do we.
    const signature = padded(sigReader.bytes(), n.length, 'signature');
    result = { hash, key: createPublicKey({ key: { kty: 'RSA', n: n.toString('base64url'), e: e.toString('base64url') }, format: 'jwk' }), signature };
  } else {
    fail(`CA key type ${keyType} is not supported`);
  }
  if (!k.done) fail('CA key malformed');
  return result;
}

/** Throws CertificateParseError unless the certificate's signature verifies with the CA key it names. */
export function verifySignature(certificate: Certificate): void {
  const sig = new Reader(certificate.signature, 'signature truncated');
  const sigType = sig.string();
  let v;
  try {
    v = verifier(certificate.signatureKey, sigType, sig);
  } catch (err) {
    if (err instanceof CertificateParseError) throw err;
    // createPublicKey refuses a point that is not on the curve, and the like.
    fail(`CA key unusable (${(err as Error).message})`);
  }
  if (!sig.done) fail('trailing data after the signature');
  const ok = verify(v.hash, certificate.signed, v.dsaEncoding ? { key: v.key, dsaEncoding: v.dsaEncoding } : v.key, v.signature);
  if (!ok) fail('the CA signature does not verify');
}

/** The fingerprint of the CA that signed the certificate, as ssh-keygen -l prints a key's: SHA256, base64 without padding. */
export function caFingerprint(certificate: Certificate): string {
  return `SHA256:${createHash('sha256').update(certificate.signatureKey).digest('base64').replace(/=+$/, '')}`;
}
