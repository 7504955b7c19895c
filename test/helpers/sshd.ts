/**
 * A real OpenSSH server on 127.0.0.1 that trusts a CA's user certificates and nothing else:
 * `sshd -D -e -r -f CFG` by absolute path, no PAM, no authorized keys, TrustedUserCAKeys; as root
 * it also needs PermitRootLogin prohibit-password and the privilege-separation folder /run/sshd.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';

export const SSHD = '/usr/sbin/sshd';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

async function banner(port: number, address = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, address);
    socket.setTimeout(1000);
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString().startsWith('SSH-2.0-'));
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => (socket.destroy(), resolve(false)));
  });
}

export interface SshdOptions {
  /** Listen address (default 127.0.0.1). */
  address?: string;
  /** A fixed port (e.g. 22) instead of a free one. */
  port?: number;
  /** sshd's LogLevel; anything but the default ERROR also keeps the log in `log`. */
  logLevel?: 'ERROR' | 'INFO' | 'VERBOSE' | 'DEBUG';
}

export class Sshd {
  readonly dir: string;
  port = 0;
  /** What sshd logged, when a LogLevel was asked for. */
  log = '';
  private process?: ResultPromise;

  constructor(
    readonly name: string,
    private readonly caPublicKey: string,
    private readonly options: SshdOptions = {},
  ) {
    this.dir = mkdtempSync(join(tmpdir(), `cscs-sa-sshd-${name}-`));
  }

  get address(): string {
    return this.options.address ?? '127.0.0.1';
  }

  /** The host key, public half: what a known_hosts line pins. */
  get hostPublicKey(): string {
    return readFileSync(join(this.dir, 'host_ed25519.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
  }

  async start(): Promise<this> {
    // Privilege separation needs this folder when sshd runs as root (CI does).
    if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    const hostKey = join(this.dir, 'host_ed25519');
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
    for (let attempt = 0; attempt < 5; attempt++) {
      this.port = this.options.port ?? (await freePort());
      const config = join(this.dir, 'sshd_config');
      writeFileSync(
        config,
        [
          `Port ${this.port}`,
          `ListenAddress ${this.address}`,
          `HostKey ${hostKey}`,
          `PidFile ${join(this.dir, 'sshd.pid')}`,
          'UsePAM no',
          'AuthorizedKeysFile none',
          `TrustedUserCAKeys ${this.caPublicKey}`,
          'StrictModes no',
          'PermitRootLogin prohibit-password',
          'PasswordAuthentication no',
          'KbdInteractiveAuthentication no',
          'AllowTcpForwarding yes',
          // The key exchange is between ssh and sshd, none of cscs-sa's business: curve25519
          // instead of OpenSSH 9's default sntrup761x25519, which costs each side ~70 ms of CPU
          // per connection on a two-core test machine (measured with ssh's own -o KexAlgorithms),
          // about a third of what a test's ssh costs, in a suite bound by CPU.
          'KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org',
          'MaxStartups 200:30:400',
          'MaxSessions 100',
          'Subsystem sftp internal-sftp',
          `LogLevel ${this.options.logLevel ?? 'ERROR'}`,
          '',
        ].join('\n'),
      );
      // -r: each connection is served by a fork of this sshd, not a new exec of sshd that loads
      // its host keys again (OpenSSH's default, which costs ~11 ms of CPU per login on a two-core
      // test machine). Nothing here changes the host keys once started. OpenSSH 9.8, which split
      // off sshd-session, logs "-r option is deprecated" and goes on.
      this.process = execa(SSHD, ['-D', '-e', '-r', '-f', config], { reject: false, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe' });
      if (this.options.logLevel) this.process.stderr!.on('data', (chunk: Buffer) => (this.log += chunk.toString()));
      for (let i = 0; i < 100; i++) {
        if (this.process.exitCode !== null) break;
        if (await banner(this.port, this.address)) return this;
        await sleep(50);
      }
      this.process.kill();
      await this.process;
    }
    throw new Error(`sshd ${this.name} did not start: ${(await this.process)?.stderr}`);
  }

  async stop(): Promise<void> {
    this.process?.kill();
    await this.process;
    rmSync(this.dir, { recursive: true, force: true });
  }
}
