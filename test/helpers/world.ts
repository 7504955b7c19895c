/**
 * Everything a user's machine has, on loopback: the gateway double, two sshd ("ela", the jump
 * host, and "clariden" behind it), a HOME with no key, `cscs-sa` on the PATH, and an ssh_config
 * with the routes and defaults of the block setup writes and its Match line (the shell check,
 * then `cscs-sa match`), with absolute paths (ssh expands ~ from the password database, not HOME).
 * Tests of setup's own block use test/helpers/setup-home.ts.
 */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { execa, type Options } from 'execa';
import { freshCheck } from '../../src/ssh/freshcheck.ts';
import { GatewayDouble } from './gateway-double.ts';
import { Sshd } from './sshd.ts';
import { BIN, type Home, tempHome, userEnv } from './cli.ts';

export const API_KEY = 'sa-e2e-key-fedcba9876543210';

export interface Run {
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
}

export class World {
  readonly user = userInfo().username;
  readonly gateway = new GatewayDouble({ apiKey: API_KEY, principals: [this.user] });
  ela!: Sshd;
  clariden!: Sshd;
  home!: Home;
  sshConfig = '';
  /** The UserKnownHostsFile of a config with checked host keys. */
  knownHosts = '';
  env: Record<string, string> = {};

  async start(): Promise<this> {
    await this.gateway.start();
    this.ela = await new Sshd('ela', this.gateway.caPublicKey).start();
    this.clariden = await new Sshd('clariden', this.gateway.caPublicKey).start();
    this.freshHome();
    return this;
  }

  async stop(): Promise<void> {
    await Promise.all([this.ela?.stop(), this.clariden?.stop()]);
    await this.gateway.stop();
    this.home?.remove();
  }

  /**
   * A new HOME with no key and no certificate, as on a fresh CI runner. The ssh_config's Match
   * line is setup's (the shell check, else `cscs-sa match %n`), or runs `match` alone (every ssh
   * then starts it), or is `matchLine` (null: none); `above` goes before it (a user's own blocks);
   * `hostKeys`: 'unchecked' (StrictHostKeyChecking no), 'none' (checked, none known) or 'pinned'
   * (checked, both sshd's keys in `knownHosts`).
   */
  freshHome({
    match,
    env = {} as Record<string, string>,
    matchLine,
    above = '',
    hostKeys = 'unchecked',
  }: { match?: string; env?: Record<string, string>; matchLine?: string | null; above?: string; hostKeys?: 'unchecked' | 'none' | 'pinned' } = {}): Home {
    this.home?.remove();
    this.home = tempHome();
    const bin = join(this.home.dir, 'bin');
    mkdirSync(bin);
    symlinkSync(BIN, join(bin, 'cscs-sa'));
    this.sshConfig = join(this.home.dir, 'ssh_config');
    this.knownHosts = join(this.home.dir, 'known_hosts');
    if (hostKeys === 'pinned') {
      writeFileSync(this.knownHosts, [this.ela, this.clariden].map((s) => `[127.0.0.1]:${s.port} ${s.hostPublicKey}\n`).join(''));
    }
    const hostKeyLines =
      hostKeys === 'unchecked'
        ? 'StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null'
        : `StrictHostKeyChecking yes\n    UserKnownHostsFile ${this.knownHosts}\n    GlobalKnownHostsFile /dev/null`;
    writeFileSync(
      this.sshConfig,
      `${above}${matchLine === null ? '' : `${matchLine ?? `Match originalhost sa-* exec "${match ?? freshCheck(this.home.key, 'cscs-sa match %n')}"`}\n\n`}Host sa-ela
    HostName 127.0.0.1
    Port ${this.ela.port}

Host sa-clariden
    HostName 127.0.0.1
    Port ${this.clariden.port}
    ProxyJump sa-ela

Host sa-*
    User ${this.user}
    IdentityFile ${this.home.key}
    IdentitiesOnly yes
    ProxyCommand cscs-sa proxy %h %p
    BatchMode yes
    ${hostKeyLines}
    LogLevel ERROR
`,
    );
    this.env = userEnv(this.home, {
      PATH: `${bin}:${process.env.PATH}`,
      CSCS_API_KEY: API_KEY,
      CSCS_AUTHX_URL: this.gateway.url,
      SHELL: '/bin/sh',
      ...env,
    });
    this.gateway.reset();
    return this.home;
  }

  /**
   * A user's ssh config that reaches this world's sshd and then includes INCLUDE (a block that
   * `cscs-sa setup` wrote): the user's own settings come first and win, `Host *` ends them.
   * ELA_PORT puts something (a delaying relay) in front of the jump host.
   */
  userConfig(include: string, elaPort = this.ela.port): string {
    return `Host sa-ela
    HostName 127.0.0.1
    Port ${elaPort}
Host sa-clariden
    HostName 127.0.0.1
    Port ${this.clariden.port}
Host sa-*
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    LogLevel ERROR
Host *
Include ${include}
`;
  }

  /** Runs a real OpenSSH tool (ssh, scp, sftp) with this world's ssh_config. */
  async tool(file: 'ssh' | 'scp' | 'sftp', args: string[], options: Options = {}): Promise<Run> {
    const r = await execa(file, ['-F', this.sshConfig, ...args], { env: this.env, extendEnv: false, reject: false, stdin: 'ignore', ...options });
    return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
  }

  async ssh(...args: string[]): Promise<Run> {
    return this.tool('ssh', args);
  }

  async rsync(args: string[]): Promise<Run> {
    const r = await execa('rsync', ['-e', `ssh -F ${this.sshConfig}`, ...args], { env: this.env, extendEnv: false, reject: false, stdin: 'ignore' });
    return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
  }
}
