/**
 * Settings precedence, per account: flag > environment > config file > default. The default
 * account reads the top-level settings and CSCS_SA_KEY; another account only its own
 * accounts.NAME; the global settings and the gateway variables apply to every account.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { checkFileConfig, type FileConfig, flagSeconds, settingsFrom } from '../../src/core/config.ts';
import { ConfigError, UsageError } from '../../src/base/errors.ts';

const home = (path: string) => join(homedir(), path);
const FILE = '/etc/cscs-sa-test/config.json';

test('without flags, environment or file: the defaults', () => {
  const s = settingsFrom({}, {}, {});
  assert.equal(
    { account: s.account, key: s.key, env: s.env, authxUrl: s.authxUrl, apiKeyVariable: s.apiKeyVariable, refreshMargin: s.refreshMargin, timeout: s.timeout, connectTimeout: s.connectTimeout, agent: s.agent },
    { account: 'sa', key: home('.ssh/cscs-key-sa'), env: 'prod', authxUrl: 'https://authx-gateway.svc.cscs.ch', apiKeyVariable: 'CSCS_API_KEY', refreshMargin: 20, timeout: 10, connectTimeout: 5, agent: false },
  );
});

const file: FileConfig = { key: '~/keys/from-file', env: 'tds', timeout: 30, refreshMargin: 40, connectTimeout: 7, agent: true, user: 'svc_file', apiKeyFile: '~/api-key' };

test('the config file beats the defaults', () => {
  const s = settingsFrom({}, {}, file, FILE);
  assert.is(s.key, home('keys/from-file'));
  assert.is(s.env, 'tds');
  assert.is(s.authxUrl, 'https://authx-gateway.tds.cscs.ch');
  assert.equal([s.timeout, s.refreshMargin, s.connectTimeout, s.agent], [30, 40, 7, true]);
  assert.is(s.user, 'svc_file');
  assert.is(s.apiKeyFile, home('api-key'));
  assert.is(s.configFile, FILE);
});

const env = {
  CSCS_SA_KEY: '/keys/from-env',
  CSCS_SA_ENV: 'prod',
  CSCS_SA_TIMEOUT: '12',
  CSCS_SA_REFRESH_MARGIN: '0',
  CSCS_SA_CONNECT_TIMEOUT: '2.5',
};

test('the environment beats the config file', () => {
  const s = settingsFrom({}, env, file, FILE);
  assert.is(s.key, '/keys/from-env');
  assert.is(s.env, 'prod');
  assert.equal([s.timeout, s.refreshMargin, s.connectTimeout], [12, 0, 2.5]);
});

test('CSCS_AUTHX_URL beats the environment name, and its trailing slashes go', () => {
  const s = settingsFrom({}, { ...env, CSCS_AUTHX_URL: 'https://gw.example/base//' }, file, FILE);
  assert.is(s.authxUrl, 'https://gw.example/base');
});

test('flags beat the environment: --key, and --env, which also picks its own gateway over CSCS_AUTHX_URL', () => {
  const s = settingsFrom({ key: '/keys/from-flag', env: 'tds' }, { ...env, CSCS_AUTHX_URL: 'https://gw.example' }, file, FILE);
  assert.is(s.key, '/keys/from-flag');
  assert.is(s.env, 'tds');
  assert.is(s.authxUrl, 'https://authx-gateway.tds.cscs.ch');
});

const accounts: FileConfig = { ...file, accounts: { proj: { env: 'tds', user: 'svc_proj', apiKeyCommand: ['pass', 'proj'] } } };

test('another account takes nothing of the default account identity: not its key, CSCS_SA_KEY, login or API key source', () => {
  const s = settingsFrom({ account: 'proj' }, { CSCS_SA_KEY: '/keys/from-env' }, accounts, FILE);
  assert.is(s.key, home('.ssh/cscs-key-proj'));
  assert.is(s.user, 'svc_proj');
  assert.is(s.apiKeyFile, undefined);
  assert.equal(s.apiKeyCommand, ['pass', 'proj']);
  assert.is(s.apiKeyVariable, 'CSCS_API_KEY_PROJ');
  assert.is(s.authxUrl, 'https://authx-gateway.tds.cscs.ch');
});

test('the global settings and the gateway variables apply to every account', () => {
  const s = settingsFrom({ account: 'proj' }, { CSCS_SA_TIMEOUT: '3', CSCS_SA_ENV: 'prod' }, accounts, FILE);
  assert.equal([s.timeout, s.refreshMargin, s.agent], [3, 40, true]);
  assert.is(s.env, 'prod');
});

test('an account named nowhere gets its defaults', () => {
  const s = settingsFrom({ account: 'other' }, {}, accounts, FILE);
  assert.equal([s.key, s.env, s.user, s.apiKeyCommand], [home('.ssh/cscs-key-other'), 'prod', undefined, undefined]);
});

const refusal = (fn: () => unknown): { name: string; line: string; exitCode: number } => {
  try {
    fn();
  } catch (err) {
    return { name: (err as Error).constructor.name, line: (err as ConfigError).line, exitCode: (err as ConfigError).exitCode };
  }
  throw new Error('not refused');
};

// 0 meant "fail at once"; 3000000 s overflowed Node's timers into firing after 1 ms.
test('a duration from the environment outside its limits is a configuration error naming the variable', () => {
  for (const [name, value, want] of [
    ['CSCS_SA_TIMEOUT', '0', 'above 0 to 300'],
    ['CSCS_SA_TIMEOUT', '301', 'above 0 to 300'],
    ['CSCS_SA_TIMEOUT', '3000000', 'above 0 to 300'],
    ['CSCS_SA_TIMEOUT', '-1', 'above 0 to 300'],
    ['CSCS_SA_CONNECT_TIMEOUT', 'soon', 'above 0 to 120'],
    ['CSCS_SA_CONNECT_TIMEOUT', '0', 'above 0 to 120'],
    ['CSCS_SA_CONNECT_TIMEOUT', '1e9', 'above 0 to 120'],
    ['CSCS_SA_REFRESH_MARGIN', '-1', 'from 0 to 3600'],
    ['CSCS_SA_REFRESH_MARGIN', '86400', 'from 0 to 3600'],
    ['CSCS_SA_REFRESH_MARGIN', ' ', 'from 0 to 3600'],
  ]) {
    assert.equal(refusal(() => settingsFrom({}, { [name!]: value }, {})), {
      name: 'ConfigError',
      line: `${name}=${value} is not a number of seconds ${want}: set ${name} to a number of seconds ${want}, or unset it`,
      exitCode: 3,
    });
  }
});

test('a duration flag has the limits of the setting it overrides, and a wrong one is a usage error', () => {
  assert.is(flagSeconds(undefined, 'connectTimeout', '--connect-timeout'), undefined);
  assert.is(flagSeconds('120', 'connectTimeout', '--connect-timeout'), 120);
  assert.is(flagSeconds('0.5', 'connectTimeout', '--connect-timeout'), 0.5);
  for (const value of ['0', '121', '3000000', '', 'x']) {
    assert.equal(refusal(() => flagSeconds(value, 'connectTimeout', '--connect-timeout')), {
      name: 'UsageError',
      line: `--connect-timeout takes a number of seconds above 0 to 120, not "${value}"`,
      exitCode: 2,
    });
  }
});

test('a duration in the config file outside its limits is a configuration error naming the file and the setting; a margin of 0 is a choice', () => {
  for (const [setting, value, want] of [
    ['timeout', 0, 'above 0 to 300'],
    ['timeout', 3000000, 'above 0 to 300'],
    ['connectTimeout', 0, 'above 0 to 120'],
    ['refreshMargin', -5, 'from 0 to 3600'],
  ] as const) {
    assert.equal(refusal(() => checkFileConfig({ [setting]: value }, FILE)), {
      name: 'ConfigError',
      line: `config file ${FILE}: "${setting}" is not a number of seconds ${want}: set "${setting}" to a number of seconds ${want}`,
      exitCode: 3,
    });
  }
  assert.is(settingsFrom({}, {}, checkFileConfig({ refreshMargin: 0 }, FILE), FILE).refreshMargin, 0);
});

test('two accounts on one key pair are refused: the second would overwrite the first one certificate', () => {
  const shared: FileConfig = { accounts: { proj: { key: '~/.ssh/cscs-key-sa' } } };
  const r = refusal(() => settingsFrom({ account: 'proj' }, {}, shared, FILE));
  assert.is(r.name, 'ConfigError');
  assert.match(r.line, `account proj would use ${home('.ssh/cscs-key-sa')}, the key pair of account sa`);
});

test('a bad account name is a usage error, a bad environment name and a plain http:// gateway are configuration errors', () => {
  assert.is(refusal(() => settingsFrom({ account: 'Proj' }, {}, {})).name, UsageError.name);
  assert.equal(refusal(() => settingsFrom({}, { CSCS_SA_ENV: 'dev' }, {})).exitCode, 3);
  assert.match(refusal(() => settingsFrom({}, { CSCS_AUTHX_URL: 'http://gw.example' }, {})).line, 'would send the API key unencrypted');
  assert.is(settingsFrom({}, { CSCS_AUTHX_URL: 'http://127.0.0.1:8080' }, {}).authxUrl, 'http://127.0.0.1:8080');
});

test('accounts in the config file are checked like the top-level settings: each rule a configuration error (exit 3) naming the setting', () => {
  for (const [text, message] of [
    ['{"accounts": {"proj": {"timeuot": 3}}}', 'accounts.proj: unknown setting "timeuot"'],
    ['{"accounts": {"proj": {"__proto__": {"key": "x"}}}}', 'accounts.proj: unknown setting "__proto__"'],
    ['{"accounts": {"Proj": {}}}', '"Proj" is not an account name'],
    ['{"accounts": {"sa": {"key": "x"}}}', "accounts.sa: the default account's settings are the top-level ones"],
    ['{"accounts": {"proj": {"apiKeyFile": 7}}}', 'accounts.proj: "apiKeyFile" is not a non-empty string'],
    ['{"accounts": []}', '"accounts" does not map account names to their settings'],
    ['{"accounts": {"proj": 1}}', 'accounts.proj does not hold an object with settings'],
  ] as const) {
    const r = refusal(() => checkFileConfig(JSON.parse(text), FILE));
    assert.is(r.name, 'ConfigError', text);
    assert.is(r.exitCode, 3, text);
    assert.ok(r.line.startsWith(`config file ${FILE}: ${message}`), `${text}: ${r.line}`);
  }
  assert.equal(checkFileConfig(JSON.parse('{"accounts": {"proj": {"apiKeyFile": "~/k"}}}'), FILE), { accounts: { proj: { apiKeyFile: '~/k' } } });
});

test.run();
