/**
 * Burst mode (setup --multiplex) through real ssh and sshd: the block that setup writes, with
 * the loopback addresses put in front of it the way a user overrides a host. Counts what a user
 * cannot see but pays for: gateway calls at the double, and Node starts.
 */
import * as assert from 'uvu/assert';
import { execa } from 'execa';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sshArgsHaveG } from '../../src/ssh/parent.ts';
import { cscsSa } from '../helpers/cli.ts';
import { holdLock } from '../helpers/holder.ts';
import { certificateInPlace } from '../helpers/prepared.ts';
import { type SetupHome, sharedSetupHome } from '../helpers/setup-home.ts';
import { worldSuite } from '../helpers/suites.ts';

const scratch = mkdtempSync(join(tmpdir(), 'cscs-sa-mux-'));
const { world, test } = worldSuite('burst mode', {
  after: () => {
    rmSync(scratch, { recursive: true, force: true });
    burst.remove();
  },
});

type Burst = SetupHome;

/** The block of `setup --multiplex` and the loopback hosts in front of it, made once for the file. */
const burst = sharedSetupHome(world, { args: ['--multiplex'] });

/** A HOME with that block, and `env` on top of its environment. */
const burstHome = (env: Record<string, string> = {}): Promise<Burst> => burst.home(env);

const socketsIn = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((n) => lstatSync(join(dir, n)).isSocket()) : []);
const sockets = (b: Burst) => socketsIn(b.sockets);

/**
 * Where ssh puts HOST's master. The Match line sets no option, so `ssh -G` prints the same
 * whatever its exec says: it runs as `/bin/true -c ...`, not as a Node start of `cscs-sa match`
 * whenever the certificate is not fresh (what -G does to match is the -G test's to check).
 */
async function controlPath(host: string): Promise<string> {
  const r = await world.tool('ssh', ['-G', host], { env: { ...world.env, SHELL: '/bin/true' } });
  assert.is(r.exitCode, 0, r.stderr);
  return /^controlpath (.*)$/m.exec(r.stdout)![1]!;
}

/**
 * A certificate for the key pair setup made, in place as a refresh leaves it (fresh window of the
 * default margin, 20 s): for a test whose first command only opens the masters, where a refresh
 * (~0.45 s of CPU) would show nothing the test is about.
 */
async function freshCertificate(): Promise<void> {
  await certificateInPlace(world.home, world.gateway, { pair: 'kept', fresh: { marginSeconds: 20 } });
}

async function expireCertificate(): Promise<void> {
  const expired = await world.gateway.sign(readFileSync(world.home.pub, 'utf8'), { validity: '-10m:-5m' });
  writeFileSync(world.home.cert, `${expired}\n`);
}

/** With an expired certificate and no live master, a command refreshes once and works. */
async function expiredCommandRefreshes(): Promise<void> {
  await expireCertificate();
  world.gateway.reset();
  const r = await world.ssh('sa-clariden', 'echo', 'works');
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(r.stdout, 'works');
  assert.is(world.gateway.signCalls, 1);
}

async function close(b: Burst) {
  return cscsSa(['close', '--ssh-config', b.config], world.env);
}

/**
 * Ends the masters whose sockets are in DIR the way close does (`ssh -F /dev/null -S SOCKET -O
 * exit`), without close's Node start: cleanup, where close itself is the close test's subject.
 */
async function endMasters(dir: string): Promise<void> {
  for (const name of socketsIn(dir)) {
    await execa('ssh', ['-F', '/dev/null', '-S', join(dir, name).replaceAll('%', '%%'), '-O', 'exit', '_'], { env: world.env, extendEnv: false, reject: false, stdin: 'ignore' });
  }
}

test.after.each(async () => {
  // No master outlives its test: the next test's counts would include it.
  if (burst.made) await endMasters(burst.made.sockets);
});

test('ssh -G: reads -G the way ssh does', () => {
  for (const args of [['-G', 'h'], ['-vG', 'h'], ['-GF', 'cfg', 'h'], ['-F', 'cfg', '-G', 'h'], ['h', '-G'], ['-p22', '-G', 'h'], ['-4', 'h', '-vG', 'cmd']]) {
    assert.ok(sshArgsHaveG(args), args.join(' '));
  }
  for (const args of [['h'], ['-o', 'G', 'h'], ['-F', '-G', 'h'], ['-oG', 'h'], ['-lG', 'h'], ['h', 'cmd', '-G'], ['--', 'h', '-G'], ['h', '--', '-G'], ['-E', 'log', 'h', 'echo', '-G']]) {
    assert.not.ok(sshArgsHaveG(args), args.join(' '));
  }
});

test('a long command outlives its certificate; then commands on the master (ProxyJump, scp, sftp, rsync, git): one refresh for all, no other Node start', async () => {
  const b = await burstHome({ CSCS_SA_REFRESH_MARGIN: '1' });
  world.gateway.options.validity = '-5s:+4s';
  try {
    const long = await world.ssh('sa-clariden', 'sleep 6; echo done');
    assert.is(long.exitCode, 0, long.stderr);
    assert.is(long.stdout, 'done');
  } finally {
    world.gateway.options.validity = undefined;
  }
  assert.ok(world.gateway.issued.every((c) => c.validBefore < Date.now() / 1000), 'the certificate has expired');
  // Both masters sit where ssh -G says, the jump host's (made by the ProxyJump child ssh -W) included.
  const paths = [await controlPath('sa-clariden'), await controlPath('sa-ela')];
  assert.equal(sockets(b).sort(), paths.map((p) => p.slice(b.sockets.length + 1)).sort());
  world.gateway.reset();
  b.starts.reset();

  const echo = await world.ssh('sa-clariden', 'echo', 'on the master');
  assert.is(echo.exitCode, 0, echo.stderr);
  assert.is(echo.stdout, 'on the master');
  assert.is((await world.ssh('sa-ela', 'true')).exitCode, 0);
  const file = join(scratch, 'up.txt');
  writeFileSync(file, 'payload\n');
  const scp = await world.tool('scp', ['-q', file, `sa-clariden:${join(scratch, 'scp.txt')}`]);
  assert.is(scp.exitCode, 0, scp.stderr);
  assert.is(readFileSync(join(scratch, 'scp.txt'), 'utf8'), 'payload\n');
  const batch = join(scratch, 'batch');
  writeFileSync(batch, `get ${join(scratch, 'scp.txt')} ${join(scratch, 'sftp.txt')}\n`);
  const sftp = await world.tool('sftp', ['-q', '-b', batch, 'sa-clariden']);
  assert.is(sftp.exitCode, 0, sftp.stderr);
  assert.is(readFileSync(join(scratch, 'sftp.txt'), 'utf8'), 'payload\n');
  const rsync = await world.rsync(['-a', file, `sa-clariden:${join(scratch, 'rsync.txt')}`]);
  assert.is(rsync.exitCode, 0, rsync.stderr);
  assert.is(readFileSync(join(scratch, 'rsync.txt'), 'utf8'), 'payload\n');
  const repo = join(scratch, 'repo.git');
  await execa('git', ['init', '-q', '--bare', repo]);
  const git = await execa('git', ['ls-remote', `sa-clariden:${repo}`], { env: { ...world.env, GIT_SSH_COMMAND: `ssh -F ${b.config}` }, extendEnv: false, reject: false });
  assert.is(git.exitCode, 0, git.stderr);

  // The first command refreshed (its Match line cannot know that this ssh will use the master);
  // every later one found the certificate fresh in the shell. No relay: all rode the masters.
  assert.is(world.gateway.signCalls, 1);
  assert.is(b.starts.of('match').length, 1, b.starts.list().join('\n'));
  assert.is(b.starts.list().length, 1, b.starts.list().join('\n'));
});

// Each case is a connection and a refresh (~0.5 s of CPU). Not here: `ssh -o ControlPath=none`,
// what scp's case below hands its ssh (and ssh's -S sets that very option); `-o ControlMaster=no`,
// which still rides the live master, as the first command after expiry does in the test above.
test('with a live master and an expired certificate, an ssh that does not use that master refreshes and works: -S none, Ansible\'s ControlPath, scp -o ControlPath=none', async () => {
  const b = await burstHome();
  await freshCertificate();
  assert.is((await world.ssh('sa-clariden', 'true')).exitCode, 0);
  assert.is(sockets(b).length, 2);
  const ansible = mkdtempSync(join(scratch, 'ansible-cp-'));
  const file = join(scratch, 'other.txt');
  writeFileSync(file, 'other\n');
  const runs: [string, () => ReturnType<typeof world.ssh>][] = [
    ['-S none', () => world.ssh('-S', 'none', 'sa-clariden', 'echo', 'works')],
    // What Ansible's ssh connection passes.
    ["Ansible's", () => world.ssh('-o', 'ControlMaster=auto', '-o', 'ControlPersist=60s', '-o', `ControlPath=${ansible}/%C`, 'sa-clariden', 'echo', 'works')],
    ['scp -o ControlPath=none', async () => {
      const r = await world.tool('scp', ['-q', '-o', 'ControlPath=none', file, `sa-clariden:${join(scratch, 'scp-other.txt')}`]);
      return { ...r, stdout: readFileSync(join(scratch, 'scp-other.txt'), 'utf8') === 'other\n' ? 'works' : 'not copied' };
    }],
  ];
  for (const [what, run] of runs) {
    await expireCertificate();
    world.gateway.reset();
    const r = await run();
    assert.is(r.exitCode, 0, `${what}: ${r.stderr}`);
    assert.is(r.stdout, 'works', what);
    assert.is(world.gateway.signCalls, 1, what);
  }
  await execa('ssh', ['-o', `ControlPath=${ansible}/%C`, '-F', world.sshConfig, '-O', 'exit', 'sa-clariden'], { env: world.env, extendEnv: false, reject: false });
});

// One test for both ends of a master: the masters the first command after close makes are the
// live ones the kill needs (a second HOME and first command only to get there cost ~1.5 s of CPU).
test('cscs-sa close ends the masters, and a master killed with -9 leaves a stale socket: the next command refreshes and works each time; close removes what is stale', async () => {
  const b = await burstHome();
  await freshCertificate();
  assert.is((await world.ssh('sa-clariden', 'true')).exitCode, 0);
  assert.is(sockets(b).length, 2);
  const closed = await close(b);
  assert.is(closed.exitCode, 0, closed.stderr);
  assert.is(closed.stdout, 'cscs-sa: closed 2 connections\n');
  assert.equal(sockets(b), []);
  await expiredCommandRefreshes();
  assert.is(sockets(b).length, 2);

  const check = await world.ssh('-O', 'check', 'sa-clariden');
  const pid = Number(/pid=(\d+)/.exec(check.stderr)?.[1]);
  assert.ok(pid > 0, check.stderr);
  process.kill(pid, 'SIGKILL');
  await sleep(100);
  const stale = (await controlPath('sa-clariden')).slice(b.sockets.length + 1);
  assert.ok(sockets(b).includes(stale), 'the socket is still there');
  await expiredCommandRefreshes();

  // The new master's socket replaced the stale one; kill it too and let close clean up.
  const again = await world.ssh('-O', 'check', 'sa-clariden');
  process.kill(Number(/pid=(\d+)/.exec(again.stderr)?.[1]), 'SIGKILL');
  await sleep(100);
  const r = await close(b);
  assert.is(r.stdout, 'cscs-sa: closed 1 connection, removed 1 stale socket\n');
  assert.equal(sockets(b), []);
});

test('4 concurrent first commands all succeed', async () => {
  // Four through the jump race to be the master of both hosts, and eight Match lines for the one
  // refresh: the race the test is about. 16 proved no more and cost ~10-20 s of CPU.
  const b = await burstHome();
  const runs = await Promise.all(Array.from({ length: 4 }, (_, i) => world.ssh('sa-clariden', 'echo', String(i))));
  runs.forEach((r, i) => {
    assert.is(r.exitCode, 0, r.stderr);
    assert.is(r.stdout, String(i));
  });
  assert.ok(world.gateway.signCalls >= 1 && world.gateway.signCalls <= 2, `${world.gateway.signCalls} sign calls`);
  assert.ok(sockets(b).length >= 1);
});

test('ssh -G with an expired certificate makes no gateway call and waits for no refresh; ssh right after refreshes', async () => {
  await burstHome();
  // setup made the key pair: an expired certificate beside it, and no master, without an ssh and
  // a close (a connection and two Node starts) to get there.
  assert.ok(existsSync(world.home.key));
  await expireCertificate();
  world.gateway.reset();
  // One spelling: each is the same match run, which finds -G in its ssh's arguments; the spellings
  // (-vG, a -G after the host, ...) are the first test's.
  const plain = await world.ssh('-G', 'sa-clariden');
  assert.is(plain.exitCode, 0, plain.stderr);
  assert.match(plain.stdout, /^controlmaster auto$/m);
  assert.is(world.gateway.requests.length, 0);
  // Nor does it wait while another cscs-sa here holds the refresh lock (the hot path waits for such
  // a holder only when ssh connects): git would stall for the whole 10 s deadline.
  const holder = holdLock(`${world.home.key}.lock`);
  try {
    const started = Date.now();
    const g = await world.ssh('-G', 'sa-clariden');
    const ms = Date.now() - started;
    assert.is(g.exitCode, 0, g.stderr);
    assert.ok(ms < 5000, `ssh -G took ${ms} ms beside a holder of the lock`);
  } finally {
    await holder.release();
  }
  const r = await world.ssh('sa-clariden', 'true');
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(world.gateway.signCalls, 1);
});

test('setup --multiplex: folder 0700; % and spaces in its path survive ssh\'s lexer; a path too long for a socket is refused', async () => {
  const odd = join(scratch, '50% a');
  mkdirSync(odd, { recursive: true });
  const b = await burstHome();
  const r = await cscsSa(['setup', '--multiplex', '--user', world.user, '--key', world.home.key, '--hosts', 'clariden', '--ssh-config', join(odd, 'config')], world.env);
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(statSync(join(odd, 'cscs-sa-cm')).mode & 0o777, 0o700);
  writeFileSync(b.config, readFileSync(b.config, 'utf8').replace(/^Include .*$/m, `Include "${join(odd, 'cscs-sa.conf')}"`));
  assert.is(await controlPath('sa-clariden').then((p) => p.startsWith(`${join(odd, 'cscs-sa-cm')}/`)), true);
  await freshCertificate();
  assert.is((await world.ssh('sa-clariden', 'true')).exitCode, 0);
  assert.is(sockets(b).length, 0, 'the masters sit in the folder with % and a space');
  assert.ok(readdirSync(join(odd, 'cscs-sa-cm')).length > 0);
  b.starts.reset();
  assert.is((await world.ssh('sa-clariden', 'true')).exitCode, 0);
  assert.equal(b.starts.list(), [], 'on the master, with a fresh certificate: no Node at all');
  await endMasters(join(odd, 'cscs-sa-cm'));
  assert.equal(readdirSync(join(odd, 'cscs-sa-cm')), []);

  const deep = join(scratch, 'x'.repeat(60));
  mkdirSync(deep);
  const refused = await cscsSa(['setup', '--multiplex', '--user', world.user, '--key', join(deep, 'key'), '--ssh-config', join(deep, 'config')], world.env);
  assert.is(refused.exitCode, 3);
  const dir = join(deep, 'cscs-sa-cm');
  assert.is(refused.stderr, `cscs-sa: setup --multiplex: the socket folder ${dir} is ${dir.length} bytes long, but a socket path must fit 104 bytes, which leaves 45 for the folder: run setup with --ssh-config in a folder with a shorter path, or without --multiplex\n`);
  assert.equal(readdirSync(deep), []);
});

test.run();
