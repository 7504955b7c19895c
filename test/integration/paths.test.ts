/**
 * Paths and files as cscs-sa judges them: relative paths (which ssh would resolve against whatever
 * folder it runs in) and `~NAME/` refused; key pairs of accounts compared by what they are, not
 * how they are spelled; every file read capped in size and checked in type; the lock and the
 * failure memo used only when they are ours, and a memo's text printed without control
 * characters. Each refusal: the exit code, the one line, and nothing changed or sent.
 */
import * as assert from 'uvu/assert';
import { execa } from 'execa';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, scryptSync } from 'node:crypto';
import { gatewaySuite, skipTest, worldSuite } from '../helpers/suites.ts';
import { cscsSa, type Home, writeConfig } from '../helpers/cli.ts';
import { ATTACKER_UID } from '../helpers/victim.ts';
import { certificateInPlace, withKeyPair } from '../helpers/prepared.ts';

const API_KEY = 'sa-paths-key-0123456789';
const { gw, test } = gatewaySuite('paths', API_KEY);
const isRoot = process.getuid?.() === 0;
const RELATIVE_FIX = 'is a relative path, which would name another file in each folder ssh runs in: make it absolute (or start it with ~/)';

/** A folder to run in, as ssh runs match in whatever folder the user is in; empty. */
function workFolder(): string {
  return mkdtempSync(join(tmpdir(), 'cscs-sa-cwd-'));
}

test('a relative key, CSCS_SA_KEY, -f or apiKeyFile: exit 3, one line with the fix, nothing made where it runs', async ({ home, env }) => {
  const cases: [string, string[], Record<string, string>, string | undefined, string][] = [
    ['CSCS_SA_KEY', ['match'], { CSCS_SA_KEY: 'keys/sa' }, undefined, `CSCS_SA_KEY=keys/sa ${RELATIVE_FIX}`],
    ['-f', ['match', '-f', 'keys/sa'], {}, undefined, `-f keys/sa ${RELATIVE_FIX}`],
    ['"key"', ['match'], {}, JSON.stringify({ key: 'keys/sa' }), `config file CONFIG: "key" keys/sa ${RELATIVE_FIX}`],
    ['"apiKeyFile"', ['match'], { CSCS_API_KEY: '' }, JSON.stringify({ apiKeyFile: 'secrets/api-key' }), `config file CONFIG: "apiKeyFile" secrets/api-key ${RELATIVE_FIX}`],
    ['accounts.proj "key"', ['match', '--account', 'proj'], {}, JSON.stringify({ accounts: { proj: { key: 'keys/proj' } } }), `config file CONFIG: "key" keys/proj ${RELATIVE_FIX}`],
  ];
  for (const [name, args, extra, config, line] of cases) {
    rmSync(join(home.dir, '.config'), { recursive: true, force: true });
    const file = config === undefined ? '' : writeConfig(home, 'config.json', config);
    const cwd = workFolder();
    try {
      const r = await cscsSa(args, { ...env, ...extra }, { cwd });
      assert.is(r.exitCode, 3, `${name}: ${r.stderr}`);
      // accounts.proj's own settings are named as such.
      const expected = line.replace('CONFIG', name.startsWith('accounts') ? `${file} (accounts.proj)` : file);
      assert.is(r.stderr, `cscs-sa: ${expected}\n`, name);
      assert.equal(readdirSync(cwd), [], `${name}: nothing made in the folder it ran in`);
      assert.not.ok(existsSync(join(home.dir, '.ssh')), `${name}: no key pair made`);
      assert.is(gw.requests.length, 0, name);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  }
});

test('"key": "~nobody/...": exit 3, one line; no folder named ~nobody made', async ({ home, env }) => {
  const file = writeConfig(home, 'config.json', JSON.stringify({ key: '~nobody/.ssh/cscs-key-sa' }));
  const cwd = workFolder();
  try {
    const r = await cscsSa(['match'], env, { cwd });
    assert.is(r.exitCode, 3, r.stderr);
    assert.is(r.stderr, `cscs-sa: config file ${file}: "key" ~nobody/.ssh/cscs-key-sa names the home folder of user nobody, which cscs-sa does not look up: write the absolute path (~/ is your own home folder)\n`);
    assert.equal(readdirSync(cwd), []);
    assert.is(gw.requests.length, 0);
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
});

/** The default account's key pair and certificate in place (as a refresh leaves them), and a check that they stay so. */
async function signedDefault(home: Home): Promise<() => string[]> {
  await certificateInPlace(home, gw);
  const key = home.key;
  const read = () => [key, `${key}.pub`, `${key}-cert.pub`].map((p) => readFileSync(p, 'utf8'));
  const before = read();
  return () => {
    assert.equal(read(), before, 'the default account\'s key pair and certificate are unchanged');
    return before;
  };
}

/** Runs match for ACCOUNT with CONFIG and asserts the refusal: ACCOUNT would use KEY, OWNER's pair; nothing sent. */
async function refusedShare(home: Home, env: Record<string, string>, config: object, account: string, key: string, owner: string): Promise<void> {
  rmSync(join(home.dir, '.config'), { recursive: true, force: true });
  writeConfig(home, 'config.json', JSON.stringify(config));
  const r = await cscsSa(['match', '--account', account], { ...env, [`CSCS_API_KEY_${account.toUpperCase()}`]: `${account}-key` });
  assert.is(r.exitCode, 3, r.stderr);
  assert.is(r.stderr, `cscs-sa: account ${account} would use ${key}, the key pair of account ${owner}: give each account a key pair of its own ("key" in the config file, --key)\n`);
  assert.is(gw.requests.length, 0);
}

test('another account\'s key pair through a symlinked folder: exit 3, its files unchanged', async ({ home, env }) => {
  const unchanged = await signedDefault(home);
  symlinkSync(join(home.dir, '.ssh'), join(home.dir, 'keys'));
  await refusedShare(home, env, { accounts: { proj: { key: '~/keys/cscs-key-sa' } } }, 'proj', join(home.dir, 'keys', 'cscs-key-sa'), 'sa');
  unchanged();
});

test('CSCS_SA_KEY naming the key pair of an account used without a config file (its API key variable set, as on CI): exit 3', async ({ home, env }) => {
  const proj = join(home.dir, '.ssh', 'cscs-key-proj');
  const r = await cscsSa(['match'], { ...env, CSCS_SA_KEY: proj, CSCS_API_KEY_PROJ: 'proj-key' });
  assert.is(r.exitCode, 3, r.stderr);
  assert.is(r.stderr, `cscs-sa: account sa would use ${proj}, the key pair of account proj: give each account a key pair of its own ("key" in the config file, --key)\n`);
  assert.not.ok(existsSync(join(home.dir, '.ssh')), 'no key pair made');
  assert.is(gw.requests.length, 0);
});

test('a key path ending in another account\'s -cert (its .pub would be that certificate): exit 3', async ({ home, env }) => {
  const unchanged = await signedDefault(home);
  await refusedShare(home, env, { accounts: { proj: { key: '~/.ssh/cscs-key-sa-cert' } } }, 'proj', `${home.key}-cert`, 'sa');
  // The same between two accounts of the config file, in a folder of neither's default.
  await refusedShare(home, env, { accounts: { aa: { key: '~/k/aa' }, bb: { key: '~/k/aa-cert' } } }, 'bb', join(home.dir, 'k', 'aa-cert'), 'aa');
  unchanged();
});

test('a 300 MiB config file: refused at once with one line, exit 3, for every ssh (the fast path too)', async ({ home, env }) => {
  const file = writeConfig(home, 'config.json', '{}');
  truncateSync(file, 300 * 1024 * 1024); // sparse: costs no disk
  for (const command of ['match', 'status']) {
    const r = await cscsSa([command], env);
    assert.is(r.exitCode, 3, r.stderr);
    assert.is(r.stderr, `cscs-sa: config file ${file} is 314572800 bytes, more than such a file holds (262144), so nothing in it is used: check that ${file} is the right file\n`);
  }
  assert.is(gw.requests.length, 0);
});

test('setup --known-hosts /dev/zero (or a FIFO): one line, exit 2, at once; the ssh config untouched', async ({ home, env }) => {
  const fifo = join(home.dir, 'fifo');
  await execa('mkfifo', [fifo]);
  const sshConfig = join(home.dir, '.ssh', 'config');
  for (const source of ['/dev/zero', fifo]) {
    // Were it read, /dev/zero never ends and a FIFO without a writer never answers: the timeout fails the test.
    const r = await cscsSa(['setup', '--user', 'svc', '--known-hosts', source, '--ssh-config', sshConfig], env, { timeout: 60_000 });
    assert.is(r.exitCode, 2, r.stderr);
    assert.is(r.stderr, `cscs-sa: setup: --known-hosts ${source} is not a regular file: pass a file of host key lines, or - for stdin\n`);
    assert.not.ok(existsSync(sshConfig), 'no ssh config written');
  }
});

test('a certificate path that is a FIFO does not block match: it is replaced by a fresh certificate', async ({ home, env }) => {
  withKeyPair(home);
  await execa('mkfifo', [home.cert]);
  const r = await cscsSa(['match'], env, { timeout: 60_000 });
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(readFileSync(home.cert, 'utf8'), /^ssh-ed25519-cert-v01@openssh\.com /);
});

if (isRoot) {
  test('a lock file of another user: exit 7, one line, no refresh, the lock left as it was', async ({ home, env }) => {
    mkdirSync(join(home.dir, '.ssh'), { mode: 0o700 });
    // pid 1 is alive: as a lock of ours it would hold every refresh off until the deadline.
    const text = `1\n${hostname()}\nnonce\n`;
    writeFileSync(home.lock, text, { mode: 0o600 });
    chownSync(home.lock, ATTACKER_UID, ATTACKER_UID);
    const r = await cscsSa(['match'], env);
    assert.is(r.exitCode, 7, r.stderr);
    assert.is(r.stderr, `cscs-sa: lock ${home.lock} belongs to another user (uid ${ATTACKER_UID}), which cscs-sa never creates: remove it (rm ${home.lock})\n`);
    assert.is(gw.requests.length, 0);
    assert.is(readFileSync(home.lock, 'utf8'), text);
    assert.not.ok(existsSync(home.cert));
  });
} else {
  skipTest('a lock file of another user', 'needs root to give the file to another user');
}

/** A failure memo for the default account with API key API_KEY, as a refresh writes it. */
function memoText(message: string): string {
  const salt = randomBytes(16);
  const material = `${gw.url}\nenv\nCSCS_API_KEY\n${API_KEY}`;
  const hash = scryptSync(material, salt, 32, { N: 4096 });
  return JSON.stringify({ salt: salt.toString('hex'), hash: hash.toString('hex'), at: Date.now(), short: false, shownTo: [], code: 'CSCS_SA_ERR_GATEWAY_UNAVAILABLE', message, fix: 'try later' });
}

test('a failure memo: its text printed without control characters', async ({ home, env }) => {
  mkdirSync(join(home.dir, '.ssh'), { mode: 0o700 });
  writeFileSync(`${home.key}.failed`, memoText('gateway down\x1b[2J\x1b]0;owned\x07'), { mode: 0o600 });
  const r = await cscsSa(['match'], env);
  assert.is(r.exitCode, 5, r.stderr);
  assert.is(r.stderr, 'cscs-sa: gateway down\\x1b[2J\\x1b]0;owned\\x07: try later\n');
  assert.is(gw.requests.length, 0, 'the memo was used: it is ours');
});

if (isRoot) {
  test('a failure memo of another user is ignored: the refresh goes ahead', async ({ home, env }) => {
    withKeyPair(home);
    const memo = `${home.key}.failed`;
    writeFileSync(memo, memoText('the gateway is down, says someone else'), { mode: 0o600 });
    chownSync(memo, ATTACKER_UID, ATTACKER_UID);
    const r = await cscsSa(['match'], env);
    assert.is(r.exitCode, 0, r.stderr);
    assert.is(r.stderr, '');
    assert.is(gw.signCalls, 1);
  });
} else {
  skipTest('a failure memo of another user', 'needs root to give the file to another user');
}

test.run();

/** Through real ssh: ssh runs match in the folder it was started in. */
const { world, test: sshTest } = worldSuite('paths through ssh');

sshTest('ssh with a relative CSCS_SA_KEY: the one line, no key pair made in the folder ssh ran in', async () => {
  world.freshHome({ env: { CSCS_SA_KEY: 'keys/sa' } });
  const cwd = workFolder();
  try {
    const r = await world.tool('ssh', ['sa-ela', 'true'], { cwd });
    assert.is(r.exitCode, 255);
    assert.match(r.stderr, `cscs-sa: CSCS_SA_KEY=keys/sa ${RELATIVE_FIX}\n`);
    assert.equal(readdirSync(cwd), []);
    assert.is(world.gateway.signCalls, 0);
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
});

sshTest.run();
