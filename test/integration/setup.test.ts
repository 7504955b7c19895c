/**
 * `cscs-sa setup` against real ssh_config files, with the result read back by `ssh -G`, the
 * way ssh itself will read it.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execa } from 'execa';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GatewayDouble } from '../helpers/gateway-double.ts';
import { BIN, cscsSa, type Home, tempHome, userEnv } from '../helpers/cli.ts';

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

/**
 * What ssh makes of HOST with this config. The block's Match line sets nothing itself (its
 * comment, src/ssh/sshconfig.ts), so what `ssh -G` prints is the same whatever its exec says: for
 * the block's hosts it runs as `/bin/true -c ...`, not as the shell check and then a Node start of
 * `cscs-sa match` (there is no fresh certificate) that no test here asks about.
 */
async function resolve(config: string, host: string, env: Record<string, string>): Promise<Record<string, string[]>> {
  const ours = /^(sa|proj|git)-/.test(host);
  const r = await execa('ssh', ['-G', '-F', config, host], { env: ours ? { ...env, SHELL: '/bin/true' } : env, extendEnv: false, reject: false });
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
  // Only what changes, with the lines around it as context (diff -u).
  assert.ok(r.stdout.endsWith(`--- ${ctx.config}\n+++ ${ctx.config}\n@@ -1,2 +1,6 @@\n+# BEGIN cscs-sa (managed by \`cscs-sa setup\`; edits between these lines are replaced)\n+Include ${join(ctx.home.dir, '.ssh', 'cscs-sa.conf')}\n+# END cscs-sa\n+\n Host github.com\n     User git\n`), r.stdout);
  assert.is(readFileSync(ctx.config, 'utf8'), text);
  assert.not.ok(existsSync(join(ctx.home.dir, '.ssh', 'cscs-sa.conf')));
  assert.not.ok(existsSync(ctx.home.key), 'no key pair either');
});

for (const mode of ['--dry-run', '--print']) {
  test(`${mode} on a fresh machine without --user: a placeholder name, said so; nothing fetched or written`, async (ctx) => {
    gw.reset();
    const r = await setup(ctx, mode);
    assert.is(r.exitCode, 0, r.stderr);
    assert.is(r.stderr, 'cscs-sa: note: the login name is unknown (no --user, CSCS_SA_USERNAME or certificate): shown as svc_account_name\n');
    assert.match(r.stdout, /^\+? {4}User svc_account_name$/m);
    assert.equal(readdirSync(join(ctx.home.dir, '.ssh')), [], 'nothing written');
    assert.is(gw.requests.length, 0, 'nothing fetched');
  });
}

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

test('names cscs-sa by absolute paths where ssh\'s $SHELL -c would not find it, also when only the PATH setup runs under would (cron\'s is /usr/bin:/bin)', async (ctx) => {
  const hidden = await setup(ctx, '--user', 'svc_test', '--print');
  assert.match(hidden.stdout, new RegExp(`^Match originalhost sa-\\* exec "sh -c .* \\|\\| ${process.execPath} ${BIN} match %n"$`, 'm'));
  const bin = join(ctx.home.dir, 'bin');
  mkdirSync(bin);
  symlinkSync(BIN, join(bin, 'cscs-sa'));
  const onPath = await cscsSa(['setup', '--ssh-config', ctx.config, '--user', 'svc_test', '--print'], { ...ctx.env, PATH: `${bin}:${ctx.env.PATH}` });
  assert.match(onPath.stdout, new RegExp(`^Match originalhost sa-\\* exec "sh -c .* \\|\\| ${process.execPath} ${BIN} match %n"$`, 'm'));
  assert.match(onPath.stdout, new RegExp(`^ {4}ProxyCommand ${process.execPath} ${BIN} proxy %h %p$`, 'm'));
});

test('broken markers: refuses with the reason, exit 3, nothing changed', async (ctx) => {
  const text = '# BEGIN cscs-sa (managed by `cscs-sa setup`; edits between these lines are replaced)\nInclude /x\nHost a\n';
  writeFileSync(ctx.config, text, { mode: 0o600 });
  const r = await setup(ctx, '--user', 'svc_test');
  assert.is(r.exitCode, 3);
  assert.is(r.stderr, 'cscs-sa: the cscs-sa markers in the ssh config are broken (1 BEGIN, 0 END): fix or remove them by hand, then run setup again\n');
  assert.is(readFileSync(ctx.config, 'utf8'), text);
});

test('--key with a space and a %: ssh reads back exactly that path, for the key, the certificate and the Match exec', async (ctx) => {
  const key = join(ctx.home.dir, 'my keys 100%', 'cscs-key-sa');
  const r = await setup(ctx, '--user', 'svc_test', '--key', key);
  assert.is(r.exitCode, 0, r.stderr);
  // ssh runs the Match exec (ssh -G would too, but match refreshes nothing for -G): its
  // `match -f KEY` fetched the certificate for this very key; ssh -v then shows the files it loads.
  gw.reset();
  const v = await execa('ssh', ['-v', '-F', ctx.config, '-o', 'ProxyCommand=sleep 2', 'sa-ela', 'true'], { env: ctx.env, extendEnv: false, reject: false });
  assert.is(gw.signCalls, 1);
  assert.ok(existsSync(`${key}-cert.pub`), 'the Match exec refreshed the certificate of this key');
  const loaded = String(v.stderr).split(/\r?\n/);
  assert.ok(loaded.includes(`debug1: identity file ${key} type 3`), String(v.stderr));
  // ssh -G shows the words before token expansion.
  const ela = await resolve(ctx.config, 'sa-ela', ctx.env);
  assert.equal(ela.identityfile, [key.replace('%', '%%')]);
  assert.equal(ela.certificatefile, [`${key.replace('%', '%%')}-cert.pub`]);
  assert.ok(loaded.includes(`debug1: certificate file ${key}-cert.pub type 7`), String(v.stderr));
});

// One of each kind ssh_config cannot carry: a control character, and a quote or backslash (the
// single quote and the backslash take the same rule: test/unit/lex.test.ts has every character).
for (const [name, key] of [
  ['a newline (config injection)', '/tmp/k\nProxyCommand touch /tmp/pwned'],
  ['a double quote', '/tmp/k"x'],
]) {
  test(`--key with ${name}: exit 2, nothing created or changed`, async (ctx) => {
    const text = 'Host github.com\n    User git\n';
    writeFileSync(ctx.config, text, { mode: 0o600 });
    gw.reset();
    const r = await setup(ctx, '--key', key!);
    assert.is(r.exitCode, 2, r.stderr);
    assert.match(r.stderr, /^cscs-sa: setup: cannot write the key ".*" into the ssh config: it contains .*: use a path without it \(nothing was changed\)\n$/);
    assert.is(readFileSync(ctx.config, 'utf8'), text);
    assert.equal(readdirSync(join(ctx.home.dir, '.ssh')), ['config']);
    assert.is(gw.requests.length, 0);
  });
}

test('without --user, a failed certificate fetch keeps its exit code and leads with its own fix', async (ctx) => {
  const noKey = await cscsSa(['setup', '--ssh-config', ctx.config], userEnv(ctx.home, { CSCS_AUTHX_URL: gw.url }));
  assert.is(noKey.exitCode, 4, noKey.stderr);
  assert.match(noKey.stderr, /^cscs-sa: no API key: set CSCS_API_KEY, or apiKeyFile or apiKeyCommand in the config file; or pass --user NAME \(setup needs a certificate only to learn the login name\)\n$/);
  const refused = await cscsSa(['setup', '--ssh-config', ctx.config], { ...ctx.env, CSCS_API_KEY: 'wrong' });
  assert.is(refused.exitCode, 4, refused.stderr);
  assert.match(refused.stderr, /^cscs-sa: API key rejected \(401\)/);
  const down = await cscsSa(['setup', '--ssh-config', ctx.config], { ...ctx.env, CSCS_AUTHX_URL: 'http://127.0.0.1:1', CSCS_SA_TIMEOUT: '2' });
  assert.is(down.exitCode, 5, down.stderr);
  assert.match(down.stderr, /^cscs-sa: cannot reach gateway 127\.0\.0\.1:1/);
  assert.not.ok(existsSync(ctx.config), 'no ssh config written');
});

test('--dry-run with --known-hosts shows the pinned lines and writes nothing', async (ctx) => {
  const line = `ela.cscs.ch ${readFileSync(gw.caPublicKey, 'utf8').trim().split(' ').slice(0, 2).join(' ')}`;
  const r = await cscsSa(['setup', '--ssh-config', ctx.config, '--user', 'svc_test', '--dry-run'], { ...ctx.env, CSCS_SA_KNOWN_HOSTS: line });
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, `+++ ${join(ctx.home.dir, '.ssh', 'cscs-sa.known_hosts')}\n@@ -0,0 +1,1 @@\n+${line}\n`);
  assert.equal(readdirSync(join(ctx.home.dir, '.ssh')), []);
});

test('--print prints the block that examples/ssh_config shows', async (ctx) => {
  const r = await cscsSa(['setup', '--print', '--user', 'svc_account_name', '--key', '~/.ssh/cscs-key-sa', '--ssh-config', '~/.ssh/config'], ctx.env);
  assert.is(r.exitCode, 0, r.stderr);
  // As a user with cscs-sa on the PATH sees it: the example names the command and ~.
  const shown = r.stdout.replaceAll(ctx.home.dir, '~').replace(/^(Match .* \|\| )[^|]*?( match %n")$/m, '$1cscs-sa$2').replace(/^( {4}ProxyCommand ).*?( proxy %h %p)$/m, '$1cscs-sa$2');
  assert.is(shown, readFileSync(new URL('../../examples/ssh_config', import.meta.url), 'utf8'));
});

test('--account: a file and an Include of its own, the other account untouched, twice changes nothing, --remove undoes it', async (ctx) => {
  writeFileSync(ctx.config, 'Host github.com\n    User git\n', { mode: 0o600 });
  assert.is((await setup(ctx, '--user', 'svc_test', '--hosts', 'clariden')).exitCode, 0);
  const saConf = join(ctx.home.dir, '.ssh', 'cscs-sa.conf');
  const projConf = join(ctx.home.dir, '.ssh', 'cscs-sa-proj.conf');
  const saText = readFileSync(saConf, 'utf8');

  const r = await setup(ctx, '--account', 'proj', '--user', 'svc_proj', '--hosts', 'proj-clariden,daint', '--env', 'tds', '--agent');
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(readFileSync(saConf, 'utf8'), saText, 'the default account\'s file is untouched');
  const conf = readFileSync(projConf, 'utf8');
  assert.equal([...conf.matchAll(/^Host (\S+)$/gm)].map((m) => m[1]), ['proj-ela', 'proj-clariden', 'proj-daint', 'proj-*']);
  assert.match(conf, /^Match originalhost proj-\* exec ".* match --account proj --env tds %n"$/m);
  assert.match(conf, /^ {4}ProxyCommand .* proxy --agent --account proj %h %p$/m);
  assert.match(readFileSync(ctx.config, 'utf8'), new RegExp(`^# BEGIN cscs-sa .*\nInclude ${saConf}\nInclude ${projConf}\n# END cscs-sa\n\nHost github.com\n`));

  const proj = await resolve(ctx.config, 'proj-clariden', ctx.env);
  assert.equal(proj.user, ['svc_proj']);
  assert.equal(proj.proxyjump, ['proj-ela']);
  assert.equal(proj.identityfile, [join(ctx.home.dir, '.ssh', 'cscs-key-proj')]);
  assert.ok(statSync(join(ctx.home.dir, '.ssh', 'cscs-key-proj')).isFile(), 'its own key pair');
  await assertCscsHosts(ctx);

  const again = await setup(ctx, '--account', 'proj', '--user', 'svc_proj', '--hosts', 'proj-clariden,daint', '--env', 'tds', '--agent');
  assert.is(again.stdout, 'cscs-sa: nothing to change\n');

  const dry = await setup(ctx, '--account', 'proj', '--remove', '--dry-run');
  assert.match(dry.stdout, new RegExp(`^-Include ${projConf}$`, 'm'));
  assert.match(dry.stdout, new RegExp(`^rm ${projConf}$`, 'm'));
  assert.ok(existsSync(projConf), '--dry-run removes nothing');
  const removed = await setup(ctx, '--account', 'proj', '--remove');
  assert.is(removed.exitCode, 0, removed.stderr);
  assert.not.ok(existsSync(projConf));
  assert.ok(existsSync(join(ctx.home.dir, '.ssh', 'cscs-key-proj')), 'the key pair stays');
  assert.match(readFileSync(ctx.config, 'utf8'), new RegExp(`^# BEGIN cscs-sa .*\nInclude ${saConf}\n# END cscs-sa\n\nHost github.com\n`));
  await assertCscsHosts(ctx);
  assert.is(readFileSync(saConf, 'utf8'), saText);

  // The last account out takes the marked block with it.
  assert.is((await setup(ctx, '--remove')).exitCode, 0);
  assert.is(readFileSync(ctx.config, 'utf8'), 'Host github.com\n    User git\n');
});

test('--host with upper case: the lower-case name ssh looks host keys up by (and known-hosts prints) can be pinned', async (ctx) => {
  const key = readFileSync(gw.caPublicKey, 'utf8').trim().split(' ').slice(0, 2).join(' ');
  const r = await cscsSa(['setup', '--ssh-config', ctx.config, '--user', 'svc_test', '--host', 'clariden=Own.Example:2222'], { ...ctx.env, CSCS_SA_KNOWN_HOSTS: `[own.example]:2222 ${key}\n` });
  assert.is(r.exitCode, 0, r.stderr);
  assert.equal((await resolve(ctx.config, 'sa-clariden', ctx.env)).hostname, ['own.example']);
  assert.is(readFileSync(join(ctx.home.dir, '.ssh', 'cscs-sa.known_hosts'), 'utf8'), `[own.example]:2222 ${key}\n`);
});

test('pinning for one account keeps the host keys pinned for another; a host pinned again has only its new key', async (ctx) => {
  const knownHosts = join(ctx.home.dir, '.ssh', 'cscs-sa.known_hosts');
  const hostKey = async (name: string) => {
    const file = join(ctx.home.dir, name);
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file]);
    return readFileSync(`${file}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');
  };
  const [own, ela, elaNew] = [await hostKey('own'), await hostKey('ela'), await hostKey('ela-new')];
  const pin = (text: string, ...args: string[]) => cscsSa(['setup', '--ssh-config', ctx.config, ...args], { ...ctx.env, CSCS_SA_KNOWN_HOSTS: text });
  // Host names in known_hosts match without regard to case, as in ssh.
  assert.is((await pin(`[own.example]:2222 ${own}\nEla.cscs.ch ${ela}\n`, '--user', 'svc_test', '--host', 'clariden=own.example:2222')).exitCode, 0);
  const r = await pin(`ela.cscs.ch ${elaNew}\n`, '--account', 'proj', '--user', 'svc_proj');
  assert.is(r.exitCode, 0, r.stderr);
  const lines = readFileSync(knownHosts, 'utf8').split('\n').filter(Boolean);
  assert.ok(lines.includes(`[own.example]:2222 ${own}`), `the default account's own host is still pinned: ${lines.join(' | ')}`);
  assert.ok(lines.includes(`ela.cscs.ch ${elaNew}`), 'the new key is pinned');
  assert.not.ok(lines.includes(`Ela.cscs.ch ${ela}`), 'the key pinned again is replaced, not kept beside the new one');
});

test('hosts of the user\'s own config that the block\'s defaults would catch are named in one note', async (ctx) => {
  writeFileSync(ctx.config, 'Host git-server other\n    HostName example.org\nHost git-* !git-x\n    User me\nHost git-clariden\n    Port 2222\n', { mode: 0o600 });
  const r = await setup(ctx, '--account', 'git', '--user', 'svc_test', '--hosts', 'clariden');
  assert.is(r.exitCode, 0, r.stderr);
  const notes = r.stderr.split('\n').filter((l) => l.includes('match too'));
  assert.equal(notes, [`cscs-sa: note: ${ctx.config} names git-server, which the git-* defaults of this block match too and come first (User, IdentityFile, ...): rename those hosts, or use another account name`]);
  // What the note warns of, as ssh resolves it: the account's login name for the user's own host.
  assert.equal((await resolve(ctx.config, 'git-server', ctx.env)).user, ['svc_test']);
});

test('setup --remove with flags that shape a block: exit 2, one line, nothing changed', async (ctx) => {
  assert.is((await setup(ctx, '--account', 'proj', '--user', 'svc_test', '--hosts', 'clariden')).exitCode, 0);
  const before = readFileSync(ctx.config, 'utf8');
  const r = await setup(ctx, '--account', 'proj', '--remove', '--hosts', 'clariden', '--multiplex');
  assert.is(r.exitCode, 2);
  assert.is(r.stderr, 'cscs-sa: setup --remove takes no --hosts, --multiplex: it takes --account, --ssh-config and --dry-run\n');
  assert.is(readFileSync(ctx.config, 'utf8'), before);
});

test.run();
