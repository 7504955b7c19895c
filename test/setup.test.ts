/**
 * `cscs-sa setup` against real ssh_config files, with the result read back by `ssh -G`, the
 * way ssh itself will read it.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execa } from 'execa';
import { existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GatewayDouble } from './helpers/gateway-double.ts';
import { BIN, cscsSa, type Home, tempHome, userEnv } from './helpers/cli.ts';

const API_KEY = 'sa-setup-key-0123456789';
const gw = new GatewayDouble({ apiKey: API_KEY, principals: ['svc_from_cert'] });
const test = suite<{ home: Home; env: Record<string, string>; config: string }>('setup');

test.before(async () => {
  await gw.start();
});
test.after(async () => gw.stop());
test.before.each((ctx) => {
  ctx.home = tempHome();
  ctx.env = userEnv(ctx.home, { CSCS_API_KEY: API_KEY, CSCS_AUTHX_URL: gw.url });
  mkdirSync(join(ctx.home.dir, '.ssh'), { mode: 0o700 });
  ctx.config = join(ctx.home.dir, '.ssh', 'config');
});
test.after.each((ctx) => ctx.home.remove());

/** What ssh makes of HOST with this config. */
async function resolve(config: string, host: string, env: Record<string, string>): Promise<Record<string, string[]>> {
  const r = await execa('ssh', ['-G', '-F', config, host], { env, extendEnv: false, reject: false });
  assert.is(r.exitCode, 0, `ssh -G ${host}: ${r.stderr}`);
  const out: Record<string, string[]> = {};
  for (const line of String(r.stdout).split('\n')) {
    const [key, ...rest] = line.split(' ');
    (out[key!] ??= []).push(rest.join(' '));
  }
  return out;
}

function setup(ctx: { env: Record<string, string>; config: string }, ...args: string[]) {
  return cscsSa(['setup', '--ssh-config', ctx.config, ...args], ctx.env);
}

async function assertCscsHosts(ctx: { home: Home; env: Record<string, string>; config: string }, user = 'svc_test') {
  const clariden = await resolve(ctx.config, 'sa-clariden', ctx.env);
  assert.equal(clariden.hostname, ['clariden.alps.cscs.ch']);
  assert.equal(clariden.user, [user]);
  assert.equal(clariden.proxyjump, ['sa-ela']);
  assert.ok(clariden.identityfile!.includes(ctx.home.key), `identityfile ${clariden.identityfile}`);
  assert.equal(clariden.identitiesonly, ['yes']);
  assert.equal(clariden.batchmode, ['yes']);
  const ela = await resolve(ctx.config, 'sa-ela', ctx.env);
  assert.equal(ela.hostname, ['ela.cscs.ch']);
  assert.match(ela.proxycommand![0]!, /cscs-sa(\.cjs)? proxy %h %p$/);
}

const EXISTING: Record<string, string> = {
  'no file': '',
  'global options and Host blocks': 'ServerAliveInterval 30\n\nHost github.com\n    User git\n    IdentityFile ~/.ssh/github\n\nHost *\n    Compression yes\n',
  'Match blocks first': 'Match host *.example.org exec "true"\n    User matched\n\nHost other\n    Port 2200\n',
  'an Include of its own': 'Include ~/.ssh/config.d/*\n\nHost other\n    User bob\n',
  'CRLF line endings': 'ServerAliveInterval 30\r\n\r\nHost github.com\r\n    User git\r\n',
};

for (const [name, text] of Object.entries(EXISTING)) {
  test(`into ${name}: the sa- hosts resolve, everything else as before, twice changes nothing`, async (ctx) => {
    if (text) writeFileSync(ctx.config, text, { mode: 0o600 });
    const others = ['github.com', 'other', 'x.example.org'];
    const before = text ? await Promise.all(others.map((h) => resolve(ctx.config, h, ctx.env))) : [];

    const first = await setup(ctx, '--user', 'svc_test');
    assert.is(first.exitCode, 0, first.stderr);
    await assertCscsHosts(ctx);
    if (text) {
      const after = await Promise.all(others.map((h) => resolve(ctx.config, h, ctx.env)));
      assert.equal(after, before, 'other hosts resolve as before');
      assert.is(readFileSync(`${ctx.config}.cscs-sa.bak`, 'utf8'), text, 'backup of the original');
    }
    const written = readFileSync(ctx.config, 'utf8');
    assert.is(written.includes('\r\n'), text.includes('\r\n'), 'line endings kept');
    // The Include stands before the first Host or Match line.
    const lines = written.split(/\r?\n/);
    const include = lines.findIndex((l) => l.startsWith('Include ') && l.includes('cscs-sa.conf'));
    const firstBlock = lines.findIndex((l) => /^(Host|Match)\s/.test(l));
    assert.ok(include !== -1 && (firstBlock === -1 || include < firstBlock), `Include at ${include}, first block at ${firstBlock}`);
    assert.is(statSync(join(ctx.home.dir, '.ssh', 'cscs-sa.conf')).mode & 0o777, 0o600);

    const conf = readFileSync(join(ctx.home.dir, '.ssh', 'cscs-sa.conf'), 'utf8');
    const second = await setup(ctx, '--user', 'svc_test');
    assert.is(second.exitCode, 0, second.stderr);
    assert.is(second.stdout, 'cscs-sa: nothing to change\n');
    assert.is(readFileSync(ctx.config, 'utf8'), written);
    assert.is(readFileSync(join(ctx.home.dir, '.ssh', 'cscs-sa.conf'), 'utf8'), conf);
  });
}

test('a symlinked config (dotfiles): the target is edited, the link kept', async (ctx) => {
  const target = join(ctx.home.dir, 'dotfiles-ssh-config');
  writeFileSync(target, 'Host github.com\n    User git\n', { mode: 0o600 });
  symlinkSync(target, ctx.config);
  const r = await setup(ctx, '--user', 'svc_test');
  assert.is(r.exitCode, 0, r.stderr);
  assert.ok(statSync(ctx.config).isFile() && readFileSync(ctx.config, 'utf8') === readFileSync(target, 'utf8'));
  assert.match(readFileSync(target, 'utf8'), /# BEGIN cscs-sa/);
  await assertCscsHosts(ctx);
});

test('--dry-run shows the diff and changes nothing', async (ctx) => {
  const text = 'Host github.com\n    User git\n';
  writeFileSync(ctx.config, text, { mode: 0o600 });
  const r = await setup(ctx, '--user', 'svc_test', '--dry-run');
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /^--- \/dev\/null\n\+\+\+ .*cscs-sa\.conf\n@@ -0,0 \+1,\d+ @@\n/);
  assert.match(r.stdout, new RegExp(`--- ${ctx.config}\\n\\+\\+\\+ ${ctx.config}\\n@@ -0,0 \\+1,4 @@\\n\\+# BEGIN cscs-sa`));
  assert.is(readFileSync(ctx.config, 'utf8'), text);
  assert.not.ok(existsSync(join(ctx.home.dir, '.ssh', 'cscs-sa.conf')));
  assert.not.ok(existsSync(ctx.home.key), 'no key pair either');
});

test('--dry-run without --user fetches nothing and creates nothing: it asks for the name', async (ctx) => {
  const r = await setup(ctx, '--dry-run');
  assert.is(r.exitCode, 2);
  assert.is(r.stderr, 'cscs-sa: setup: --dry-run and --print change nothing, so they cannot fetch a certificate to learn the login name: pass --user NAME\n');
  assert.not.ok(existsSync(ctx.home.key));
});

test('without --user, the login name comes from a freshly signed certificate', async (ctx) => {
  const r = await setup(ctx);
  assert.is(r.exitCode, 0, r.stderr);
  await assertCscsHosts(ctx, 'svc_from_cert');
});

test('--hosts chooses the clusters; --env tds is passed to match; --agent to proxy', async (ctx) => {
  const r = await setup(ctx, '--user', 'svc_test', '--hosts', 'sa-daint,santis', '--env', 'tds', '--agent');
  assert.is(r.exitCode, 0, r.stderr);
  const conf = readFileSync(join(ctx.home.dir, '.ssh', 'cscs-sa.conf'), 'utf8');
  assert.equal([...conf.matchAll(/^Host (\S+)$/gm)].map((m) => m[1]), ['sa-ela', 'sa-daint', 'sa-santis', 'sa-*']);
  assert.match(conf, /^Match originalhost sa-\* exec ".* match --env tds %n"$/m);
  assert.match(conf, /^ {4}ProxyCommand .* proxy --agent %h %p$/m);
  assert.match(conf, /^ {4}IdentitiesOnly no$/m);
});

test('names cscs-sa by absolute paths where ssh\'s $SHELL -c would not find it, by name where it would', async (ctx) => {
  const hidden = await setup(ctx, '--user', 'svc_test', '--print');
  assert.match(hidden.stdout, new RegExp(`^Match originalhost sa-\\* exec "${process.execPath} ${BIN} match %n"$`, 'm'));
  const bin = join(ctx.home.dir, 'bin');
  mkdirSync(bin);
  symlinkSync(BIN, join(bin, 'cscs-sa'));
  const onPath = await cscsSa(['setup', '--ssh-config', ctx.config, '--user', 'svc_test', '--print'], { ...ctx.env, PATH: `${bin}:${ctx.env.PATH}` });
  assert.match(onPath.stdout, /^Match originalhost sa-\* exec "cscs-sa match %n"$/m);
  assert.match(onPath.stdout, /^ {4}ProxyCommand cscs-sa proxy %h %p$/m);
});

test('broken markers: refuses with the reason, exit 3, nothing changed', async (ctx) => {
  const text = '# BEGIN cscs-sa (managed by `cscs-sa setup`; edits between these lines are replaced)\nInclude /x\nHost a\n';
  writeFileSync(ctx.config, text, { mode: 0o600 });
  const r = await setup(ctx, '--user', 'svc_test');
  assert.is(r.exitCode, 3);
  assert.is(r.stderr, 'cscs-sa: the cscs-sa markers in the ssh config are broken (1 BEGIN, 0 END): fix or remove them by hand, then run setup again\n');
  assert.is(readFileSync(ctx.config, 'utf8'), text);
});

test('--print prints the block that examples/ssh_config shows', async (ctx) => {
  const r = await cscsSa(['setup', '--print', '--user', 'svc_account_name', '--key', '~/.ssh/cscs-key-sa'], ctx.env);
  assert.is(r.exitCode, 0, r.stderr);
  // As a user with cscs-sa on the PATH sees it: the example names the command and ~.
  const shown = r.stdout.replaceAll(ctx.home.dir, '~').replace(/^(Match .* exec ")[^"]*?( match %n")$/m, '$1cscs-sa$2').replace(/^( {4}ProxyCommand ).*?( proxy %h %p)$/m, '$1cscs-sa$2');
  assert.is(shown, readFileSync(new URL('../examples/ssh_config', import.meta.url), 'utf8'));
});

test.run();
