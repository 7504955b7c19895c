/**
 * Builds OpenSSH certificates byte by byte (PROTOCOL.certkeys), signed with a CA made by
 * node:crypto, so a test can make a certificate whose signature is valid and only the one property
 * under test is wrong (a NUL in a principal, options out of order, ...), which ssh-keygen never
 * produces.
 */
import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';

/** A length-prefixed SSH string. */
export function str(value: Buffer | string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value) : value;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/** An SSH mpint of an unsigned big-endian magnitude. */
export function mpint(magnitude: Buffer): Buffer {
  let start = 0;
  while (start < magnitude.length && magnitude[start] === 0) start++;
  const bytes = magnitude.subarray(start);
  return str(bytes.length > 0 && bytes[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes);
}

function u64(value: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(value);
  return b;
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value);
  return b;
}

/** Packed (name, data) pairs for the critical options or extensions section, in the order given. */
export function options(pairs: [string | Buffer, string][]): Buffer {
  return Buffer.concat(pairs.map(([name, data]) => Buffer.concat([str(name), str(data === '' ? Buffer.alloc(0) : str(data))])));
}

export interface CertBody {
  type: string;
  /** The certified key's public fields, each already encoded (str or mpint). */
  keyFields: Buffer;
  serial?: bigint;
  certType?: number;
  keyId?: string | Buffer;
  /** Principals, or the raw packed section. */
  principals?: (string | Buffer)[] | Buffer;
  validAfter?: bigint;
  validBefore?: bigint;
  critical?: Buffer;
  extensions?: Buffer;
}

export type CaKind = 'ed25519' | 'ecdsa-256' | 'ecdsa-384' | 'ecdsa-521' | 'rsa';

/** A CA key pair: its public blob as a certificate carries it, and a signer for each algorithm. */
export class TestCa {
  readonly blob: Buffer;
  private readonly privateKey: KeyObject;

  constructor(readonly kind: CaKind) {
    if (kind === 'ed25519') {
      const { privateKey, publicKey } = generateKeyPairSync('ed25519');
      this.privateKey = privateKey;
      this.blob = Buffer.concat([str('ssh-ed25519'), str(Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url'))]);
    } else if (kind === 'rsa') {
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      this.privateKey = privateKey;
      const jwk = publicKey.export({ format: 'jwk' });
      this.blob = Buffer.concat([str('ssh-rsa'), mpint(Buffer.from(jwk.e!, 'base64url')), mpint(Buffer.from(jwk.n!, 'base64url'))]);
    } else {
      const bits = kind.slice(6);
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: `P-${bits}` });
      this.privateKey = privateKey;
      const jwk = publicKey.export({ format: 'jwk' });
      const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
      this.blob = Buffer.concat([str(`ecdsa-sha2-nistp${bits}`), str(`nistp${bits}`), str(point)]);
    }
  }

  /** The signature blob over `data`; `algorithm` picks rsa-sha2-256/512 or ssh-rsa (SHA-1) for an RSA CA. */
  sign(data: Buffer, algorithm?: string): Buffer {
    if (this.kind === 'ed25519') return Buffer.concat([str('ssh-ed25519'), str(sign(null, data, this.privateKey))]);
    if (this.kind === 'rsa') {
      const alg = algorithm ?? 'rsa-sha2-512';
      const hash = { 'rsa-sha2-256': 'sha256', 'rsa-sha2-512': 'sha512', 'ssh-rsa': 'sha1' }[alg]!;
      return Buffer.concat([str(alg), str(sign(hash, data, this.privateKey))]);
    }
    const bits = this.kind.slice(6);
    const size = bits === '521' ? 66 : Number(bits) / 8;
    const hash = { '256': 'sha256', '384': 'sha384', '521': 'sha512' }[bits]!;
    const rs = sign(hash, data, { key: this.privateKey, dsaEncoding: 'ieee-p1363' });
    return Buffer.concat([str(`ecdsa-sha2-nistp${bits}`), str(Buffer.concat([mpint(rs.subarray(0, size)), mpint(rs.subarray(size))]))]);
  }
}

/** The certificate's signed part: everything up to and including the CA key. */
export function certificateBody(body: CertBody, ca: TestCa): Buffer {
  const principals = Buffer.isBuffer(body.principals) ? body.principals : Buffer.concat((body.principals ?? ['alice']).map((p) => str(p)));
  const now = BigInt(Math.floor(Date.now() / 1000));
  return Buffer.concat([
    str(body.type),
    str(Buffer.alloc(32, 7)), // nonce
    body.keyFields,
    u64(body.serial ?? 1n),
    u32(body.certType ?? 1),
    str(body.keyId ?? 'test'),
    str(principals),
    u64(body.validAfter ?? now - 5n),
    u64(body.validBefore ?? now + 60n),
    str(body.critical ?? Buffer.alloc(0)),
    // What ssh-keygen and the gateway put in, less what no login through the block needs.
    str(body.extensions ?? options([['permit-port-forwarding', ''], ['permit-pty', '']])),
    str(Buffer.alloc(0)), // reserved
    str(ca.blob),
  ]);
}

/** A whole certificate line, signed by `ca`. */
export function certificateLine(body: CertBody, ca: TestCa, algorithm?: string): string {
  const signed = certificateBody(body, ca);
  return `${body.type} ${Buffer.concat([signed, str(ca.sign(signed, algorithm))]).toString('base64')}`;
}

/** The public fields of an OpenSSH public key line (everything after the type string in its blob). */
export function keyFieldsOf(publicKeyLine: string): { type: string; keyFields: Buffer } {
  const [type, b64] = publicKeyLine.trim().split(/\s+/) as [string, string];
  const blob = Buffer.from(b64, 'base64');
  return { type, keyFields: blob.subarray(4 + blob.readUInt32BE(0)) };
}
