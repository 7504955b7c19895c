/**
 * A HOME with the blocks that `cscs-sa setup` writes (one per account), led to this world's sshd
 * by the user's own lines in front of them, the way a user overrides a host; Node starts counted.
 */
import * as assert from 'uvu/assert';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cscsSa, type Snapshot, snapshot } from './cli.ts';
import { type NodeStarts, recordNodeStarts } from './node-starts.ts';
import type { World } from './world.ts';

export interface SetupHome {
  config: string;
  /** burst mode's socket folder (setup --multiplex). */
  sockets: string;
  starts: NodeStarts;
}

/**
 * `accounts`: the --account flags of each setup run ([] for the default account); `args`: more
 * setup flags for every run (--multiplex). Hosts sa-ela, sa-clariden and their proj- twins.
 */
export interface SetupHomeOptions {
  env?: Record<string, string>;
  accounts?: string[][];
  args?: string[];
}

export async function setupHome(world: World, { env = {}, accounts = [[]], args = [] }: SetupHomeOptions = {}): Promise<SetupHome> {
  const home = world.freshHome({ env });
  const starts = recordNodeStarts(world.env, home.dir);
  const ssh = join(home.dir, '.ssh');
  mkdirSync(ssh, { recursive: true, mode: 0o700 });
  const config = join(ssh, 'config');
  const includes: string[] = [];
  for (const account of accounts) {
    const name = account[1];
    const key = name ? join(ssh, `cscs-key-${name}`) : home.key;
    const r = await cscsSa(['setup', ...account, ...args, '--user', world.user, '--key', key, '--hosts', 'clariden', '--ssh-config', config], world.env);
    assert.is(r.exitCode, 0, r.stderr);
    includes.push(join(ssh, name ? `cscs-sa-${name}.conf` : 'cscs-sa.conf'));
  }
  const own = world
    .userConfig(includes[0]!)
    .replace(/^Host sa-ela$/m, 'Host sa-ela proj-ela')
    .replace(/^Host sa-clariden$/m, 'Host sa-clariden proj-clariden')
    .replace(/^Host sa-\*$/m, 'Host sa-* proj-*');
  writeFileSync(config, own + includes.slice(1).map((i) => `Include ${i}\n`).join(''));
  world.sshConfig = config;
  starts.reset();
  return { config, sockets: join(ssh, 'cscs-sa-cm'), starts };
}

export interface SharedSetupHome {
  /** The HOME for a test, `env` on top of its environment (see sharedSetupHome). */
  home(env?: Record<string, string>): Promise<SetupHome>;
  /** What the first home() made, once it ran. */
  readonly made: SetupHome | undefined;
  /** Deletes the copy: for the test file's after. */
  remove(): void;
}

/**
 * setupHome (with `options`) once per test file: the first home() runs it, and each later one puts
 * back a byte-for-byte copy of the HOME it made, at the same path (the config files name it).
 * Every home() puts its `env` on top of that HOME's environment and resets the double's counts and
 * the Node starts. For tests that start from setup's blocks rather than test setup: running it
 * for each test was Node starts and a key pair that proved nothing new.
 */
export function sharedSetupHome(world: World, options: Omit<SetupHomeOptions, 'env'> = {}): SharedSetupHome {
  let made: { home: SetupHome; env: Record<string, string>; copy: Snapshot } | undefined;
  return {
    async home(env = {}) {
      if (made) {
        made.copy.restore();
      } else {
        const home = await setupHome(world, options);
        made = { home, env: { ...world.env }, copy: snapshot(world.home.dir) };
      }
      world.env = { ...made.env, ...env };
      world.sshConfig = made.home.config;
      world.gateway.reset();
      made.home.starts.reset();
      return made.home;
    },
    get made() {
      return made?.home;
    },
    remove: () => made?.copy.remove(),
  };
}
