/**
 * Command-line habits: a typo gets a suggestion, a stray word is refused instead of ignored, a
 * new key pair is announced, and a broken config file says where it is broken. Each asserts the
 * exact line a user sees and the exit code.
 */
import * as assert from 'uvu/assert';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cscsSa, writeConfig } from '../helpers/cli.ts';
import { gatewaySuite } from '../helpers/suites.ts';
import { certificateInPlace } from '../helpers/prepared.ts';

const { gw, test } = gatewaySuite('habits', 'sa-habits-key-0123456789');

test('a misspelt command or flag: "did you mean", exit 2', async ({ env }) => {
  const cases: [string[], string][] = [
    [['stauts'], 'cscs-sa: unknown command "stauts": did you mean "status"? (see cscs-sa --help)\n'],
    [['sing'], 'cscs-sa: unknown command "sing": did you mean "sign"? (see cscs-sa --help)\n'],
    [['--verison'], 'cscs-sa: unknown command "--verison": did you mean "--version"? (see cscs-sa --help)\n'],
    [['sign', '--forse'], `cscs-sa: sign: Unknown option '--forse': did you mean "--force"? (see cscs-sa sign --help)\n`],
    [['status', '--jsno'], `cscs-sa: status: Unknown option '--jsno': did you mean "--json"? (see cscs-sa status --help)\n`],
    [['match', '--kye', 'x'], `cscs-sa: match: Unknown option '--kye': did you mean "--key"? (see cscs-sa match --help)\n`],
    // Nothing close, no guess: input.test.ts's --api-key.
  ];
  for (const [args, line] of cases) {
    const r = await cscsSa(args, env);
    assert.is(r.stderr, line, args.join(' '));
    assert.is(r.exitCode, 2, args.join(' '));
    assert.is(r.stdout, '');
  }
});

test('more arguments than a command takes: refused, exit 2, nothing done', async ({ home, env }) => {
  const cases: [string[], string][] = [
    [['sign', 'now'], 'cscs-sa: sign: unexpected argument "now": sign takes no arguments (see cscs-sa sign --help)\n'],
    [['status', 'sa-clariden'], 'cscs-sa: status: unexpected argument "sa-clariden": status takes no arguments (see cscs-sa status --help)\n'],
    [['setup', 'clariden'], 'cscs-sa: setup: unexpected argument "clariden": setup takes no arguments (see cscs-sa setup --help)\n'],
    [['match', 'sa-clariden', 'extra'], 'cscs-sa: match: unexpected argument "extra": match takes only HOST (see cscs-sa match --help)\n'],
    [['doctor', 'sa-ela', 'sa-clariden'], 'cscs-sa: doctor: unexpected argument "sa-clariden": doctor takes only HOST (see cscs-sa doctor --help)\n'],
    [['proxy', '127.0.0.1', '22', 'x'], 'cscs-sa: proxy: unexpected argument "x": proxy takes only HOST PORT (see cscs-sa proxy --help)\n'],
  ];
  for (const [args, line] of cases) {
    const r = await cscsSa(args, env);
    assert.is(r.stderr, line, args.join(' '));
    assert.is(r.exitCode, 2, args.join(' '));
  }
  assert.is(gw.requests.length, 0);
  assert.not.ok(existsSync(home.key), 'no key pair created');
});

test('match with a fresh certificate refuses a stray argument too (the fast path does not answer for it)', async ({ home, env }) => {
  await certificateInPlace(home, gw);
  // Fresh: match with its one HOST ends on the fast path, no refresh.
  assert.is((await cscsSa(['match', 'sa-clariden'], env)).exitCode, 0);
  const r = await cscsSa(['match', 'sa-clariden', 'extra'], env);
  assert.is(r.stderr, 'cscs-sa: match: unexpected argument "extra": match takes only HOST (see cscs-sa match --help)\n');
  assert.is(r.exitCode, 2);
  assert.is(gw.requests.length, 0);
});

test('sign -f PATH says on stderr when it creates a new key pair, and only then', async ({ home, env }) => {
  const key = join(home.dir, 'keys', 'typo-key');
  const first = await cscsSa(['sign', '-f', key], env);
  assert.is(first.exitCode, 0, first.stderr);
  assert.is(first.stderr, `cscs-sa: no key pair at ${key}: created a new one (${key}.pub)\n`);
  assert.match(first.stdout, new RegExp(`^${key}-cert\\.pub principals=`));
  assert.ok(existsSync(key) && existsSync(`${key}.pub`) && existsSync(`${key}-cert.pub`));
  const again = await cscsSa(['sign', '-f', key, '--force'], env);
  assert.is(again.exitCode, 0, again.stderr);
  assert.is(again.stderr, '');
});

test('invalid JSON in the config file: the parser\'s reason with line and column, not the file\'s text; exit 3', async ({ home, env }) => {
  const file = writeConfig(home, 'config.json', '{\n  "timeout": 5,\n  "apiKeyCommand": "vault-read secret/sa-habits",\n}\n');
  const r = await cscsSa(['status'], env);
  assert.is(r.stderr, `cscs-sa: cannot read config file ${file}: invalid JSON at line 4, column 1: Expected double-quoted property name: correct or remove the file\n`);
  assert.is(r.exitCode, 3);
  writeFileSync(file, '{ "timeout": 5 }}');
  const trailing = await cscsSa(['status'], env);
  assert.is(trailing.stderr, `cscs-sa: cannot read config file ${file}: invalid JSON at line 1, column 17: Unexpected non-whitespace character after JSON: correct or remove the file\n`);
  assert.is(trailing.exitCode, 3);
});

test('invalid YAML in the config file: the parser\'s reason with its line:column, exit 3', async ({ home, env }) => {
  const file = writeConfig(home, 'config.yaml', 'timeout: 5\n  agent: true\n');
  const r = await cscsSa(['status'], env);
  assert.is(r.stderr, `cscs-sa: cannot read config file ${file}: bad indentation of a mapping entry (2:8): correct or remove the file\n`);
  assert.is(r.exitCode, 3);
});

test.run();
