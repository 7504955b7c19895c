/**
 * `cscs-sa doctor` on a working setup, then with one thing broken at a time: the line it shows,
 * the fix it names, and its exit code.
 */
import * as assert from 'uvu/assert';
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { worldSuite } from './helpers/suites.ts';
import { execa } from 'execa';
import { BIN, cscsSa } from './helpers/cli.ts';
import { freePort } from './helpers/sshd.ts';

const { world, test } = worldSuite('doctor');
test.before.each(async () => {
  world.freshHome();
  assert.is((await cscsSa(['sign'], world.env)).exitCode, 0);
});

function doctor(args: string[] = [], env = world.env) {
  return cscsSa(['doctor', 'sa-ela', '--ssh-config', world.sshConfig, ...args], env);
}

test('a working setup: every line ✔, exit 0, the API key never shown', async () => {
  const r = await doctor(['--sign', '--connect']);
  assert.is(r.exitCode, 0, r.stdout + r.stderr);
  assert.not.match(r.stdout, /✘/);
  for (const line of [/^✔ OpenSSH \d+\.\d+/m, /^✔ key pair .* \(0600\)$/m, /^✔ API key from CSCS_API_KEY$/m, /^✔ gateway http:\/\/127\.0\.0\.1:\d+ answers$/m, /^✔ local clock within \d s of the gateway$/m, /^✔ test sign: certificate for \S+, \d+ s left$/m, /^✔ ssh config: sa-ela → 127\.0\.0\.1 as \S+, key .*, via .*cscs-sa proxy %h %p$/m, /^✔ ssh sa-ela true: connected$/m]) {
    assert.match(r.stdout, line);
  }
  assert.not.ok(r.stdout.includes(world.env.CSCS_API_KEY!));
});

test('no key pair', async () => {
  rmSync(world.home.key);
  const r = await doctor();
  assert.is(r.exitCode, 1);
  assert.match(r.stdout, new RegExp(`^✘ no key pair at ${world.home.key}\\n  → cscs-sa sign \\(or the first ssh\\) creates it; cscs-sa setup too$`, 'm'));
});

test('a private key readable by others', async () => {
  chmodSync(world.home.key, 0o644);
  const r = await doctor();
  assert.is(r.exitCode, 1);
  assert.match(r.stdout, new RegExp(`^✘ key ${world.home.key} has permissions 0644, which ssh refuses\\n  → run chmod 600 ${world.home.key}$`, 'm'));
});

test('no API key', async () => {
  const { CSCS_API_KEY: _, ...env } = world.env;
  const r = await doctor([], env);
  assert.is(r.exitCode, 1);
  assert.match(r.stdout, /^✘ no API key\n {2}→ set CSCS_API_KEY, or apiKeyFile or apiKeyCommand in the config file$/m);
});

test('gateway down', async () => {
  const r = await doctor([], { ...world.env, CSCS_AUTHX_URL: `http://127.0.0.1:${await freePort()}` });
  assert.is(r.exitCode, 1);
  assert.match(r.stdout, /^✘ cannot reach gateway 127\.0\.0\.1:\d+: connection refused\n {2}→ check the network, DNS and HTTPS_PROXY$/m);
});

test('local clock 10 minutes off', async () => {
  const skewed = await execa('faketime', ['-f', '+10m', process.execPath, BIN, 'doctor', 'sa-ela', '--ssh-config', world.sshConfig], { env: world.env, extendEnv: false, reject: false });
  assert.is(skewed.exitCode, 1);
  assert.match(String(skewed.stdout), /^✘ local clock is 60\d s ahead of the gateway \(cscs-sa compensates, other tools will not\)\n {2}→ synchronise the clock/m);
});

test('a User the certificate does not name', async () => {
  writeFileSync(world.sshConfig, readFileSync(world.sshConfig, 'utf8').replace(/^ {4}User .*$/m, '    User someone_else'));
  const r = await doctor();
  assert.is(r.exitCode, 1);
  assert.match(r.stdout, new RegExp(`^✘ ssh logs in to sa-ela as "someone_else", which the certificate does not name \\(principals: ${world.user}\\)\\n  → set "User ${world.user}" in Host sa-\\*$`, 'm'));
});

test.run();
