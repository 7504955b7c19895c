/**
 * The GitHub Action, run as the runner runs it (helpers/gh-runner.ts): the committed bundle's
 * main step, later `run:` steps with no secret (ssh, scp, rsync through real sshd, under the real
 * CSCS host names where the machine allows it, across a certificate expiry), then the post step.
 * Meanwhile every process's argv and environment is watched for the API key.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execa } from 'execa';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseCertificate } from '../../src/core/certificate.ts';
import { GatewayDouble } from '../helpers/gateway-double.ts';
import { filesUnder, type Home, tempHome, userEnv } from '../helpers/cli.ts';
import { NamedHosts, unavailable } from '../helpers/cscs-names.ts';
import { GitHubRunner, ROOT } from '../helpers/gh-runner.ts';
import { scanProcesses } from '../helpers/procscan.ts';

const API_KEY = 'sa-action-key-4d5e6f708192a3b4';
const user = userInfo().username;
const why = await unavailable();
if (why) console.log(`NOTE: not under the real CSCS host names (${why}): the action's host input leads sa-ela and sa-clariden to 127.0.0.1`);
/** Certificates that expire during the test: 12 s, renewed when fewer than 5 s are left (ssh's login must fit in those). */
const hosts = new NamedHosts(new GatewayDouble({ apiKey: API_KEY, principals: [user], validity: '-5s:+12s' }), why);

interface Ctx {
  home: Home;
  sshConfig: string;
  runner: GitHubRunner;
}
const test = suite<Ctx>('GitHub Action');
test.before(async () => {
  await hosts.start();
});
test.after(async () => hosts.stop());
test.before.each((ctx) => {
  hosts.gateway.reset();
  ctx.home = tempHome();
  ctx.sshConfig = join(ctx.home.dir, '.ssh', 'config');
  // The runner machine's environment: no API key; the gateway double's URL stands for the real one.
  const machine = userEnv(ctx.home, { SHELL: '/bin/sh', CSCS_AUTHX_URL: hosts.gateway.url, CSCS_SA_REFRESH_MARGIN: '5', SSH_CONFIG: ctx.sshConfig });
  // RUNNER_TEMP inside HOME, as on GitHub's runners (/home/runner/work/_temp).
  ctx.runner = new GitHubRunner(join(ctx.home.dir, 'work'), machine);
});
test.after.each((ctx) => ctx.home.remove());

const inputs = (ctx: Ctx, more: Record<string, string> = {}) => ({
  'api-key': API_KEY,
  'known-hosts': hosts.pins,
  host: hosts.hostLines.join('\n'),
  'ssh-config': ctx.sshConfig,
  ...more,
});

/** The ssh master processes of this HOME's burst mode, from /proc. */
function masters(ctx: Ctx): string[] {
  return readdirSync('/proc')
    .filter((pid) => /^\d+$/.test(pid))
    .flatMap((pid) => {
      try {
        return [readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0/g, ' ')];
      } catch {
        return [];
      }
    })
    .filter((cmdline) => cmdline.includes(join(ctx.home.dir, '.ssh', 'cscs-sa-cm')));
}

test('main, then steps without the key run ssh, scp and rsync across a certificate expiry; post leaves nothing; the key is in no argv, file or shown log line', async (ctx) => {
  const { runner, home } = ctx;
  const scanner = await scanProcesses();
  let post;
  try {
    const main = await runner.action('main', inputs(ctx));
    assert.is(main.exitCode, 0, main.raw + main.stderr);
    // The first thing main prints is the mask; the runner then hides the key everywhere.
    assert.is(main.raw.split('\n')[0], `::add-mask::${API_KEY}`);
    assert.equal(main.outputs, { host: 'sa-clariden', hosts: 'sa-clariden', user, key: home.key, certificate: home.cert });
    assert.equal(Object.keys(runner.env), ['CSCS_SA_CONFIG']);
    assert.equal(runner.path, [join(runner.temp, 'cscs-sa', 'bin')]);
    // The log: a collapsed group naming hosts, login, certificate validity and the pinned keys' fingerprints.
    const fingerprints = String((await execa('ssh-keygen', ['-l', '-f', '-'], { input: hosts.pins })).stdout).split('\n').map((l) => l.split(' ')[1]);
    const group = /^::group::cscs-sa: sa-clariden ready\n([^]*?)^::endgroup::$/m.exec(runner.log)?.[1] ?? '';
    assert.match(group, new RegExp(`^hosts: +sa-clariden -> ${hosts.targets.clariden!.hostName}.* \\(through sa-ela -> ${hosts.targets.ela!.hostName}`, 'm'));
    assert.match(group, new RegExp(`^login name: +${user}$`, 'm'));
    assert.match(group, /^certificate: +\S+cscs-key-sa-cert\.pub, valid \d{4}-\S+ \.\. \d{4}-\S+ /m);
    for (const fp of fingerprints) assert.ok(group.includes(fp!), `fingerprint ${fp} in the log:\n${group}`);

    const remote = join(home.dir, 'remote');
    mkdirSync(join(runner.workDir, 'site'), { recursive: true });
    writeFileSync(join(runner.workDir, 'site', 'index.html'), 'built by CI\n');
    const upload = await runner.run(`
      test -z "\${CSCS_API_KEY:-}"
      command -v cscs-sa
      ssh -F "$SSH_CONFIG" sa-clariden mkdir -p ${remote}
      printf 'results\\n' > results.txt
      scp -F "$SSH_CONFIG" results.txt sa-clariden:${remote}/results.txt
      rsync -a -e "ssh -F $SSH_CONFIG" site/ sa-clariden:${remote}/site/
      ssh -F "$SSH_CONFIG" sa-clariden id -un`);
    assert.is(upload.exitCode, 0, upload.stderr);
    assert.is(upload.stdout, `${join(runner.temp, 'cscs-sa', 'bin', 'cscs-sa')}\n${user}`);
    assert.is(upload.stderr, '');
    assert.is(readFileSync(join(remote, 'results.txt'), 'utf8'), 'results\n');
    assert.is(readFileSync(join(remote, 'site', 'index.html'), 'utf8'), 'built by CI\n');
    assert.ok(masters(ctx).length >= 1, 'burst mode keeps masters open between steps');

    // With the masters closed and the certificate expired, the next ssh gets a new one from the
    // API key file alone.
    const closed = await runner.run('cscs-sa close --ssh-config "$SSH_CONFIG"');
    assert.is(closed.exitCode, 0, closed.stderr);
    // Nothing runs while it expires: the scanner rests too.
    const validBeforeMs = Number(parseCertificate(readFileSync(home.cert, 'utf8')).validBefore) * 1000;
    scanner.pause();
    await sleep(Math.max(0, validBeforeMs - Date.now() + 1000));
    scanner.resume();
    // status in a step finds the key through the step's CSCS_SA_CONFIG, and says it is not fresh.
    const expired = await runner.run('cscs-sa status >/dev/null || echo "not fresh"');
    assert.is(expired.stdout, 'not fresh');
    const signed = hosts.gateway.signCalls;
    const later = await runner.run('ssh -F "$SSH_CONFIG" sa-clariden cat ' + join(remote, 'results.txt'));
    assert.is(later.exitCode, 0, later.stderr);
    assert.is(later.stdout, 'results');
    assert.is(hosts.gateway.signCalls, signed + 1, 'one new certificate');
    assert.ok(masters(ctx).length >= 1);

    post = await runner.action('post', inputs(ctx));
    assert.is(post.exitCode, 0, post.raw + post.stderr);
  } finally {
    // A failure above must not leave the scanner running, nor burst mode's masters open.
    if (!post) await runner.action('post', inputs(ctx));
    await scanner.stop();
  }
  const { processes } = await scanner.stop();

  // Nothing left: no key pair, certificate, pins, sockets, ssh config, API key file or config.
  assert.equal(masters(ctx), []);
  assert.not.ok(existsSync(join(home.dir, '.ssh')), `left in ~/.ssh: ${existsSync(join(home.dir, '.ssh')) && readdirSync(join(home.dir, '.ssh'))}`);
  assert.not.ok(existsSync(join(runner.temp, 'cscs-sa')));
  assert.match(post.raw, /^cscs-sa: closed [1-9]\d* connections?$/m);
  assert.match(post.raw, /^took the Include of \S+cscs-sa\.conf out of /m);
  assert.match(post.raw, new RegExp(`^removed ${home.key}$`, 'm'));
  assert.not.match(post.raw, /stays/);

  // The key: in no process's argv, in no environment but the action's own (the runner gives it
  // the inputs), in no file, and in the log only as ***.
  const action = (cmdline: string) => cmdline.includes(join(ROOT, 'dist-action'));
  assert.ok(processes.some((p) => p.cmdline.includes('cscs-sa.cjs match')), 'the scan saw the refreshes');
  assert.ok(processes.some((p) => p.comm === 'ssh'), 'the scan saw ssh');
  for (const p of processes) {
    assert.not.ok(p.cmdline.includes(API_KEY), `argv of ${p.cmdline}`);
    if (!action(p.cmdline) && p.comm !== 'node') assert.not.ok(p.environ.includes(API_KEY), `environment of ${p.comm} (${p.cmdline})`);
  }
  for (const file of filesUnder(home.dir)) assert.not.ok(readFileSync(file, 'latin1').includes(API_KEY), `${file} holds the key`);
  assert.not.ok(runner.log.includes(API_KEY), 'the key in the shown log');
  assert.is(runner.raw.split(API_KEY).length - 1, 1, 'the key once in the raw output: the ::add-mask:: command');
});

test('a missing known-hosts input: one ::error:: line with its fix, nothing written, nothing for post to do', async (ctx) => {
  const main = await ctx.runner.action('main', inputs(ctx, { 'known-hosts': '' }));
  assert.is(main.exitCode, 1);
  assert.is(
    main.raw,
    `::add-mask::${API_KEY}\n::error title=cscs-sa::input known-hosts is empty, so ssh would refuse the CSCS hosts: set known-hosts: \${{ vars.CSCS_SA_KNOWN_HOSTS }}, the lines \`cscs-sa known-hosts\` printed on a trusted machine`,
  );
  assert.is(main.stderr, '');
  assert.equal(readdirSync(ctx.home.dir).sort(), ['work']);
  const post = await ctx.runner.action('post', inputs(ctx, { 'known-hosts': '' }));
  assert.is(post.exitCode, 0);
  assert.is(post.raw, '');
});

test('output of cscs-sa that echoes an input with a newline carries out no workflow command', async (ctx) => {
  // A login name from an untrusted place (a branch name, a PR title): setup refuses it and quotes it.
  const main = await ctx.runner.action('main', inputs(ctx, { user: 'nobody\n::warning::injected\n::add-mask::nobody' }));
  assert.is(main.exitCode, 1);
  assert.match(main.raw, 'nobody\\n::warning::injected', 'setup quoted the input, escaped');
  assert.equal(
    ctx.runner.commands.map((c) => c.split(' ')[0]),
    ['add-mask', 'group', 'endgroup', 'error'],
  );
  const post = await ctx.runner.action('post', inputs(ctx));
  assert.is(post.exitCode, 0, post.raw + post.stderr);
  assert.not.ok(existsSync(join(ctx.runner.temp, 'cscs-sa')));
});

test('a main cancelled while it waits for the gateway: post still removes the API key file, the Include and the key pair', async (ctx) => {
  hosts.gateway.faults.sign.push({ hang: true });
  const main = ctx.runner.startAction('main', inputs(ctx, { user }));
  // Cancelled once setup has written its files and the refresh hangs, as the runner cancels: the process group.
  const conf = join(ctx.home.dir, '.ssh', 'cscs-sa.conf');
  for (let i = 0; i < 200 && !(existsSync(conf) && hosts.gateway.requests.some((r) => r.path.endsWith('/sign'))); i++) await sleep(50);
  assert.ok(existsSync(conf), 'setup ran');
  process.kill(-main.process.pid!, 'SIGKILL');
  assert.is.not((await main.done()).exitCode, 0);
  assert.ok(existsSync(join(ctx.runner.temp, 'cscs-sa', 'api-key-sa')), 'the API key file is there before post');

  const post = await ctx.runner.action('post', inputs(ctx, { user }));
  assert.is(post.exitCode, 0, post.raw + post.stderr);
  assert.not.ok(existsSync(join(ctx.home.dir, '.ssh')), `left: ${existsSync(join(ctx.home.dir, '.ssh')) && readdirSync(join(ctx.home.dir, '.ssh'))}`);
  assert.not.ok(existsSync(join(ctx.runner.temp, 'cscs-sa')));
  assert.not.ok(lstatSync(ctx.sshConfig, { throwIfNoEntry: false }));
});

test.run();
