/**
 * Native parsing of OpenSSH public keys and user certificates (PROTOCOL.certkeys).
 * `ssh-keygen -L` prints local time without a zone and costs a process start on the hot path,
 * so the binary is read here instead.
 */

/** `uint64` valid_before of a certificate that never expires. */
export const FOREVER = 2n ** 64n - 1n;

export enum CertType {
  user = 1,
  host = 2,
}

export interface PublicKey {
  type: string;
  /** The wire blob: string type followed by the key's public fields. */
  blob: Buffer;
  comment: string;
}

export interface Certificate {
  /** e.g. `ssh-ed25519-cert-v01@openssh.com` */
  type: string;
  /** The plain key type the certificate is for, e.g. `ssh-ed25519`. */
  keyType: string;
  /** The certified key's public fields, as they follow the type string in its `.pub` blob. */
  keyFields: Buffer;
  serial: bigint;
  certType: number;
  keyId: string;
  principals: string[];
  /** Seconds since the epoch. */
  validAfter: bigint;
  /** Seconds since the epoch; FOREVER for no expiry. */
  validBefore: bigint;
  comment: string;
}

export class CertificateParseError extends Error {
  override name = 'CertificateParseError';
}

/**
 * How many length-prefixed fields (string or mpint) each key type's public part has.
 * Both encodings are a uint32 length and that many bytes, so skipping them needs no more.
 */
const KEY_FIELDS: Record<string, number> = {
  'ssh-ed25519': 1,
  'ssh-rsa': 2,
  'ssh-dss': 4,
  'ecdsa-sha2-nistp256': 2,
  'ecdsa-sha2-nistp384': 2,
  'ecdsa-sha2-nistp521': 2,
  'sk-ssh-ed25519@openssh.com': 2,
  'sk-ecdsa-sha2-nistp256@openssh.com': 3,
};

const CERT_SUFFIX = '-cert-v01@openssh.com';

class Reader {
  offset = 0;
  constructor(private readonly buf: Buffer) {}

  private need(n: number): void {
    if (this.offset + n > this.buf.length) throw new CertificateParseError('truncated');
  }
  uint32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  uint64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.offset);
    this.offset += 8;
    return v;
  }
  bytes(): Buffer {
    const n = this.uint32();
    this.need(n);
    const v = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }
  string(): string {
    return this.bytes().toString('utf8');
  }
  get done(): boolean {
    return this.offset === this.buf.length;
  }
}

/** Splits an OpenSSH one-line key (`type base64 [comment]`) and checks the blob names the same type. */
function splitLine(text: string): { type: string; blob: Buffer; comment: string } {
  const line = text.trim().split('\n', 1)[0]?.trim() ?? '';
  const match = /^(\S+)\s+([A-Za-z0-9+/]+={0,2})(?:\s+(.*))?$/.exec(line);
  if (!match) throw new CertificateParseError('not an OpenSSH key line');
  const [, type, b64, comment = ''] = match as unknown as [string, string, string, string?];
  const blob = Buffer.from(b64, 'base64');
  const inner = new Reader(blob).string();
  if (inner !== type) throw new CertificateParseError(`key type ${type} does not match its data (${inner})`);
  return { type, blob, comment };
}

export function parsePublicKey(text: string): PublicKey {
  const { type, blob, comment } = splitLine(text);
  if (type.endsWith(CERT_SUFFIX)) throw new CertificateParseError('a certificate, not a public key');
  return { type, blob, comment };
}

export function parseCertificate(text: string): Certificate {
  const { type, blob, comment } = splitLine(text);
  if (!type.endsWith(CERT_SUFFIX)) throw new CertificateParseError(`${type} is not a certificate type`);
  const keyType = type.slice(0, -CERT_SUFFIX.length);
  const fieldCount = KEY_FIELDS[keyType];
  if (fieldCount === undefined) throw new CertificateParseError(`unsupported key type ${keyType}`);

  const r = new Reader(blob);
  r.string(); // type, checked by splitLine
  r.bytes(); // nonce
  const fieldsStart = r.offset;
  for (let i = 0; i < fieldCount; i++) r.bytes();
  const keyFields = blob.subarray(fieldsStart, r.offset);
  const serial = r.uint64();
  const certType = r.uint32();
  const keyId = r.string();
  const packed = new Reader(r.bytes());
  const principals: string[] = [];
  while (!packed.done) principals.push(packed.string());
  const validAfter = r.uint64();
  const validBefore = r.uint64();
  r.bytes(); // critical options
  r.bytes(); // extensions
  r.bytes(); // reserved
  r.bytes(); // signature key
  r.bytes(); // signature
  if (!r.done) throw new CertificateParseError('trailing data after the signature');
  return { type, keyType, keyFields, serial, certType, keyId, principals, validAfter, validBefore, comment };
}

/** Whether `cert` certifies exactly `key`: same type, same public fields. */
export function certifies(cert: Certificate, key: PublicKey): boolean {
  if (cert.keyType !== key.type) return false;
  const keyFields = key.blob.subarray(4 + Buffer.byteLength(key.type));
  return keyFields.equals(cert.keyFields);
}

/** Seconds of validity left at `nowSeconds`; negative once expired, Infinity for "forever". */
export function secondsLeft(cert: Certificate, nowSeconds: number): number {
  if (cert.validBefore === FOREVER) return Infinity;
  return Number(cert.validBefore) - nowSeconds;
}

/** Whether the certificate's validity window has started at `nowSeconds`. */
export function hasStarted(cert: Certificate, nowSeconds: number): boolean {
  return Number(cert.validAfter) <= nowSeconds;
}
