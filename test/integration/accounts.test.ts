/**
 * Two service accounts side by side, through real ssh: the default account `sa` and `proj`,
 * each with its own API key, key pair, login name and ssh_config file written by
 * `cscs-sa setup --account`. The gateway double signs each API key's certificates for its own
 * login name; the loopback sshd has two local users, so a certificate of the wrong account
 * cannot log in.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { execa } from 'execa';
import { GatewayDouble } from '../helpers/gateway-double.ts';
import { Sshd } from '../helpers/sshd.ts';
import { BIN, cscsSa, type Home, keyFiles, type Snapshot, snapshot, tempHome, userEnv, writeConfig } from '../helpers/cli.ts';
import { SECOND_USER, secondUser } from '../helpers/users.ts';
import { skipTest } from '../helpers/suites.ts';
import { certificateInPlace } from '../helpers/prepared.ts';

const KEY_SA = 'sa-accounts-key-0123456789';
const KEY_PROJ = 'proj-accounts-key-9876543210';
const USER_SA = userInfo().username;
/** The second account's login name: a certificate principal must equal it. */
const USER_PROJ = SECOND_USER;
const NO_KEY_PROJ = 'cscs-sa: no API key for account proj: set CSCS_API_KEY_PROJ, or apiKeyFile or apiKeyCommand under accounts.proj in the config file';

const gw = new GatewayDouble({ apiKey: KEY_SA, principals: [USER_SA], accounts: { [KEY_PROJ]: [USER_PROJ] } });
let ela: Sshd;
let clariden: Sshd;
let home: Home;
let env: Record<string, string>;
const sshConfig = () => join(home.dir, '.ssh', 'config');
const keyOf = (account: string) => join(home.dir, '.ssh', `cscs-key-${account}`);
/**
 * A certificate for ACCOUNT's key pair (the one setup made), for its login name, put in place as
 * a refresh leaves it: for tests that start from one rather than test how it came to be.
 */
const certificateFor = (account: 'sa' | 'proj') =>
  certificateInPlace(keyFiles(keyOf(account)), gw, {
    pair: 'kept',
    principals: [account === 'sa' ? USER_SA : USER_PROJ],
  });

/** The HOME right after setUpHome, put back before each test. */
let pristine: Snapshot | undefined;

const userEnvOf = (home: Home) =>
  userEnv(home, { PATH: `${join(home.dir, 'bin')}:${process.env.PATH}`, CSCS_API_KEY: KEY_SA, CSCS_API_KEY_PROJ: KEY_PROJ, CSCS_AUTHX_URL: gw.url, SHELL: '/bin/sh' });

/**
 * A HOME set up by `cscs-sa setup` for both accounts, with the generated blocks pointed at the
 * loopback sshd (their only edit: addresses, and no host key checks).
 */
async function setUpHome(): Promise<void> {
  home = tempHome();
  const bin = join(home.dir, 'bin');
  mkdirSync(bin);
  symlinkSync(BIN, join(bin, 'cscs-sa'));
  env = userEnvOf(home);
  for (const [account, user] of [['sa', USER_SA], ['proj', USER_PROJ]] as const) {
    const r = await cscsSa(['setup', '--account', account, '--user', user, '--hosts', 'clariden', '--ssh-config', sshConfig()], env);
    assert.is(r.exitCode, 0, r.stderr);
    const conf = join(home.dir, '.ssh', account === 'sa' ? 'cscs-sa.conf' : `cscs-sa-${account}.conf`);
    const text = readFileSync(conf, 'utf8')
      .replace('HostName ela.cscs.ch', `HostName 127.0.0.1\n    Port ${ela.port}`)
      .replace('HostName clariden.alps.cscs.ch', `HostName 127.0.0.1\n    Port ${clariden.port}`)
      .replace(`Host ${account}-*\n`, `Host ${account}-*\n    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n    LogLevel ERROR\n`);
    writeFileSync(conf, text);
  }
}

/**
 * Each test starts from the HOME that setup made, byte for byte and at the same path (the
 * config files name it), with the environment and the double's counts as new: running setup
 * twice for every test cost two Node starts each and proved nothing new.
 */
function restoreHome(): void {
  pristine!.restore();
  env = userEnvOf(home);
  gw.reset();
}

async function ssh(...args: string[]) {
  const r = await execa('ssh', ['-F', sshConfig(), ...args], { env, extendEnv: false, reject: false, stdin: 'ignore' });
  return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

function forgetCertificates(): void {
  for (const account of ['sa', 'proj']) rmSync(`${keyOf(account)}-cert.pub`, { force: true });
  gw.reset();
}

/** The public key a sign request sent, as in KEY.pub. */
const signedKeys = (apiKey: string) =>
  gw.requests.filter((r) => r.path.endsWith('/ssh-keys/sign') && r.apiKey === apiKey).map((r) => JSON.parse(r.body).publicKey as string);
const publicKeyOf = (account: string) => readFileSync(`${keyOf(account)}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');

const test = suite('accounts');
const root = secondUser();

test.before(async () => {
  await gw.start();
  ela = await new Sshd('ela', gw.caPublicKey).start();
  clariden = await new Sshd('clariden', gw.caPublicKey).start();
  await setUpHome();
  pristine = snapshot(home.dir);
});
test.after(async () => {
  await Promise.all([ela?.stop(), clariden?.stop()]);
  await gw.stop();
  home?.remove();
  pristine?.remove();
});
test.before.each(restoreHome);

test('each account\'s hosts log in as its own user, each API key signs only its own key pair', async () => {
  const sa = await ssh('sa-clariden', 'id -un');
  assert.is(sa.exitCode, 0, sa.stderr);
  assert.is(sa.stdout, USER_SA);
  const proj = await ssh('proj-clariden', 'id -un');
  assert.is(proj.exitCode, 0, proj.stderr);
  assert.is(proj.stdout, USER_PROJ);
  assert.is(gw.signCallsFor(KEY_SA), 1);
  assert.is(gw.signCallsFor(KEY_PROJ), 1);
  assert.equal(signedKeys(KEY_SA), [publicKeyOf('sa')]);
  assert.equal(signedKeys(KEY_PROJ), [publicKeyOf('proj')]);
  assert.is.not(publicKeyOf('sa'), publicKeyOf('proj'));
});

test('cold parallel commands on both accounts: all succeed, one refresh per account', async () => {
  forgetCertificates();
  // Three per account race for its lock, the two locks side by side: each cold one is a Node
  // start on the full path and a connection (12 through the jump cost ~20 s of CPU). To the jump
  // host: a jump's Match line runs after its ssh's own, which has the certificate by then, so the
  // jump only doubled the connections; the first test shows the jumps.
  const runs = await Promise.all(
    Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? ['sa', USER_SA] : ['proj', USER_PROJ])).map(async ([account, user]) => ({
      user,
      r: await ssh(`${account}-ela`, 'id -un'),
    })),
  );
  for (const { user, r } of runs) {
    assert.is(r.exitCode, 0, r.stderr);
    assert.is(r.stdout, user);
  }
  assert.is(gw.signCallsFor(KEY_SA), 1);
  assert.is(gw.signCallsFor(KEY_PROJ), 1);
  assert.is(gw.signCalls, 2);
});

// From here on, one hop (the -ela hosts) where the jump adds nothing: the first test shows each
// account's jump host taking its own account's key.
test('without its API key one account breaks, with one line naming its variable; the other keeps working', async () => {
  forgetCertificates();
  delete env.CSCS_API_KEY_PROJ;
  const proj = await ssh('proj-ela', 'true');
  assert.is(proj.exitCode, 255);
  const ours = proj.stderr.split('\n').filter((l) => l.startsWith('cscs-sa:'));
  assert.ok(ours.length >= 1, proj.stderr);
  for (const line of ours) assert.is(line, NO_KEY_PROJ);
  // No fallback: nothing was asked of the gateway for proj, not with the default account's key either.
  assert.is(gw.requests.length, 0);
  assert.not.ok(existsSync(`${keyOf('proj')}-cert.pub`));

  const sa = await ssh('sa-ela', 'id -un');
  assert.is(sa.exitCode, 0, sa.stderr);
  assert.is(sa.stdout, USER_SA);
  assert.equal(signedKeys(KEY_SA), [publicKeyOf('sa')]);

  // The account's own apiKeyFile in the config file brings it back.
  const keyFile = join(home.dir, 'proj-api-key');
  writeFileSync(keyFile, KEY_PROJ, { mode: 0o600 });
  writeConfig(home, 'config.json', JSON.stringify({ accounts: { proj: { apiKeyFile: keyFile } } }));
  const again = await ssh('proj-ela', 'id -un');
  assert.is(again.exitCode, 0, again.stderr);
  assert.is(again.stdout, USER_PROJ);
  assert.equal(signedKeys(KEY_PROJ), [publicKeyOf('proj')]);
});

test('an apiKeyCommand sees no account\'s API key in its environment', async () => {
  forgetCertificates();
  delete env.CSCS_API_KEY_PROJ;
  env.CSCS_API_KEY_OTHER = 'other-accounts-key-5555';
  // Prints the key only when no CSCS_API_KEY* variable reached it.
  const command = ['sh', '-c', `if env | grep -q '^CSCS_API_KEY'; then echo leaked >&2; exit 9; fi; printf %s ${KEY_PROJ}`];
  writeConfig(home, 'config.json', JSON.stringify({ accounts: { proj: { apiKeyCommand: command } } }));
  const r = await ssh('proj-ela', 'id -un');
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(r.stdout, USER_PROJ);
  assert.equal(signedKeys(KEY_PROJ), [publicKeyOf('proj')]);
});

test('the fresh path with accounts in a JSON config file loads no config loader and no ES module', async () => {
  writeConfig(home, 'config.json', JSON.stringify({ refreshMargin: 20, accounts: { proj: { user: USER_PROJ } } }));
  await certificateFor('proj');
  const traced = { ...env, NODE_DEBUG: 'module,esm' };
  const fresh = await cscsSa(['match', '--account', 'proj', 'proj-clariden'], traced);
  assert.is(fresh.exitCode, 0, fresh.stderr);
  assert.match(fresh.stderr, /entry\.cjs/, 'the trace works');
  assert.not.match(fresh.stderr, /cosmiconfig/);
  assert.not.match(fresh.stderr, /cli\.js/);
  assert.is(gw.signCallsFor(KEY_PROJ), 0, 'fresh: no refresh');
  // The control: a refresh takes the full path, and the trace shows its ES modules; a JSON config
  // file needs no loader there either.
  const refresh = await cscsSa(['match', '--account', 'proj', 'proj-clariden'], { ...traced, CSCS_SA_REFRESH_MARGIN: '3600' });
  assert.is(refresh.exitCode, 0, refresh.stderr);
  assert.match(refresh.stderr, /cli\.js/);
  assert.not.match(refresh.stderr, /cosmiconfig/);
  assert.is(gw.signCallsFor(KEY_PROJ), 1);
});

test('sign and doctor take --account: that account\'s key, API key and hosts', async () => {
  const sign = await cscsSa(['sign', '--account', 'proj'], env);
  assert.is(sign.exitCode, 0, sign.stderr);
  assert.match(sign.stdout, new RegExp(`^${keyOf('proj')}-cert.pub principals=${USER_PROJ} serial=\\d+ \\d+s left\\n$`));
  assert.equal(signedKeys(KEY_PROJ), [publicKeyOf('proj')]);
  assert.is(gw.signCallsFor(KEY_SA), 0);
  const doctor = await cscsSa(['doctor', '--account', 'proj', '--ssh-config', sshConfig(), '--connect'], env);
  assert.is(doctor.exitCode, 0, doctor.stdout);
  assert.match(doctor.stdout, /^✔ API key from CSCS_API_KEY_PROJ: the gateway takes it$/m);
  assert.match(doctor.stdout, new RegExp(`^✔ key pair ${keyOf('proj')} \\(0600\\)$`, 'm'));
  assert.match(doctor.stdout, new RegExp(`^✔ ssh config: proj-ela → 127.0.0.1:\\d+ as ${USER_PROJ}, key ${keyOf('proj')}, `, 'm'));
  assert.match(doctor.stdout, /^✔ ssh proj-ela true: connected$/m);
});

test('status lists both accounts in one table and as JSON', async () => {
  // Fresh certificates in place, as a refresh leaves them: status only reads them.
  await certificateFor('sa');
  await certificateFor('proj');
  const table = await cscsSa(['status'], env);
  assert.is(table.exitCode, 0, table.stderr);
  const lines = table.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, /^account +hosts +status +principals +left +last refresh +key$/);
  assert.match(lines[1]!, new RegExp(`^sa +sa-\\* +fresh +${USER_SA} +\\d+ s +\\S+ +${keyOf('sa')}$`));
  assert.match(lines[2]!, new RegExp(`^proj +proj-\\* +fresh +${USER_PROJ} +\\d+ s +\\S+ +${keyOf('proj')}$`));
  assert.is(lines.length, 3);
  const json = JSON.parse((await cscsSa(['status', '--json'], env)).stdout);
  assert.equal(json.map((r: { account: string; principals: string[] }) => [r.account, r.principals]), [['sa', [USER_SA]], ['proj', [USER_PROJ]]]);
  // The same shape for one account: an array of one.
  const one = JSON.parse((await cscsSa(['status', '--json', '--account', 'proj'], env)).stdout);
  assert.equal(one.map((r: { account: string; key: string }) => [r.account, r.key]), [['proj', keyOf('proj')]]);
});

test('status: a key pair named cscs-key-NAME that is already an account\'s key is that account, not another', async () => {
  // The default account's key from before accounts existed, as CI jobs set it; proj's own name for its key.
  for (const [from, to] of [['sa', 'ci'], ['proj', 'deploy']] as const) {
    for (const ext of ['', '.pub']) writeFileSync(`${keyOf(to)}${ext}`, readFileSync(`${keyOf(from)}${ext}`), { mode: 0o600 });
  }
  writeConfig(home, 'config.json', '{"accounts": {"proj": {"key": "~/.ssh/cscs-key-deploy"}}}');
  const r = await cscsSa(['status', '--json'], { ...env, CSCS_SA_KEY: keyOf('ci') });
  assert.is(r.exitCode, 1, r.stderr);
  assert.equal(JSON.parse(r.stdout).map((a: { account: string; key: string }) => [a.account, a.key]), [['sa', keyOf('ci')], ['proj', keyOf('deploy')]]);
});

test('setup --account proj --remove takes out its file and Include only; the key pair stays', async () => {
  const saConf = readFileSync(join(home.dir, '.ssh', 'cscs-sa.conf'), 'utf8');
  const before = readFileSync(sshConfig(), 'utf8');
  assert.match(before, /^Include \S+\/cscs-sa\.conf\nInclude \S+\/cscs-sa-proj\.conf\n# END cscs-sa$/m);
  const r = await cscsSa(['setup', '--account', 'proj', '--remove', '--ssh-config', sshConfig()], env);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`the key pair ${keyOf('proj')} of account proj stays`));
  assert.not.ok(existsSync(join(home.dir, '.ssh', 'cscs-sa-proj.conf')));
  assert.ok(existsSync(keyOf('proj')));
  assert.is(readFileSync(join(home.dir, '.ssh', 'cscs-sa.conf'), 'utf8'), saConf);
  assert.not.match(readFileSync(sshConfig(), 'utf8'), /cscs-sa-proj/);
  const gone = await ssh('proj-ela', 'true');
  assert.is.not(gone.exitCode, 0);
  const sa = await ssh('sa-ela', 'id -un');
  assert.is(sa.stdout, USER_SA, sa.stderr);
  const twice = await cscsSa(['setup', '--account', 'proj', '--remove', '--ssh-config', sshConfig()], env);
  assert.is(twice.stdout, 'cscs-sa: nothing to change\n');
});

test('accounts in the config file are checked like the top-level settings (exit 3)', async () => {
  const file = writeConfig(home, 'config.json', '{}');
  const cases: [string, RegExp][] = [
    ['{"accounts": {"proj": {"timeuot": 3}}}', /accounts\.proj: unknown setting "timeuot"/],
    ['{"accounts": {"proj": {"__proto__": {"key": "x"}}}}', /accounts\.proj: unknown setting "__proto__"/],
    ['{"accounts": {"Proj": {}}}', /"Proj" is not an account name/],
    ['{"accounts": {"sa": {"key": "x"}}}', /accounts\.sa: the default account's settings are the top-level ones/],
    ['{"accounts": {"proj": {"apiKeyFile": 7}}}', /accounts\.proj: "apiKeyFile" is not a non-empty string/],
  ];
  // Every rule through a command, and every command through a rule: the three share one check
  // (checkFileConfig, whose messages test/unit/settings.test.ts holds), so the 15 pairs would
  // only be 15 Node starts.
  const commands = [['match', '--account', 'proj'], ['sign', '--account', 'proj'], ['status']];
  for (const [i, [text, message]] of cases.entries()) {
    writeFileSync(file, text);
    const args = commands[i % commands.length]!;
    const r = await cscsSa(args, env);
    assert.is(r.exitCode, 3, `${text} ${args}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  rmSync(file);
  const bad = await cscsSa(['match', '--account', 'a-b'], env);
  assert.is(bad.exitCode, 2);
  assert.is(bad.stderr, 'cscs-sa: --account: "a-b" is not an account name (a lower-case letter, then up to 15 lower-case letters or digits)\n');
});

test('an account whose key is another account\'s key pair is refused (exit 3): its API key never signs that pair', async () => {
  const saCert = await certificateFor('sa');
  writeConfig(home, 'config.json', '{"accounts": {"proj": {"key": "~/.ssh/cscs-key-sa"}}}');
  gw.reset();
  for (const args of [['sign', '--account', 'proj'], ['match', '--account', 'proj'], ['sign', '--account', 'other', '--key', keyOf('sa')]]) {
    const r = await cscsSa(args, { ...env, CSCS_API_KEY_OTHER: KEY_PROJ });
    assert.is(r.exitCode, 3, `${args}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^cscs-sa: account \\w+ would use ${keyOf('sa')}, the key pair of account sa: `));
  }
  assert.is(signedKeys(KEY_PROJ).length, 0, 'no sign call with the other API key');
  assert.is(readFileSync(`${keyOf('sa')}-cert.pub`, 'utf8'), saCert, 'the certificate of sa is untouched');
});

if (root) test.run();
else skipTest('accounts (every test of this file)', `needs root and the private namespace scripts/test.js makes, to add the local user ${USER_PROJ}`);
