/**
 * The real CSCS host names on loopback: ela.cscs.ch and clariden.alps.cscs.ch resolve (through
 * /etc/hosts) to 127.0.0.2 and 127.0.0.3, each with an sshd on port 22, so that the block setup
 * writes is used exactly as written. Only inside the private network and mount namespace that
 * scripts/test.js gives each file as root: /etc there is a copy, and the loopback the file's own.
 * Elsewhere `unavailable()` says why, and tests lead the same hosts to 127.0.0.1 with `setup --host`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Target } from '../../src/ssh/sshconfig.ts';
import { knownHostsName } from '../../src/ssh/knownhosts.ts';
import type { GatewayDouble } from './gateway-double.ts';
import { Sshd } from './sshd.ts';

export const HOSTS_FILE = '/etc/hosts';
export const ADDRESSES = { ela: { address: '127.0.0.2', hostName: 'ela.cscs.ch' }, clariden: { address: '127.0.0.3', hostName: 'clariden.alps.cscs.ch' } };

async function canListen(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
      .once('error', () => resolve(false))
      .listen(port, address, () => server.close(() => resolve(true)));
  });
}

/** Why the real names cannot be used here, or undefined when they can. */
export async function unavailable(): Promise<string | undefined> {
  if (process.env.CSCS_SA_TEST_LOOPBACK_ONLY) return 'CSCS_SA_TEST_LOOPBACK_ONLY is set';
  if (!process.env.CSCS_SA_TEST_NAMESPACE) return 'not in the private namespace scripts/test.js makes as root (the machine\'s /etc/hosts is never edited)';
  let text: string;
  try {
    text = readFileSync(HOSTS_FILE, 'utf8');
  } catch (err) {
    return `cannot read ${HOSTS_FILE}: ${(err as Error).message}`;
  }
  const named = Object.values(ADDRESSES).find((a) => text.includes(a.hostName));
  if (named) return `${HOSTS_FILE} already names ${named.hostName}`;
  for (const { address } of Object.values(ADDRESSES)) if (!(await canListen(address, 22))) return `port 22 on ${address} is taken`;
  return undefined;
}

/** Adds the names to /etc/hosts; the returned function (also run at exit) puts the file back. */
export function addNames(): () => void {
  const original = readFileSync(HOSTS_FILE, 'utf8');
  const marker = `# cscs-sa test ${process.pid}`;
  const ours = Object.values(ADDRESSES).map((a) => `${a.address} ${a.hostName} ${marker}\n`).join('');
  writeFileSync(HOSTS_FILE, `${original}${original === '' || original.endsWith('\n') ? '' : '\n'}${ours}`);
  let restored = false;
  const restore = () => {
    if (restored) return;
    restored = true;
    const now = readFileSync(HOSTS_FILE, 'utf8');
    // Someone else changed the file meanwhile: take out our lines only.
    writeFileSync(HOSTS_FILE, now.startsWith(original) && now.endsWith(ours) ? original : now.split('\n').filter((l) => !l.endsWith(marker)).join('\n'));
  };
  process.once('exit', restore);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => (restore(), process.exit(128)));
  return restore;
}

/** Where setup leads a host when the real names are not available: `--host` arguments. */
export function hostFlags(targets: Record<string, Target>): string[] {
  return Object.entries(targets).flatMap(([name, t]) => ['--host', `${name}=${t.hostName}:${t.port ?? 22}`]);
}

/**
 * The gateway double and sshd "ela" and "clariden" under the real CSCS names when `unavailable()`
 * allows it, else on 127.0.0.1 with free ports; `hostLines` are the NAME=HOSTNAME:PORT overrides
 * that lead the hosts there in the second case (none in the first), `pins` the known_hosts lines
 * under the names ssh looks the keys up by.
 */
export class NamedHosts {
  ela!: Sshd;
  clariden!: Sshd;
  targets: Record<string, Target> = {};
  private restore?: () => void;

  constructor(
    readonly gateway: GatewayDouble,
    readonly why: string | undefined,
  ) {}

  async start(): Promise<this> {
    await this.gateway.start();
    if (!this.why) this.restore = addNames();
    const at = (name: keyof typeof ADDRESSES) => (this.why ? {} : { address: ADDRESSES[name].address, port: 22 });
    this.ela = await new Sshd('ela', this.gateway.caPublicKey, at('ela')).start();
    this.clariden = await new Sshd('clariden', this.gateway.caPublicKey, at('clariden')).start();
    this.targets = this.why
      ? { ela: { hostName: '127.0.0.1', port: this.ela.port }, clariden: { hostName: '127.0.0.1', port: this.clariden.port } }
      : { ela: { hostName: ADDRESSES.ela.hostName }, clariden: { hostName: ADDRESSES.clariden.hostName } };
    return this;
  }

  async stop(): Promise<void> {
    await Promise.all([this.ela?.stop(), this.clariden?.stop()]);
    await this.gateway.stop();
    this.restore?.();
  }

  get hostLines(): string[] {
    return this.why ? hostFlags(this.targets).filter((_, i) => i % 2 === 1) : [];
  }

  get pins(): string {
    return `${knownHostsName(this.targets.ela!)} ${this.ela.hostPublicKey}\n${knownHostsName(this.targets.clariden!)} ${this.clariden.hostPublicKey}\n`;
  }
}
