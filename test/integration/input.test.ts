/**
 * What a user sees for mistakes on the command line and in the environment: one line, a
 * documented exit code, and nothing run that was meant as data.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cscsSa, tempHome, userEnv } from '../helpers/cli.ts';

const test = suite('input');
const home = tempHome();
const env = userEnv(home, { CSCS_AUTHX_URL: 'http://127.0.0.1:9' });
test.after(() => home.remove());

test('--help for the tool and every command goes to stdout, exit 0', async () => {
  const top = await cscsSa(['--help'], env);
  assert.is(top.exitCode, 0);
  assert.match(top.stdout, /^Usage: cscs-sa COMMAND/);
  for (const command of ['match', 'proxy', 'sign', 'status', 'setup', 'doctor', 'known-hosts', 'close']) {
    const r = await cscsSa([command, '--help'], env);
    assert.is(r.exitCode, 0, command);
    assert.match(r.stdout, new RegExp(`^Usage: cscs-sa ${command}`));
    assert.is(r.stderr, '');
  }
});

test('a value quoted in an error stays on its one line: newlines and escape sequences are shown escaped', async () => {
  const r = await cscsSa(['setup', '--dry-run', '--user', 'x\n::warning::y\u001b[2J'], env);
  assert.is(r.exitCode, 2);
  assert.is(r.stderr, 'cscs-sa: setup: "x\\n::warning::y\\u001b[2J" is not a login name\n');
  assert.is(r.stdout, '');
});

test('--version (-v, -V) prints the package version and the undici version bundled, which package.json pins exactly', async () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  const installed = JSON.parse(readFileSync(new URL('../../node_modules/undici/package.json', import.meta.url), 'utf8')).version;
  for (const flag of ['--version', '-v', '-V']) {
    const r = await cscsSa([flag], env);
    assert.is(r.exitCode, 0, flag);
    assert.is(r.stdout, `${pkg.version} (undici ${installed})\n`, flag);
  }
  // A runtime dependency pinned to exactly what dist/ bundles, so npm audit and Dependabot see it.
  assert.is(pkg.dependencies.undici, installed);
  assert.is(pkg.devDependencies.undici, undefined);
});

test('no command: usage on stdout, exit 2; unknown command: one line, exit 2', async () => {
  assert.is((await cscsSa([], env)).exitCode, 2);
  const r = await cscsSa(['refresh'], env);
  assert.is(r.exitCode, 2);
  assert.is(r.stderr, 'cscs-sa: unknown command "refresh" (commands: match, proxy, sign, status, setup, doctor, known-hosts, close; see cscs-sa --help)\n');
});

test('unknown flags: one line naming the flag and the help, exit 2', async () => {
  for (const command of ['match', 'sign', 'status']) {
    const r = await cscsSa([command, '--api-key', 'x'], env);
    assert.is(r.exitCode, 2, command);
    assert.is(r.stderr, `cscs-sa: ${command}: Unknown option '--api-key' (see cscs-sa ${command} --help)\n`);
  }
});

test('an --account that is not an account name: one line, exit 2, for every command that takes it', async () => {
  for (const command of ['match', 'sign', 'status', 'doctor', 'setup', 'known-hosts']) {
    const r = await cscsSa([command, '--account', 'Foo', '--ssh-config', join(home.dir, 'ssh_config')].slice(0, command === 'doctor' || command === 'setup' ? 5 : 3), env);
    assert.is(r.exitCode, 2, `${command}: ${r.stdout}${r.stderr}`);
    assert.is(r.stdout, '', command);
    assert.is(r.stderr, 'cscs-sa: --account: "Foo" is not an account name (a lower-case letter, then up to 15 lower-case letters or digits)\n', command);
  }
});

// Every command that takes --env, each with one of the three kinds of wrong name: the names and
// their help are one rule (checkEnvironment, test/unit/usable.test.ts), what each command does
// with the refusal is what is tested here.
test('an --env that is no CSCS environment (case included): one line with the name meant, exit 2, for every command that takes it', async () => {
  for (const [command, value, fix] of [
    ['match', 'PROD', 'did you mean "prod"?'],
    ['sign', 'Tds', 'did you mean "tds"?'],
    ['doctor', 'bogus', 'use prod or tds'],
    ['setup', 'PROD', 'did you mean "prod"?'],
  ] as const) {
    const args = [command, '--env', value, ...(command === 'setup' ? ['--ssh-config', join(home.dir, 'ssh_config')] : [])];
    const r = await cscsSa(args, env);
    assert.is(r.exitCode, 2, `${command} ${value}: ${r.stdout}${r.stderr}`);
    assert.is(r.stdout, '', command);
    assert.is(r.stderr, `cscs-sa: --env: "${value}" is not a CSCS environment: ${fix}\n`, command);
  }
  assert.not.ok(existsSync(join(home.dir, 'ssh_config')), 'setup wrote nothing');
  // The same name in the environment is a configuration error (exit 3), with the same help.
  const r = await cscsSa(['match'], { ...env, CSCS_SA_ENV: 'PROD' });
  assert.is(r.exitCode, 3);
  assert.is(r.stderr, 'cscs-sa: CSCS_SA_ENV: "PROD" is not a CSCS environment: did you mean "prod"?\n');
});

// One name that a shell runs bare or in double quotes ($(...): backticks and `;` run in no
// context it does not), one that breaks out of single quotes: HOST is only logged, one code path.
test('a HOST with shell metacharacters is data, never run', async () => {
  const marker = join(home.dir, 'pwned');
  for (const host of [`$(touch ${marker})`, `x' && touch ${marker} '`]) {
    // HOST is only logged: the refresh goes ahead and fails for the want of an API key, as it would for any name.
    const r = await cscsSa(['match', host], env);
    assert.is(r.exitCode, 4, host);
    assert.is(r.stderr, 'cscs-sa: no API key: set CSCS_API_KEY, or apiKeyFile or apiKeyCommand in the config file\n', host);
    assert.is(r.stdout, '', host);
    assert.not.ok(existsSync(marker), host);
  }
});

test('environment values that cannot be used: one line naming the variable, exit 3', async () => {
  const timeout = await cscsSa(['match'], { ...env, CSCS_SA_TIMEOUT: 'ten' });
  assert.is(timeout.exitCode, 3);
  assert.is(timeout.stderr, 'cscs-sa: CSCS_SA_TIMEOUT=ten is not a number of seconds above 0 to 300: set CSCS_SA_TIMEOUT to a number of seconds above 0 to 300, or unset it\n');
  const url = await cscsSa(['match'], { ...env, CSCS_AUTHX_URL: 'ftp://gateway' });
  assert.is(url.exitCode, 3);
  assert.is(url.stderr, 'cscs-sa: CSCS_AUTHX_URL: "ftp://gateway" must be an https:// URL\n');
});

test('a relative CSCS_SA_CONFIG: one line naming the variable, exit 3, for the fast path too', async () => {
  for (const command of ['match', 'status']) {
    const r = await cscsSa([command], { ...env, CSCS_SA_CONFIG: 'cscs.json' });
    assert.is(r.exitCode, 3, command);
    assert.is(r.stderr, 'cscs-sa: CSCS_SA_CONFIG=cscs.json is a relative path, which would name another file in each folder ssh runs in: make it absolute (or start it with ~/)\n');
  }
});

// Each source and each command once, each variable and each kind of wrong value (zero, negative,
// huge) at least once: the limits themselves are one rule for every source (DURATIONS,
// test/unit/settings.test.ts has every value here and more), what each command and source does
// with a refusal is what is tested here. 0 meant "fail at once"; 3000000 s overflowed Node's
// timers into firing after 1 ms.
test('zero, negative and huge durations from the environment, a config file or a flag: one line naming the source', async () => {
  for (const [command, name, value, want] of [
    ['match', 'CSCS_SA_TIMEOUT', '3000000', 'above 0 to 300'],
    ['sign', 'CSCS_SA_CONNECT_TIMEOUT', '0', 'above 0 to 120'],
    ['status', 'CSCS_SA_REFRESH_MARGIN', '-1', 'from 0 to 3600'],
  ] as const) {
    const r = await cscsSa([command], { ...env, [name]: value });
    assert.is(r.exitCode, 3, `${command} ${name}=${value}`);
    assert.is(r.stderr, `cscs-sa: ${name}=${value} is not a number of seconds ${want}: set ${name} to a number of seconds ${want}, or unset it\n`);
  }
  const dir = join(home.dir, '.config', 'cscs-sa');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'config.json');
  try {
    for (const [setting, value, want] of [['timeout', 3000000, 'above 0 to 300']] as const) {
      writeFileSync(file, JSON.stringify({ [setting]: value }));
      const r = await cscsSa(['match'], env);
      assert.is(r.exitCode, 3, `${setting}: ${value}`);
      assert.is(r.stderr, `cscs-sa: config file ${file}: "${setting}" is not a number of seconds ${want}: set "${setting}" to a number of seconds ${want}\n`);
    }
    // A margin of 0 (refresh only once expired) is a choice, not a mistake.
    writeFileSync(file, JSON.stringify({ refreshMargin: 0 }));
    assert.is((await cscsSa(['status'], env)).exitCode, 1, 'status runs (1: no certificate yet)');
  } finally {
    rmSync(file);
  }
  for (const value of ['0']) {
    const r = await cscsSa(['proxy', '--connect-timeout', value, '127.0.0.1', '22'], env);
    assert.is(r.exitCode, 2);
    assert.is(r.stderr, `cscs-sa: --connect-timeout takes a number of seconds above 0 to 120, not "${value}"\n`);
  }
});

test('a key under a folder that cannot be made (/proc): one line, exit 7, no endless loop', async () => {
  // Node 20's recursive mkdirSync loops for ever there, and a Match exec that never ends hangs ssh.
  const r = await cscsSa(['match', '-f', '/proc/cscs-sa-none/key'], env, { timeout: 10_000 });
  assert.is(r.exitCode, 7);
  assert.is(r.stderr, 'cscs-sa: cannot create folder /proc/cscs-sa-none: no such file or directory\n');
});

test.run();
