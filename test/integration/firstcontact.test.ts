/**
 * First contact, as a new user on a fresh CI runner: the ssh config that `setup` writes, used
 * as written by real ssh, under the real CSCS host names where the runner allows it (see
 * helpers/cscs-names.ts): host keys, the certificate offered first, overrides above the Include.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execa } from 'execa';
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostname, userInfo } from 'node:os';
import { GatewayDouble } from '../helpers/gateway-double.ts';
import { Sshd } from '../helpers/sshd.ts';
import { BIN, cscsSa, type Home, keyFiles, type Snapshot, snapshot, tempHome, userEnv } from '../helpers/cli.ts';
import { ADDRESSES, addNames, hostFlags, unavailable } from '../helpers/cscs-names.ts';
import { SECOND_USER, secondUser } from '../helpers/users.ts';
import { skipTest } from '../helpers/suites.ts';
import { certificateInPlace } from '../helpers/prepared.ts';
import { knownHostsName } from '../../src/ssh/knownhosts.ts';
import type { Target } from '../../src/ssh/sshconfig.ts';

const API_KEY = 'sa-first-contact-key-0123456789';
const user = userInfo().username;
const why = await unavailable();
if (why) console.log(`NOTE: not under the real CSCS host names (${why}): the same tests lead sa-ela and sa-clariden to 127.0.0.1 with setup --host`);

/** A second account's API key: the double signs it for the second local user. */
const KEY_PROJ = 'proj-first-contact-key-9876543210';
const gateway = new GatewayDouble({ apiKey: API_KEY, principals: [user], accounts: { [KEY_PROJ]: [SECOND_USER] } });
let ela: Sshd;
let clariden: Sshd;
let restoreHosts: (() => void) | undefined;

interface Ctx {
  home: Home;
  env: Record<string, string>;
  config: string;
  targets: Record<string, Target>;
}
const test = suite<Ctx>('first contact');

test.before(async () => {
  await gateway.start();
  if (!why) restoreHosts = addNames();
  const at = (name: keyof typeof ADDRESSES) => (why ? {} : { address: ADDRESSES[name].address, port: 22 });
  ela = await new Sshd('ela', gateway.caPublicKey, { ...at('ela'), logLevel: 'VERBOSE' }).start();
  clariden = await new Sshd('clariden', gateway.caPublicKey, { ...at('clariden'), logLevel: 'VERBOSE' }).start();
});
test.after(async () => {
  await Promise.all([ela?.stop(), clariden?.stop()]);
  await gateway.stop();
  restoreHosts?.();
  pinned?.copy.remove();
});
test.before.each((ctx) => {
  gateway.reset();
  ela.log = clariden.log = '';
  ctx.home = tempHome();
  const bin = join(ctx.home.dir, 'bin');
  mkdirSync(bin);
  symlinkSync(BIN, join(bin, 'cscs-sa'));
  mkdirSync(join(ctx.home.dir, '.ssh'), { mode: 0o700 });
  ctx.config = join(ctx.home.dir, '.ssh', 'config');
  ctx.env = userEnv(ctx.home, { PATH: `${bin}:${process.env.PATH}`, CSCS_API_KEY: API_KEY, CSCS_AUTHX_URL: gateway.url, SHELL: '/bin/sh' });
  ctx.targets = why
    ? { ela: { hostName: '127.0.0.1', port: ela.port }, clariden: { hostName: '127.0.0.1', port: clariden.port } }
    : { ela: { hostName: ADDRESSES.ela.hostName }, clariden: { hostName: ADDRESSES.clariden.hostName } };
});
test.after.each((ctx) => ctx.home.remove());

const setup = (ctx: Ctx, args: string[], options = {}) => cscsSa(['setup', '--ssh-config', ctx.config, '--hosts', 'clariden', ...(why ? hostFlags(ctx.targets) : []), ...args], ctx.env, options);
const ssh = async (ctx: Ctx, args: string[], config = ctx.config) => {
  const r = await execa('ssh', ['-F', config, ...args], { env: ctx.env, extendEnv: false, reject: false, stdin: 'ignore' });
  return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
};
/** The known_hosts lines for the two test sshd, under the names ssh looks them up by. */
const pins = (ctx: Ctx) => `${knownHostsName(ctx.targets.ela!)} ${ela.hostPublicKey}\n${knownHostsName(ctx.targets.clariden!)} ${clariden.hostPublicKey}\n`;
/**
 * What `setup` with CSCS_SA_KNOWN_HOSTS (the way CI pins the keys) made, once in this file: a test
 * that only starts from such a HOME gets a byte-for-byte copy of it at the same path (its files
 * name it), not a setup of its own (a first refresh and a key pair, ~0.6 s of CPU).
 */
let pinned: { home: Home; env: Record<string, string>; config: string; copy: Snapshot } | undefined;
async function pinnedHome(ctx: Ctx): Promise<void> {
  if (pinned) {
    ctx.home.remove();
    pinned.copy.restore();
    Object.assign(ctx, { home: pinned.home, env: pinned.env, config: pinned.config });
    return;
  }
  const set = await setup(ctx, [], { env: { ...ctx.env, CSCS_SA_KNOWN_HOSTS: pins(ctx) } });
  assert.is(set.exitCode, 0, set.stderr);
  assert.is(set.stderr, '');
  pinned = { home: ctx.home, env: ctx.env, config: ctx.config, copy: snapshot(ctx.home.dir) };
}
const esc = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const failedPublickey = () => (ela.log + clariden.log).split('\n').filter((l) => l.includes('Failed publickey'));

// One fresh HOME through the steps a new user takes, each checked where it stands. That ssh then
// stops with "Host key verification failed" is demo.test.ts's to show (the demo runs the same
// setup and that ssh, and fails unless it fails): a second such ssh here cost ~0.4 s of CPU.
test('without pinned host keys setup says so in one line (ssh would stop with "Host key verification failed"); known-hosts (without --hosts: the hosts setup wrote) fetches both keys through the jump host; pinned with setup --known-hosts -, ssh sa-clariden works and sshd logs no "Failed publickey"', async (ctx) => {
  const r = await setup(ctx, []);
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(r.stderr, 'cscs-sa: host keys are not pinned, so ssh stops with "Host key verification failed": run cscs-sa known-hosts on a trusted machine, then cscs-sa setup --known-hosts FILE (or CSCS_SA_KNOWN_HOSTS)\n');

  const fetched = await cscsSa(['known-hosts', '--ssh-config', ctx.config], ctx.env);
  assert.is(fetched.exitCode, 0, fetched.stderr);
  assert.equal(fetched.stdout.split('\n').filter(Boolean).sort(), pins(ctx).split('\n').filter(Boolean).sort());
  assert.match(fetched.stderr, new RegExp(`^fetched  sa-ela  ${esc(knownHostsName(ctx.targets.ela!))}  SHA256:\\S+ \\(ssh-ed25519\\)\nfetched  sa-clariden  ${esc(knownHostsName(ctx.targets.clariden!))}  SHA256:\\S+ \\(ssh-ed25519\\)\n`));

  const pinned = await setup(ctx, ['--known-hosts', '-'], { input: fetched.stdout, stdin: undefined });
  assert.is(pinned.exitCode, 0, pinned.stderr);
  assert.is(pinned.stdout, `pinned 2 host key(s) in ${join(ctx.home.dir, '.ssh', 'cscs-sa.known_hosts')}\n`);
  assert.is(pinned.stderr, '');
  assert.is(readFileSync(join(ctx.home.dir, '.ssh', 'cscs-sa.known_hosts'), 'utf8'), fetched.stdout);

  ela.log = clariden.log = '';
  const s = await ssh(ctx, ['sa-clariden', 'echo', 'ok']);
  assert.is(s.exitCode, 0, s.stderr);
  assert.is(s.stdout, 'ok');
  assert.is(s.stderr, '');
  const accepted = (ela.log + clariden.log).split('\n').filter((l) => /Accepted publickey for .* ED25519-CERT /.test(l));
  assert.is(accepted.length, 2, `one certificate login on each hop:\n${ela.log}${clariden.log}`);
  assert.equal(failedPublickey(), [], 'no failed attempt with the bare key');

  // The same without CertificateFile (the old block): the bare key is offered first and fails.
  const old = join(ctx.home.dir, 'old_ssh_config');
  writeFileSync(old, readFileSync(join(ctx.home.dir, '.ssh', 'cscs-sa.conf'), 'utf8').replace(/^ {4}CertificateFile .*\n/m, ''));
  ela.log = clariden.log = '';
  assert.is((await ssh(ctx, ['sa-clariden', 'true'], old)).exitCode, 0);
  assert.ok(failedPublickey().length >= 1, 'the old block spends an attempt on the bare key');
});

// Each refusal's rule is in test/unit/knownhosts.test.ts; here two of them end to end: exit 2, nothing written.
test('CSCS_SA_KNOWN_HOSTS with garbage or another host is refused with exit 2 and nothing written', async (ctx) => {
  const knownHosts = join(ctx.home.dir, '.ssh', 'cscs-sa.known_hosts');
  for (const [lines, reason] of [
    ['not a key line at all\n', /^cscs-sa: setup: line 1 of CSCS_SA_KNOWN_HOSTS is not a known_hosts line \(.*\): pin the lines cscs-sa known-hosts prints \(nothing was changed\)\n$/],
    [`${pins(ctx)}github.com ${ela.hostPublicKey}\n`, /^cscs-sa: setup: line 3 of CSCS_SA_KNOWN_HOSTS is for "github\.com", which is neither a CSCS host/],
  ] as const) {
    const r = await setup(ctx, [], { env: { ...ctx.env, CSCS_SA_KNOWN_HOSTS: lines } });
    assert.is(r.exitCode, 2, r.stderr);
    assert.match(r.stderr, reason);
    assert.not.ok(existsSync(knownHosts) || existsSync(ctx.config) || existsSync(ctx.home.key), 'nothing written');
  }
});

test('CSCS_SA_KNOWN_HOSTS pins the lines for CI; under cron\'s PATH (/usr/bin:/bin, without cscs-sa) ssh still finds it: setup named it by path; doctor fails a block that names it by name', async (ctx) => {
  await pinnedHome(ctx);
  assert.is(readFileSync(join(ctx.home.dir, '.ssh', 'cscs-sa.known_hosts'), 'utf8'), pins(ctx));
  const cron = { ...ctx.env, PATH: '/usr/bin:/bin' };
  assert.is.not((await execa('sh', ['-c', 'command -v cscs-sa'], { env: cron, extendEnv: false, reject: false })).exitCode, 0, 'cscs-sa is not on cron\'s PATH');
  const s = await execa('ssh', ['-F', ctx.config, 'sa-clariden', 'echo', 'ok'], { env: cron, extendEnv: false, reject: false, stdin: 'ignore' });
  assert.is(s.exitCode, 0, String(s.stderr));
  assert.is(String(s.stdout), 'ok');
  assert.is(String(s.stderr), '');
  const conf = join(ctx.home.dir, '.ssh', 'cscs-sa.conf');
  const good = await cscsSa(['doctor', '--ssh-config', ctx.config], ctx.env);
  assert.match(good.stdout, `✔ ${conf} starts cscs-sa by absolute path, which works under any PATH (cron's too)\n`);
  // A block from an older setup that names the command.
  writeFileSync(conf, readFileSync(conf, 'utf8').replaceAll(`${process.execPath} ${realpathSync(BIN)} `, 'cscs-sa '));
  const bad = await cscsSa(['doctor', '--ssh-config', ctx.config], ctx.env);
  assert.is(bad.exitCode, 1);
  assert.match(bad.stdout, `✘ ${conf} starts cscs-sa by name, which ssh under cron's PATH (/usr/bin:/bin) or a systemd unit's does not find ("cscs-sa: command not found")\n  → run cscs-sa setup again: it names cscs-sa and node by absolute path when a short PATH would not find them\n`);
  const failing = await execa('ssh', ['-F', ctx.config, 'sa-clariden', 'echo', 'ok'], { env: cron, extendEnv: false, reject: false, stdin: 'ignore' });
  assert.match(String(failing.stderr), /cscs-sa: (command )?not found/);
});

test('an override above the Include (Host sa-clariden / HostName, ended by Host *) still refreshes, through ProxyJump', async (ctx) => {
  // Another name for the same server, as a user would set; its key is looked up under the pinned name.
  const other = why ? 'localhost' : ADDRESSES.clariden.address;
  await pinnedHome(ctx);
  // The user puts their own block above the marked Include; setup run again keeps it there.
  writeFileSync(ctx.config, `Host sa-clariden\n    HostName ${other}\n    HostKeyAlias ${knownHostsName(ctx.targets.clariden!)}\nHost *\n${readFileSync(ctx.config, 'utf8')}`);
  const again = await setup(ctx, []);
  assert.is(again.stdout, 'cscs-sa: nothing to change\n');
  assert.match(readFileSync(ctx.config, 'utf8'), /^Host sa-clariden\n {4}HostName .*\n {4}HostKeyAlias .*\nHost \*\n# BEGIN cscs-sa/);
  rmSync(ctx.home.cert, { force: true });
  gateway.reset();
  const s = await execa('ssh', ['-v', '-F', ctx.config, 'sa-clariden', 'echo', 'ok'], { env: ctx.env, extendEnv: false, reject: false, stdin: 'ignore' });
  assert.is(s.exitCode, 0, String(s.stderr));
  assert.is(String(s.stdout), 'ok');
  assert.match(String(s.stderr), /debug1: Executing command: '.* match sa-clariden'/, 'the Match exec ran for the host typed');
  assert.ok(gateway.signCalls >= 1);

  // The same with the old `Match host ... %h`: it never fires for sa-clariden. Whether a Match
  // line fires is settled while ssh reads its config, which `ssh -G` does the same way (ssh -v -G
  // prints the same "Executing command" line) without the connection through the jump host
  // that a real ssh then made only to fail (~0.4 s of CPU).
  const conf = join(ctx.home.dir, '.ssh', 'cscs-sa.conf');
  const old = join(ctx.home.dir, 'old_ssh_config');
  writeFileSync(old, readFileSync(ctx.config, 'utf8').replace(conf, join(ctx.home.dir, 'old.conf')));
  writeFileSync(join(ctx.home.dir, 'old.conf'), readFileSync(conf, 'utf8').replace(/^Match originalhost (.*) %n"$/m, 'Match host $1 %h"'));
  const o = await execa('ssh', ['-v', '-G', '-F', old, 'sa-clariden'], { env: ctx.env, extendEnv: false, reject: false, stdin: 'ignore' });
  assert.is(o.exitCode, 0, String(o.stderr));
  assert.not.match(String(o.stderr), /debug1: Executing command: '.* match (sa-clariden|other|localhost|127\.0\.0\.3)'/);
  // ... where the block setup writes fires under the same ssh -v -G: the check above can fail.
  const current = await execa('ssh', ['-v', '-G', '-F', ctx.config, 'sa-clariden'], { env: ctx.env, extendEnv: false, reject: false, stdin: 'ignore' });
  assert.match(String(current.stderr), /debug1: Executing command: '.* match sa-clariden'/);
});

test('known-hosts when the jump host cannot be reached: exit 8, each host named with why, nothing on stdout', async (ctx) => {
  const r = await cscsSa(['known-hosts', '--hosts', 'clariden', '--ssh-config', ctx.config, ...(why ? hostFlags(ctx.targets) : []), '--host', 'ela=127.0.0.1:1'], ctx.env);
  assert.is(r.exitCode, 8, r.stderr);
  assert.is(r.stdout, '');
  const lines = r.stderr.split('\n');
  assert.match(lines[0]!, /^missing  sa-ela  \[127\.0\.0\.1\]:1  cscs-sa: .*refused.*$/);
  assert.is(lines[1], `missing  sa-clariden  ${knownHostsName(ctx.targets.clariden!)}  not tried: sa-ela was not reached`);
  assert.is(lines[2], 'cscs-sa: no host key from sa-ela, sa-clariden: check that ssh reaches these hosts (cscs-sa doctor HOST --connect)');
  assert.is(lines.length, 4);
});

test('the Set up section typed top to bottom on a fresh HOME: known-hosts, setup --known-hosts, ssh sa-clariden hostname', async (ctx) => {
  const cwd = ctx.home.dir;
  const lead = why ? hostFlags(ctx.targets) : [];
  const sh = (line: string) => execa('sh', ['-c', line], { cwd, env: ctx.env, extendEnv: false, reject: false, stdin: 'ignore' });
  const fetched = await sh(`cscs-sa known-hosts --hosts clariden --ssh-config ${ctx.config} ${lead.join(' ')} > cscs.known_hosts`);
  assert.is(fetched.exitCode, 0, String(fetched.stderr));
  assert.equal(readFileSync(join(cwd, 'cscs.known_hosts'), 'utf8').split('\n').filter(Boolean).sort(), pins(ctx).split('\n').filter(Boolean).sort());
  const set = await sh(`cscs-sa setup --hosts clariden --known-hosts cscs.known_hosts --ssh-config ${ctx.config} ${lead.join(' ')}`);
  assert.is(set.exitCode, 0, String(set.stderr));
  assert.is(String(set.stderr), '');
  const s = await ssh(ctx, ['sa-clariden', 'hostname']);
  assert.is(s.exitCode, 0, s.stderr);
  assert.is(s.stdout, hostname());
  assert.is(s.stderr, '');
  // Typed again without flags: the choices stay, nothing changes.
  const again = await sh(`cscs-sa setup --ssh-config ${ctx.config}`);
  assert.is(String(again.stdout), 'cscs-sa: nothing to change');
  assert.is(String(again.stderr), '');
});

test('known-hosts before setup without an API key: the jump host\'s key (shown before any login), and why the cluster\'s is missing', async (ctx) => {
  const env = { ...ctx.env, CSCS_API_KEY: '' };
  const r = await cscsSa(['known-hosts', '--ssh-config', ctx.config, ...(why ? hostFlags(ctx.targets) : [])], env);
  assert.is(r.exitCode, 8, r.stderr);
  assert.is(r.stdout, `${knownHostsName(ctx.targets.ela!)} ${ela.hostPublicKey}\n`);
  const lines = r.stderr.split('\n');
  assert.match(lines[0]!, /^fetched  sa-ela  \S+  SHA256:\S+ \(ssh-ed25519\)$/);
  assert.match(lines[1]!, /^missing  sa-clariden  \S+  not tried: passing sa-ela needs a certificate \(no API key.*\)$/);
  assert.match(r.stderr, /\ncscs-sa: no host key from sa-clariden: no API key/);
});

test('--trust-on-first-use: a warning line, and ssh records the keys it was shown', async (ctx) => {
  const r = await setup(ctx, ['--trust-on-first-use']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(r.stderr, 'cscs-sa: warning: --trust-on-first-use: ssh accepts the first host key it is shown, also from a machine in the middle; pin the keys instead (cscs-sa known-hosts, setup --known-hosts)\n');
  const s = await ssh(ctx, ['sa-clariden', 'echo', 'ok']);
  assert.is(s.exitCode, 0, s.stderr);
  assert.match(readFileSync(join(ctx.home.dir, '.ssh', 'cscs-sa.known_hosts'), 'utf8'), knownHostsName(ctx.targets.clariden!));
});

const twoAccounts = 'two accounts with --multiplex and pinned host keys: each its own user, its own masters, one refresh each while they are open, close ends them';
if (!secondUser()) skipTest(twoAccounts, 'needs root and the private namespace scripts/test.js makes, to add a second local user');
else test(twoAccounts, async (ctx) => {
  const env = { ...ctx.env, CSCS_API_KEY_PROJ: KEY_PROJ };
  const login = { sa: user, proj: SECOND_USER } as const;
  for (const [account, name] of Object.entries(login)) {
    const r = await setup(ctx, ['--account', account, '--user', name, '--multiplex', '--known-hosts', '-'], { env, input: pins(ctx), stdin: undefined });
    assert.is(r.exitCode, 0, r.stderr);
  }
  const run = async (args: string[]) => {
    const r = await execa('ssh', ['-F', ctx.config, ...args], { env, extendEnv: false, reject: false, stdin: 'ignore' });
    return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
  };
  /** Each account logs in as its own user, with `signs` sign calls for each account's key. */
  const eachLogsIn = async (signs: number) => {
    for (const [account, name] of Object.entries(login)) {
      const r = await run([`${account}-clariden`, 'id', '-un']);
      assert.is(r.exitCode, 0, r.stderr);
      assert.is(r.stdout, name);
    }
    assert.is(gateway.signCallsFor(API_KEY), signs);
    assert.is(gateway.signCallsFor(KEY_PROJ), signs);
  };
  // Each account's first certificate, for the key pair its setup made, in place as a refresh
  // leaves it (fresh window included): that a cold ssh of each account refreshes its own is
  // accounts.test.ts's first test, and burst mode changes nothing there (the Match line is the
  // same); two such refreshes here cost ~0.9 s of CPU. Refreshes with the masters open follow.
  for (const [account, name] of Object.entries(login)) {
    const key = join(ctx.home.dir, '.ssh', `cscs-key-${account}`);
    await certificateInPlace(keyFiles(key), gateway, { pair: 'kept', principals: [name], fresh: { marginSeconds: 20 } });
  }
  const sockets = join(ctx.home.dir, '.ssh', 'cscs-sa-cm');
  try {
    await eachLogsIn(0);
    // One master per host and account: the jump host's (ProxyJump's child ssh) and the cluster's.
    assert.is(readdirSync(sockets).length, 4, readdirSync(sockets).join(' '));
    // Without certificates, the open masters carry the next commands; the Match line cannot know
    // that ssh will ride a master, so each account refreshes its own certificate once.
    for (const account of Object.keys(login)) rmSync(join(ctx.home.dir, '.ssh', `cscs-key-${account}-cert.pub`));
    gateway.reset();
    await eachLogsIn(1);
    assert.is(readdirSync(sockets).length, 4, 'the same masters');
  } finally {
    const closed = await cscsSa(['close', '--ssh-config', ctx.config], env);
    assert.is(closed.exitCode, 0, closed.stderr);
    assert.is(closed.stdout, 'cscs-sa: closed 4 connections\n');
  }
  // With the masters gone, an account without a certificate refreshes its own, and only its own.
  rmSync(join(ctx.home.dir, '.ssh', 'cscs-key-proj-cert.pub'));
  gateway.reset();
  const again = await run(['proj-clariden', 'id', '-un']);
  assert.is(again.exitCode, 0, again.stderr);
  assert.is(gateway.signCallsFor(KEY_PROJ), 1);
  assert.is(gateway.signCallsFor(API_KEY), 0);
  // proj's two masters (its jump host's and the cluster's) end without a Node start of close.
  for (const host of ['proj-clariden', 'proj-ela']) await run(['-O', 'exit', host]);
  assert.equal(readdirSync(sockets), []);
});

test.run();
