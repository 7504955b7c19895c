/**
 * setup remembers what it was given, and every command reads the same choices: a re-run without
 * flags changes nothing, a flag changes one thing and setup says which, typos are refused,
 * status and doctor name the key setup was given, and --purge undoes all of it.
 */
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cscsSa, keyFiles } from '../helpers/cli.ts';
import { certificateInPlace } from '../helpers/prepared.ts';
import { gatewaySuite, type HomeContext } from '../helpers/suites.ts';

const API_KEY = 'sa-choices-key-0123456789';
const KEY_PROJ = 'proj-choices-key-9876543210';
interface Ctx extends HomeContext {
  config: string;
  ssh: string;
}
const { gw, test } = gatewaySuite<Ctx>('setup choices', API_KEY, { principals: ['svc_from_cert'], accounts: { [KEY_PROJ]: ['svc_proj'] } });

test.before.each((ctx) => {
  ctx.env.CSCS_SA_TIMEOUT = '10';
  ctx.ssh = join(ctx.home.dir, '.ssh');
  mkdirSync(ctx.ssh, { mode: 0o700 });
  ctx.config = join(ctx.ssh, 'config');
  writeFileSync(ctx.config, 'Host github.com\n    User git\n', { mode: 0o600 });
});

const setup = (ctx: Ctx, args: string[], options = {}, env = ctx.env) => cscsSa(['setup', '--ssh-config', ctx.config, ...args], env, options);
const conf = (ctx: Ctx, account = 'sa') => readFileSync(join(ctx.ssh, account === 'sa' ? 'cscs-sa.conf' : `cscs-sa-${account}.conf`), 'utf8');
const hostsOf = (text: string) => [...text.matchAll(/^Host (\S+)$/gm)].map((m) => m[1]);
/** Every file under HOME with its bytes, to show that nothing changed. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out[p] = readFileSync(p, 'base64');
    }
  };
  walk(dir);
  return out;
}
/** A host key line as known-hosts prints it, for NAME, with a fresh key. */
function hostKeyLine(ctx: Ctx, name: string): string {
  const file = join(ctx.home.dir, `hostkey-${Math.random().toString(36).slice(2)}`);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file]);
  return `${name} ${readFileSync(`${file}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ')}`;
}
const fingerprintOf = (line: string) => execFileSync('ssh-keygen', ['-l', '-f', '-'], { input: line }).toString().split(' ')[1]!;

test('a re-run without flags keeps hosts, burst mode, user, key and where hosts lead: nothing to change, every file as it was', async (ctx) => {
  const first = await setup(ctx, ['--user', 'svc_test', '--hosts', 'clariden', '--multiplex', '--key', '~/keys/mykey', '--host', 'clariden=127.0.0.1:2222']);
  assert.is(first.exitCode, 0, first.stderr);
  const before = snapshot(ctx.home.dir);
  const again = await setup(ctx, []);
  assert.is(again.exitCode, 0, again.stderr);
  assert.is(again.stdout, 'cscs-sa: nothing to change\n');
  assert.equal(snapshot(ctx.home.dir), before);
  assert.equal(hostsOf(conf(ctx)), ['sa-ela', 'sa-clariden', 'sa-*']);
  assert.match(conf(ctx), /^ {4}ControlMaster auto$/m);
  assert.match(conf(ctx), /^ {4}User svc_test$/m);
  assert.match(conf(ctx), new RegExp(`^ {4}IdentityFile ${join(ctx.home.dir, 'keys', 'mykey')}$`, 'm'));
  assert.match(conf(ctx), /^Host sa-clariden\n {4}HostName 127\.0\.0\.1\n {4}Port 2222$/m);
  assert.is(gw.signCalls, 0, 'the login name came from the first run, not from a certificate');
});

test('a flag changes one choice and setup says which; --no-multiplex turns burst mode off', async (ctx) => {
  assert.is((await setup(ctx, ['--user', 'svc_test', '--hosts', 'clariden', '--multiplex'])).exitCode, 0);
  const more = await setup(ctx, ['--hosts', 'clariden,daint']);
  assert.is(more.exitCode, 0, more.stderr);
  assert.is(more.stdout, `wrote ${join(ctx.ssh, 'cscs-sa.conf')} (hosts clariden -> clariden,daint)\n`);
  assert.equal(hostsOf(conf(ctx)), ['sa-ela', 'sa-clariden', 'sa-daint', 'sa-*']);
  assert.match(conf(ctx), /^ {4}ControlMaster auto$/m, 'burst mode kept');
  const off = await setup(ctx, ['--no-multiplex']);
  assert.is(off.stdout, `wrote ${join(ctx.ssh, 'cscs-sa.conf')} (burst mode on -> off)\n`);
  assert.not.match(conf(ctx), /ControlMaster/);
  assert.equal(hostsOf(conf(ctx)), ['sa-ela', 'sa-clariden', 'sa-daint', 'sa-*']);
});

test('--hosts: CSCS names in any case or NAME=HOST[:PORT]; a typo, no name at all or a misspelt flag is refused with exit 2 and nothing changes', async (ctx) => {
  assert.is((await setup(ctx, ['--user', 'svc_test', '--hosts', 'clariden'])).exitCode, 0);
  const before = snapshot(ctx.home.dir);
  // A typo, an empty argument and a misspelt flag, end to end: every other refusal of --hosts
  // takes the same way out, and test/unit/sshconfig.test.ts has each one's exact line.
  const cases: [string[], string][] = [
    [['--hosts', 'claridan'], 'cscs-sa: setup: --hosts: "claridan" is not a CSCS cluster (clariden, daint, santis, eiger, bristen): did you mean "clariden"? (a cluster of another name: NAME=HOSTNAME[:PORT])\n'],
    [['--hosts', ''], 'cscs-sa: setup: --hosts "" names no cluster: name at least one: clariden, daint, santis, eiger, bristen\n'],
    [['--hots', 'daint'], 'cscs-sa: setup: Unknown option \'--hots\': did you mean "--host" or "--hosts"? (see cscs-sa setup --help)\n'],
  ];
  for (const [args, line] of cases) {
    const r = await setup(ctx, args);
    assert.is(r.stderr, line, args.join(' '));
    assert.is(r.exitCode, 2, args.join(' '));
    assert.is(r.stdout, '');
    assert.equal(snapshot(ctx.home.dir), before, `${args.join(' ')} changed nothing`);
  }
  const ok = await setup(ctx, ['--hosts', 'Clariden,SA-Daint,lab=Lab.Example.org:2200']);
  assert.is(ok.exitCode, 0, ok.stderr);
  assert.equal(hostsOf(conf(ctx)), ['sa-ela', 'sa-clariden', 'sa-daint', 'sa-lab', 'sa-*']);
  assert.match(conf(ctx), /^Host sa-lab\n {4}HostName lab\.example\.org\n {4}Port 2200\n {4}ProxyJump sa-ela$/m);
});

test('status and doctor name the key setup was given, which setup records in the config file', async (ctx) => {
  const r = await setup(ctx, ['--user', 'svc_test', '--hosts', 'clariden', '--key', '~/keys/mykey']);
  assert.is(r.exitCode, 0, r.stderr);
  const key = join(ctx.home.dir, 'keys', 'mykey');
  const configFile = join(ctx.home.dir, '.config', 'cscs-sa', 'config.json');
  assert.match(r.stdout, `recorded key ${key} in ${configFile}\n`);
  assert.equal(JSON.parse(readFileSync(configFile, 'utf8')), { key });
  assert.is(statSync(configFile).mode & 0o777, 0o600);
  const status = await cscsSa(['status', '--json'], ctx.env);
  assert.equal(JSON.parse(status.stdout).map((a: { key: string; keyExists: boolean }) => [a.key, a.keyExists]), [[key, true]]);
  const doctor = await cscsSa(['doctor', '--ssh-config', ctx.config], ctx.env);
  assert.match(doctor.stdout, `✔ key pair ${key} (0600)\n`);
  const sign = await cscsSa(['sign'], ctx.env);
  assert.is(sign.exitCode, 0, sign.stderr);
  assert.match(sign.stdout, new RegExp(`^${key}-cert\\.pub principals=svc_from_cert `));
});

test('status --json is an array, one object per account, with one account and with two; exit 1 while a certificate is not fresh', async (ctx) => {
  const one = await cscsSa(['status', '--json'], ctx.env);
  assert.is(one.exitCode, 1, one.stderr);
  const [sa, ...rest] = JSON.parse(one.stdout);
  assert.equal(rest, []);
  assert.is(sa.account, 'sa');
  assert.is(sa.status, 'missing');
  // Each account's first refresh, as it leaves its key pair and certificate: status only reads them.
  await certificateInPlace(ctx.home, gw);
  const proj = join(ctx.ssh, 'cscs-key-proj');
  await certificateInPlace(keyFiles(proj), gw, { pair: 1, principals: ['svc_proj'] });
  const two = await cscsSa(['status', '--json'], ctx.env);
  assert.is(two.exitCode, 0, two.stderr);
  const accounts = JSON.parse(two.stdout);
  assert.equal(accounts.map((a: { account: string; status: string }) => [a.account, a.status]), [['sa', 'fresh'], ['proj', 'fresh']]);
  assert.equal(Object.keys(accounts[0]), Object.keys(accounts[1]), 'one shape');
  assert.equal(Object.keys(accounts[0]), Object.keys(sa), 'the same shape as with one account');
});

test('--dry-run shows only the lines that change, with context, and changes nothing', async (ctx) => {
  assert.is((await setup(ctx, ['--user', 'svc_test', '--hosts', 'clariden'])).exitCode, 0);
  const before = snapshot(ctx.home.dir);
  const r = await setup(ctx, ['--user', 'svc_other', '--dry-run']);
  assert.is(r.exitCode, 0, r.stderr);
  const file = join(ctx.ssh, 'cscs-sa.conf');
  const removed = r.stdout.split('\n').filter((l) => /^-[^-]/.test(l));
  const added = r.stdout.split('\n').filter((l) => /^\+[^+]/.test(l));
  assert.ok(r.stdout.startsWith(`--- ${file}\n+++ ${file}\n@@ -`), r.stdout);
  assert.is(removed.length, 2, r.stdout);
  assert.is(added.length, 2, r.stdout);
  assert.match(removed.join('\n'), /^- {4}User svc_test$/m);
  assert.match(added.join('\n'), /^\+ {4}User svc_other$/m);
  assert.ok(r.stdout.split('\n').length < 25, 'not the whole file');
  assert.equal(snapshot(ctx.home.dir), before);
});

test('--api-key-file - stores a pasted key 0600 beside the config file and names it there; nothing echoes it; ssh\'s refresh then needs no variable', async (ctx) => {
  const env = { ...ctx.env, CSCS_API_KEY: '' };
  const r = await setup(ctx, ['--user', 'svc_test', '--hosts', 'clariden', '--api-key-file', '-'], { input: `${API_KEY}\n`, stdin: undefined }, env);
  assert.is(r.exitCode, 0, r.stderr);
  const dir = join(ctx.home.dir, '.config', 'cscs-sa');
  assert.match(r.stdout, `stored the API key in ${join(dir, 'api-key')} (0600)\nnamed it as apiKeyFile in ${join(dir, 'config.json')}\n`);
  assert.not.match(r.stdout + r.stderr, API_KEY);
  assert.is(readFileSync(join(dir, 'api-key'), 'utf8'), `${API_KEY}\n`);
  for (const file of ['api-key', 'config.json']) assert.is(statSync(join(dir, file)).mode & 0o777, 0o600, file);
  assert.equal(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), { apiKeyFile: join(dir, 'api-key') });
  const sign = await cscsSa(['sign'], env);
  assert.is(sign.exitCode, 0, sign.stderr);
  assert.is(gw.signCallsFor(API_KEY), 1);
  // Another account's key goes into a file and a setting of its own.
  const proj = await setup(ctx, ['--account', 'proj', '--user', 'svc_proj', '--hosts', 'clariden', '--api-key-file', '-'], { input: KEY_PROJ, stdin: undefined }, env);
  assert.is(proj.exitCode, 0, proj.stderr);
  assert.equal(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), { apiKeyFile: join(dir, 'api-key'), accounts: { proj: { apiKeyFile: join(dir, 'api-key-proj') } } });
  // Garbage is refused before anything is stored.
  const bad = await setup(ctx, ['--account', 'other', '--user', 'x', '--api-key-file', '-'], { input: 'two words\n', stdin: undefined }, env);
  assert.is(bad.exitCode, 4, bad.stderr);
  assert.not.ok(existsSync(join(dir, 'api-key-other')));
});

test('setup --purge deletes the API key file setup stored from a paste and its setting; a key file the user named stays', async (ctx) => {
  const env = { ...ctx.env, CSCS_API_KEY: '' };
  const dir = join(ctx.home.dir, '.config', 'cscs-sa');
  assert.is((await setup(ctx, ['--user', 'svc_test', '--hosts', 'clariden', '--api-key-file', '-'], { input: `${API_KEY}\n`, stdin: undefined }, env)).exitCode, 0);
  const own = join(ctx.home.dir, 'proj-key');
  writeFileSync(own, `${KEY_PROJ}\n`, { mode: 0o600 });
  assert.is((await setup(ctx, ['--account', 'proj', '--user', 'svc_proj', '--hosts', 'clariden', '--api-key-file', own], {}, env)).exitCode, 0);
  const r = await setup(ctx, ['--purge'], {}, env);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, `removed ${join(dir, 'api-key')}\n`);
  assert.match(r.stdout, `took apiKeyFile out of ${join(dir, 'config.json')}\n`);
  assert.not.ok(existsSync(join(dir, 'api-key')));
  assert.equal(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), { accounts: { proj: { apiKeyFile: own } } });
  assert.is((await setup(ctx, ['--account', 'proj', '--purge'], {}, env)).exitCode, 0);
  assert.is(readFileSync(own, 'utf8'), `${KEY_PROJ}\n`, 'the file the user named is theirs');
});

test('re-pinning a host key that changed names the host with the old and the new fingerprint', async (ctx) => {
  const old = hostKeyLine(ctx, 'clariden.alps.cscs.ch');
  const ela = hostKeyLine(ctx, 'ela.cscs.ch');
  assert.is((await setup(ctx, ['--user', 'svc_test', '--hosts', 'clariden'], {}, { ...ctx.env, CSCS_SA_KNOWN_HOSTS: `${ela}\n${old}\n` })).exitCode, 0);
  const now = hostKeyLine(ctx, 'clariden.alps.cscs.ch');
  const r = await setup(ctx, [], {}, { ...ctx.env, CSCS_SA_KNOWN_HOSTS: `${ela}\n${now}\n` });
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(r.stdout, `pinned 2 host key(s) in ${join(ctx.ssh, 'cscs-sa.known_hosts')}\nhost key of clariden.alps.cscs.ch changed: ${fingerprintOf(old)} -> ${fingerprintOf(now)}\n`);
  assert.is(readFileSync(join(ctx.ssh, 'cscs-sa.known_hosts'), 'utf8'), `${ela}\n${now}\n`);
});

test('setup --purge removes the block, its Include, key pair, certificate and the host keys only it pinned; another account keeps its own', async (ctx) => {
  const ela = hostKeyLine(ctx, 'ela.cscs.ch');
  const clariden = hostKeyLine(ctx, 'clariden.alps.cscs.ch');
  const daint = hostKeyLine(ctx, 'daint.alps.cscs.ch');
  const pins = `${ela}\n${clariden}\n${daint}\n`;
  const env = { ...ctx.env, CSCS_API_KEY_PROJ: KEY_PROJ, CSCS_SA_KNOWN_HOSTS: pins };
  assert.is((await setup(ctx, ['--hosts', 'clariden', '--multiplex'], {}, env)).exitCode, 0);
  assert.is((await setup(ctx, ['--account', 'proj', '--hosts', 'clariden,daint', '--multiplex'], {}, env)).exitCode, 0);
  const projKey = join(ctx.ssh, 'cscs-key-proj');
  assert.ok(existsSync(`${projKey}-cert.pub`), 'setup learnt the login name from a certificate');
  const r = await setup(ctx, ['--account', 'proj', '--purge'], {}, env);
  assert.is(r.exitCode, 0, r.stderr);
  for (const file of ['cscs-sa-proj.conf', 'cscs-key-proj', 'cscs-key-proj.pub', 'cscs-key-proj-cert.pub']) assert.not.ok(existsSync(join(ctx.ssh, file)), file);
  assert.not.match(readFileSync(ctx.config, 'utf8'), /cscs-sa-proj/);
  // ela and clariden are sa's hosts too; daint was only proj's.
  assert.is(readFileSync(join(ctx.ssh, 'cscs-sa.known_hosts'), 'utf8'), `${ela}\n${clariden}\n`);
  assert.ok(existsSync(join(ctx.ssh, 'cscs-sa-cm')), 'sa still uses the sockets folder');
  assert.ok(existsSync(ctx.home.key) && existsSync(join(ctx.ssh, 'cscs-sa.conf')), 'sa untouched');
  const last = await setup(ctx, ['--purge'], {}, env);
  assert.is(last.exitCode, 0, last.stderr);
  assert.equal(readdirSync(ctx.ssh).sort(), ['config', 'config.cscs-sa.bak']);
  assert.is(readFileSync(ctx.config, 'utf8'), 'Host github.com\n    User git\n');
});

test('doctor asks the gateway whether it takes the API key: a rejected key fails at that check, not later', async (ctx) => {
  const r = await cscsSa(['doctor', '--ssh-config', ctx.config], { ...ctx.env, CSCS_API_KEY: 'sa-wrong-key-0000000000' });
  assert.is(r.exitCode, 1);
  assert.match(r.stdout, /^✘ API key rejected \(401\).*\n  → check CSCS_API_KEY\n/m);
  assert.is(gw.signCalls, 0, 'a token request only: nothing signed');
  const good = await cscsSa(['doctor', '--ssh-config', ctx.config], ctx.env);
  assert.match(good.stdout, /^✔ API key from CSCS_API_KEY: the gateway takes it$/m);
});

test.run();
