/**
 * A local test double of the CSCS authx gateway: the two service-account endpoints in the
 * official wire format, signing real certificates with ssh-keygen and a CA of its own, counting
 * calls, and answering with scripted faults when told to.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { parseCertificate } from '../../src/core/certificate.ts';

/** What one request gets instead of the normal answer. */
export type Fault =
  | { status: number; body?: string; headers?: Record<string, string> }
  | { hang: true }
  | { reset: true }
  | { resetMidBody: true }
  | { delayMs: number }
  /** sign only: a certificate that is wrong in one way ('forged': one bit of its CA signature flipped). */
  | { certificate: 'other-key' | 'expired' | 'host' | 'garbage' | 'forged' }
  /** sign only: a certificate valid for this ssh-keygen -V interval instead of the usual one (e.g. '-60s:+2s'). */
  | { validity: string }
  /** sign only: more ssh-keygen -s arguments, which win over the usual ones (-O force-command=CMD, -O no-port-forwarding, -V always:forever, -n NAME). */
  | { keygen: string[] }
  /** sign only: the certificate the double signed, replaced by what this returns. */
  | { rewrite: (line: string) => string }
  /** sign only: answer 422 unless the body uses the docs' public_key field. */
  | { snakeCaseOnly: true };

export interface Recorded {
  /** When the request arrived (ms since the epoch). */
  atMs: number;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
  /** sign: the API key whose token the request carried. */
  apiKey?: string;
}

export interface GatewayDoubleOptions {
  apiKey: string;
  /** Principals of every certificate, i.e. the login name. */
  principals: string[];
  /** ssh-keygen -V validity interval. */
  validity?: string;
  /** More service accounts: API key -> the principals its certificates name. */
  accounts?: Record<string, string[]>;
}

/**
 * The second of each certificate's life, beyond the refresh margin, that cscs-sa gives away on
 * purpose: it takes the clock offset one Date-header second high (an upper bound, see
 * src/refresh/gateway.ts clockOffset), so the fresh window ends about a second before
 * valid_before less the margin. Tests that count the sign calls a span of time needs count it.
 */
export const SECOND_GIVEN_AWAY = 1;

export class GatewayDouble {
  readonly dir = mkdtempSync(join(tmpdir(), 'cscs-sa-gw-'));
  readonly caKey = join(this.dir, 'ca');
  readonly caPublicKey = join(this.dir, 'ca.pub');
  readonly requests: Recorded[] = [];
  /** Faults consumed one per request, by endpoint. */
  readonly faults: { token: Fault[]; sign: Fault[] } = { token: [], sign: [] };
  readonly issuedTokens = new Set<string>();
  /** The API key each token was bought with. */
  private readonly tokenApiKeys = new Map<string, string>();
  /** Every certificate handed out: when, and its valid_before in seconds. */
  readonly issued: { atMs: number; validBefore: number }[] = [];
  /** TCP connections accepted since the last reset. */
  connections = 0;
  url = '';
  private serial = 1000;
  private readonly sockets = new Set<Socket>();
  private readonly server = createServer((req, res) => void this.handle(req, res));

  constructor(readonly options: GatewayDoubleOptions) {}

  get tokenCalls(): number {
    return this.requests.filter((r) => r.path.endsWith('/auth/token')).length;
  }
  get signCalls(): number {
    return this.requests.filter((r) => r.path.endsWith('/ssh-keys/sign')).length;
  }
  /** Sign calls made with a token bought with `apiKey`. */
  signCallsFor(apiKey: string): number {
    return this.requests.filter((r) => r.path.endsWith('/ssh-keys/sign') && r.apiKey === apiKey).length;
  }

  /** The principals certificates bought with `apiKey` name, or undefined for a key it does not know. */
  private principalsOf(apiKey: string | undefined): string[] | undefined {
    if (apiKey === undefined) return undefined;
    if (apiKey === this.options.apiKey) return this.options.principals;
    const accounts = this.options.accounts ?? {};
    return Object.hasOwn(accounts, apiKey) ? accounts[apiKey] : undefined;
  }

  async start(): Promise<this> {
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'cscs-sa test CA', '-f', this.caKey]);
    this.server.on('connection', (socket) => {
      this.connections++;
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }

  reset(): void {
    this.requests.length = 0;
    this.issued.length = 0;
    this.connections = 0;
    this.faults.token.length = 0;
    this.faults.sign.length = 0;
  }

  /** Signs `publicKeyLine` with the double's CA, as the gateway would. */
  async sign(publicKeyLine: string, { validity = this.options.validity ?? '-5s:+60s', host = false, principals = this.options.principals, extra = [] as string[] } = {}): Promise<string> {
    const file = join(this.dir, `key-${randomBytes(6).toString('hex')}.pub`);
    writeFileSync(file, `${publicKeyLine.trim()}\n`);
    try {
      const serial = String(this.serial++);
      const args = ['-q', '-s', this.caKey, '-I', `sa-${serial}`, '-n', principals.join(','), '-V', validity, '-z', serial];
      await execa('ssh-keygen', [...args, ...(host ? ['-h'] : []), ...extra, file]);
      return readFileSync(file.replace(/\.pub$/, '-cert.pub'), 'utf8').trim();
    } finally {
      rmSync(file, { force: true });
      rmSync(file.replace(/\.pub$/, '-cert.pub'), { force: true });
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const path = req.url ?? '';
    const recorded: Recorded = { atMs: Date.now(), path, headers: req.headers, body };
    this.requests.push(recorded);
    const endpoint = path === '/api-service-account/api/v1/auth/token' ? 'token' : path === '/api-ssh-service/api/v1/ssh-keys/sign' ? 'sign' : undefined;
    if (req.method !== 'POST' || !endpoint) return json(res, 404, { message: 'not found' });

    const fault = this.faults[endpoint].shift();
    if (fault && 'delayMs' in fault) await new Promise((r) => setTimeout(r, fault.delayMs));
    if (fault && 'hang' in fault) return; // accepted, never answered
    if (fault && 'reset' in fault) return void req.socket.destroy();
    if (fault && 'resetMidBody' in fault) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '200' });
      res.write('{"sshKey": {"publicKey": "ssh-ed25519-cert-v01@openssh.com AAAA');
      setTimeout(() => req.socket.destroy(), 20);
      return;
    }
    if (fault && 'status' in fault) {
      res.writeHead(fault.status, { 'content-type': 'application/json', ...fault.headers });
      return void res.end(fault.body ?? JSON.stringify({ message: `scripted ${fault.status}` }));
    }

    if (endpoint === 'token') {
      const apiKey = req.headers['x-api-key'] as string | undefined;
      if (!this.principalsOf(apiKey)) return json(res, 401, { message: 'Invalid API key' });
      const token = `eyJ${randomBytes(24).toString('base64url')}`;
      this.issuedTokens.add(token);
      this.tokenApiKeys.set(token, apiKey!);
      return json(res, 200, { access_token: token, expires_in: 300, id_token: `eyJ${randomBytes(8).toString('hex')}` });
    }

    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (!bearer || !this.issuedTokens.has(bearer)) return json(res, 401, { message: 'Invalid token' });
    recorded.apiKey = this.tokenApiKeys.get(bearer);
    const principals = this.principalsOf(recorded.apiKey)!;
    let parsed: { publicKey?: string; public_key?: string; duration?: string };
    try {
      parsed = JSON.parse(body);
    } catch {
      return json(res, 400, { message: 'Invalid JSON body' });
    }
    const publicKey = fault && 'snakeCaseOnly' in fault ? parsed.public_key : parsed.publicKey ?? parsed.public_key;
    if (!publicKey) {
      if (fault && 'snakeCaseOnly' in fault) this.faults.sign.unshift(fault); // the retry gets the same server
      return json(res, 422, { message: 'public_key: field required' });
    }
    const wrong = fault && 'certificate' in fault ? fault.certificate : undefined;
    let certificate: string;
    if (wrong === 'garbage') certificate = 'this is not a certificate';
    else if (wrong === 'other-key') certificate = await this.sign(await otherPublicKey(this.dir));
    else if (wrong === 'expired') certificate = await this.sign(publicKey, { validity: '-10m:-5m', principals });
    else certificate = await this.sign(publicKey, { host: wrong === 'host', principals, ...(fault && 'validity' in fault ? { validity: fault.validity } : {}), ...(fault && 'keygen' in fault ? { extra: fault.keygen } : {}) });
    if (wrong === 'forged') certificate = flipSignatureBit(certificate);
    if (fault && 'rewrite' in fault) certificate = fault.rewrite(certificate);
    const validBefore = validBeforeOf(certificate);
    this.issued.push({ atMs: Date.now(), validBefore });
    // A "forever" certificate (valid_before 2^64-1) has no date to show.
    const expireTime = validBefore * 1000 <= 8.64e15 ? new Date(validBefore * 1000).toISOString() : null;
    return json(res, 201, { sshKey: { publicKey: certificate, expireTime, serialNumber: String(this.serial - 1), revocationTime: null } });
  }
}

/** valid_before of a certificate line, or 0 for one that does not parse (the garbage fault). */
function validBeforeOf(line: string): number {
  try {
    return Number(parseCertificate(line).validBefore);
  } catch {
    return 0;
  }
}

/** The same certificate with one bit of the signature's last byte flipped. */
function flipSignatureBit(line: string): string {
  const [type, b64] = line.split(' ') as [string, string];
  const blob = Buffer.from(b64, 'base64');
  blob[blob.length - 1]! ^= 0x01;
  return `${type} ${blob.toString('base64')}`;
}

async function otherPublicKey(dir: string): Promise<string> {
  const file = join(dir, `other-${randomBytes(4).toString('hex')}`);
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file]);
  return readFileSync(`${file}.pub`, 'utf8');
}

function json(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}
