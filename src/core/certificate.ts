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
  /** Names of the critical options and extensions, in their (checked) order. */
  criticalOptions: string[];
  extensions: string[];
  /** The CA's public key blob, the bytes it signed (everything before the signature) and its signature blob. */
  signatureKey: Buffer;
  signed: Buffer;
  signature: Buffer;
  comment: string;
}

export class CertificateParseError extends Error {
  override name = 'CertificateParseError';
}

/**
 * Each certificate type, the plain key type it certifies, and how many length-prefixed fields
 * (string or mpint) that key's public part has: both encodings are a uint32 length and that many
 * bytes, so skipping them needs no more. The names are not derived from each other: the security
 * key types put `-cert-v01` before `@openssh.com` (`sk-ssh-ed25519-cert-v01@openssh.com` certifies
 * `sk-ssh-ed25519@openssh.com`), and their public part ends with the FIDO `application` string.
 */
const CERT_TYPES: Record<string, { keyType: string; fields: number }> = {
  'ssh-ed25519-cert-v01@openssh.com': { keyType: 'ssh-ed25519', fields: 1 },
  'ssh-rsa-cert-v01@openssh.com': { keyType: 'ssh-rsa', fields: 2 },
  'ssh-dss-cert-v01@openssh.com': { keyType: 'ssh-dss', fields: 4 },
  'ecdsa-sha2-nistp256-cert-v01@openssh.com': { keyType: 'ecdsa-sha2-nistp256', fields: 2 },
  'ecdsa-sha2-nistp384-cert-v01@openssh.com': { keyType: 'ecdsa-sha2-nistp384', fields: 2 },
  'ecdsa-sha2-nistp521-cert-v01@openssh.com': { keyType: 'ecdsa-sha2-nistp521', fields: 2 },
  'sk-ssh-ed25519-cert-v01@openssh.com': { keyType: 'sk-ssh-ed25519@openssh.com', fields: 2 },
  'sk-ecdsa-sha2-nistp256-cert-v01@openssh.com': { keyType: 'sk-ecdsa-sha2-nistp256@openssh.com', fields: 3 },
};

const CERT_SUFFIX = /-cert-v01@openssh\.com$/;

/** OpenSSH's SSHKEY_CERT_MAX_PRINCIPALS: cert_parse refuses a certificate with more. */
export const MAX_PRINCIPALS = 256;

/** Reads the SSH wire encoding (RFC 4251 §5): uint32, uint64, length-prefixed strings. */
export class Reader {
  offset = 0;
  /** `truncated` names what ran short, for the message. */
  constructor(
    private readonly buf: Buffer,
    private readonly truncated = 'truncated',
  ) {}

  private need(n: number): void {
    if (this.offset + n > this.buf.length) throw new CertificateParseError(this.truncated);
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
  /** A string that must not hold a NUL, as OpenSSH's sshbuf_get_cstring requires (C would cut it there). */
  cstring(what: string): string {
    return this.cbytes(what).toString('utf8');
  }
  cbytes(what: string): Buffer {
    const bytes = this.bytes();
    if (bytes.includes(0)) throw new CertificateParseError(`${what} contains a NUL byte`);
    return bytes;
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
  if (CERT_SUFFIX.test(type)) throw new CertificateParseError('a certificate, not a public key');
  return { type, blob, comment };
}

/**
 * The names of a critical options or extensions section: packed (name, data) string pairs, as
 * cert_parse requires, with names free of NULs and in strictly increasing order (so each at most
 * once), as PROTOCOL.certkeys requires of both sections.
 */
function optionNames(section: Buffer, what: string): string[] {
  const r = new Reader(section, `${what} malformed`);
  const names: string[] = [];
  let previous: Buffer | undefined;
  while (!r.done) {
    const name = r.cbytes(`${what} name`);
    r.bytes(); // data: its meaning is sshd's business
    if (previous !== undefined && Buffer.compare(previous, name) >= 0) {
      throw new CertificateParseError(`${what} "${name.toString('utf8')}" out of order or repeated`);
    }
    previous = name;
    names.push(name.toString('utf8'));
  }
  return names;
}

/**
 * Parses and checks a certificate as OpenSSH's cert_parse does, except the CA signature
 * (signature.ts verifies that: it needs node:crypto, which this hot-path module does not load).
 */
export function parseCertificate(text: string): Certificate {
  const { type, blob, comment } = splitLine(text);
  if (!CERT_SUFFIX.test(type)) throw new CertificateParseError(`${type} is not a certificate type`);
  const known = CERT_TYPES[type];
  if (known === undefined) throw new CertificateParseError(`unsupported certificate type ${type}`);

  const r = new Reader(blob);
  r.string(); // type, checked by splitLine
  r.bytes(); // nonce
  const fieldsStart = r.offset;
  for (let i = 0; i < known.fields; i++) r.bytes();
  const keyFields = blob.subarray(fieldsStart, r.offset);
  const serial = r.uint64();
  const certType = r.uint32();
  if (certType !== CertType.user && certType !== CertType.host) throw new CertificateParseError(`unknown certificate type ${certType}`);
  const keyId = r.cstring('key id');
  const packed = new Reader(r.bytes(), 'principals malformed');
  const principals: string[] = [];
  while (!packed.done) {
    if (principals.length >= MAX_PRINCIPALS) throw new CertificateParseError(`more than ${MAX_PRINCIPALS} principals`);
    principals.push(packed.cstring('a principal'));
  }
  const validAfter = r.uint64();
  const validBefore = r.uint64();
  const criticalOptions = optionNames(r.bytes(), 'critical options');
  const extensions = optionNames(r.bytes(), 'extensions');
  r.bytes(); // reserved
  const signatureKey = r.bytes();
  const signed = blob.subarray(0, r.offset);
  const signature = r.bytes();
  if (!r.done) throw new CertificateParseError('trailing data after the signature');
  return {
    type,
    keyType: known.keyType,
    keyFields,
    serial,
    certType,
    keyId,
    principals,
    validAfter,
    validBefore,
    criticalOptions,
    extensions,
    signatureKey,
    signed,
    signature,
    comment,
  };
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

/**
 * Extensions a certificate must carry for what the ssh_config block does with it. sshd grants a
 * certificate only the permissions its extensions name. The block reaches every cluster through
 * the jump host with ProxyJump, i.e. `ssh -W`, a direct-tcpip channel that sshd opens only with
 * permit-port-forwarding: without it every cluster fails ("open failed: administratively
 * prohibited") while the jump host alone still works, so the failure would look like a cluster's.
 * Commands, scp and sftp (the sftp subsystem), rsync and git run as exec or subsystem channels
 * without a terminal, which need no extension: permit-pty only serves an interactive login (or
 * ssh -t), which a CI job does not make, so a certificate without it is still usable and is not
 * refused. Agent and X11 forwarding and ~/.ssh/rc are nothing the block uses.
 */
export const REQUIRED_EXTENSIONS: Record<string, string> = {
  'permit-port-forwarding': 'ProxyJump through the jump host needs it',
};

/**
 * Why a certificate that parses cannot serve a login through the block, or undefined when it can.
 * A force-command would run its own command in place of every command, scp and rsync (which then
 * "succeed" doing something else); a certificate valid forever is not what a gateway of
 * one-minute certificates signs, and would never be replaced.
 */
export function unusableBecause(cert: Certificate): string | undefined {
  if (cert.validBefore === FOREVER) return 'is valid forever, not for a limited time';
  if (cert.criticalOptions.includes('force-command')) return 'forces a command (critical option force-command) in place of every command';
  for (const [name, why] of Object.entries(REQUIRED_EXTENSIONS)) {
    if (!cert.extensions.includes(name)) return `lacks the extension ${name} (${why})`;
  }
  return undefined;
}

/** Whether sshd lets the certificate log in as `login`: it must be among the principals. */
export function namesLogin(cert: Certificate, login: string): boolean {
  return cert.principals.includes(login);
}

/**
 * A certificate's string (principal, key id) for a terminal. OpenSSH refuses only NUL in them, so
 * a gateway's answer could carry escape sequences or a newline that forge output lines: control
 * characters are shown as `\xNN` instead.
 */
export function printable(text: string): string {
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
