/**
 * `cscs-sa doctor` on a working setup, then with things broken (one at a time, or two whose checks
 * are independent): the line it shows, the fix it names, and its exit code; and, through the real
 * ssh, that what it passes works and what it fails does not.
 */
import * as assert from 'uvu/assert';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { worldSuite } from '../helpers/suites.ts';
import { execa } from 'execa';
import { BIN, cscsSa, type Home, tempHome, userEnv } from '../helpers/cli.ts';
import { freePort } from '../helpers/sshd.ts';
import { setupHome } from '../helpers/setup-home.ts';
import { API_KEY } from '../helpers/world.ts';

/**
 * What `cscs-sa sign` leaves in a fresh HOME (the key pair, and the certificate whose comment
 * carries the fresh window), made by a real sign in a HOME of its own and copied into each test's:
 * a Node start and a gateway call per test bought nothing that differs from test to test. It is
 * signed again before it is old enough for the fresh window (the double's 60 s less the 20 s
 * margin) to run out during a test.
 */
let signedPair: { home: Home; atMs: number } | undefined;
const RESIGN_AFTER_MS = 15_000;

const { world, test } = worldSuite('doctor', { after: () => signedPair?.home.remove() });

/** A fresh HOME (as world.freshHome) holding a key pair with a fresh certificate; the gateway's counts start at 0. */
async function signed(options?: Parameters<typeof world.freshHome>[0]): Promise<void> {
  if (!signedPair || Date.now() - signedPair.atMs > RESIGN_AFTER_MS) {
    signedPair ??= { home: tempHome(), atMs: 0 };
    const atMs = Date.now();
    const r = await cscsSa(['sign', '--force'], userEnv(signedPair.home, { CSCS_API_KEY: API_KEY, CSCS_AUTHX_URL: world.gateway.url }));
    assert.is(r.exitCode, 0, r.stderr);
    signedPair.atMs = atMs;
  }
  world.freshHome(options);
  mkdirSync(join(world.home.dir, '.ssh'), { mode: 0o700 });
  for (const file of ['key', 'pub', 'cert'] as const) {
    copyFileSync(signedPair.home[file], world.home[file]);
    chmodSync(world.home[file], file === 'key' ? 0o600 : 0o644);
  }
}

test.before.each(() => signed());

function doctor(args: string[] = [], env = world.env) {
  return cscsSa(['doctor', 'sa-ela', '--ssh-config', world.sshConfig, ...args], env);
}

test('a working setup: every line ✔, exit 0, the API key never shown', async () => {
  const r = await doctor(['--sign', '--connect']);
  assert.is(r.exitCode, 0, r.stdout + r.stderr);
  assert.not.match(r.stdout, /✘/);
  for (const line of [/^✔ OpenSSH \d+\.\d+/m, /^✔ settings from the environment \(no config file\)$/m, /^✔ key pair .* \(0600\)$/m, /^✔ API key from CSCS_API_KEY: the gateway takes it$/m, /^✔ gateway http:\/\/127\.0\.0\.1:\d+ answers$/m, /^✔ local clock within \d s of the gateway$/m, /^✔ test sign: certificate for \S+, \d+ s left$/m, /^✔ ssh runs cscs-sa match for sa-ela \(key .*\)$/m, /^✔ ssh config: sa-ela → 127\.0\.0\.1:\d+ as \S+, key .*, via .*cscs-sa proxy %h %p$/m, /^✔ ssh sa-ela true: connected$/m]) {
    assert.match(r.stdout, line);
  }
  assert.not.ok(r.stdout.includes(world.env.CSCS_API_KEY!));
});

test("the block setup writes: doctor's probe sees match behind the shell check, which tells a fresh certificate alone; one written by hand it cannot", async () => {
  await setupHome(world);
  assert.is((await cscsSa(['sign'], world.env)).exitCode, 0);
  const r = await doctor();
  assert.is(r.exitCode, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^✔ ssh runs cscs-sa match for sa-ela \(key .*\)$/m);
  assert.match(r.stdout, /^✔ the Match line tells a fresh certificate in \$SHELL \(\/bin\/sh\) alone, without starting Node$/m);

  writeFileSync(world.home.cert, `${await world.gateway.sign(readFileSync(world.home.pub, 'utf8'))}\n`);
  const byHand = await doctor();
  assert.is(byHand.exitCode, 1);
  assert.match(byHand.stdout, /^✘ the Match line's shell check does not tell the fresh certificate in \$SHELL \(\/bin\/sh\): every ssh starts Node\n {2}→ run cscs-sa sign --force \(the refresh writes what the check reads\), and check that sh and date run in that shell$/m);

  assert.is((await cscsSa(['sign', '--force'], world.env)).exitCode, 0);
  // The window was written with the margin of that refresh; a larger one set since makes match refresh sooner.
  const raised = await doctor([], { ...world.env, CSCS_SA_REFRESH_MARGIN: '3600' });
  assert.match(raised.stdout, /^✘ the Match line's shell check says fresh, but match says expiring\n {2}→ run cscs-sa sign --force, which writes the window with the refresh margin set now$/m);
  // ... and that margin is longer than a certificate lives: no refresh would leave it a window.
  assert.match(raised.stdout, /^✘ refresh margin 3600 s is not shorter than the \d+ s a certificate has when it arrives/m);

  rmSync(world.home.cert);
  const none = await doctor();
  assert.match(none.stdout, /^✔ the certificate is missing: the next ssh runs cscs-sa match$/m);
});

// Two faults a run: the checks are independent, so a user with both sees both, each with its fix.
test('no key pair and no API key: a ✘ line for each', async () => {
  rmSync(world.home.key);
  const { CSCS_API_KEY: _, ...env } = world.env;
  const r = await doctor([], env);
  assert.is(r.exitCode, 1);
  assert.match(r.stdout, new RegExp(`^✘ no key pair at ${world.home.key}\\n  → cscs-sa sign \\(or the first ssh\\) creates it; cscs-sa setup too$`, 'm'));
  assert.match(r.stdout, /^✘ no API key\n {2}→ set CSCS_API_KEY, or apiKeyFile or apiKeyCommand in the config file$/m);
});

test('a private key readable by others, and the gateway down: a ✘ line for each', async () => {
  chmodSync(world.home.key, 0o644);
  const r = await doctor([], { ...world.env, CSCS_AUTHX_URL: `http://127.0.0.1:${await freePort()}` });
  assert.is(r.exitCode, 1);
  assert.match(r.stdout, new RegExp(`^✘ key ${world.home.key} has permissions 0644, which ssh refuses\\n  → run chmod 600 ${world.home.key}$`, 'm'));
  assert.match(r.stdout, /^✘ cannot reach gateway 127\.0\.0\.1:\d+: connection refused\n {2}→ check the network, DNS and HTTPS_PROXY$/m);
});

// A key reached through a symbolic link is judged by its target, as ssh does: the rule of
// openPrivateKey, in test/unit/keypair.test.ts; the line above is how doctor shows its refusal.

test('local clock 10 minutes off, and a refresh margin longer than a certificate lives: a ✘ line for each', async () => {
  // 599 too: the offset is an upper bound (src/refresh/gateway.ts clockOffset), so "ahead" reads up to a second and a round trip short.
  const env = { ...world.env, CSCS_SA_REFRESH_MARGIN: '3600' };
  const skewed = await execa('faketime', ['-f', '+10m', process.execPath, BIN, 'doctor', 'sa-ela', '--ssh-config', world.sshConfig], { env, extendEnv: false, reject: false });
  assert.is(skewed.exitCode, 1);
  assert.match(String(skewed.stdout), /^✘ local clock is (?:59|60)\d s ahead of the gateway \(cscs-sa compensates, other tools will not\)\n {2}→ synchronise the clock/m);
  // The double's certificates end 60 s after they are signed, in whole seconds, and the refresh that wrote it took a moment.
  assert.match(String(skewed.stdout), /^✘ refresh margin 3600 s is not shorter than the (5\d|60) s a certificate has when it arrives: every ssh fetches a new one\n {2}→ set refreshMargin \(CSCS_SA_REFRESH_MARGIN\) well below \1 s$/m);
});

// One doctor run for both: the User check and --connect's ssh fail on the same config, each on a line of its own.
test('a User the certificate does not name: doctor names it, and --connect maps the Permission denied to a fix', async () => {
  writeFileSync(world.sshConfig, readFileSync(world.sshConfig, 'utf8').replace(/^ {4}User .*$/m, '    User someone_else'));
  const r = await doctor(['--connect']);
  assert.is(r.exitCode, 1);
  assert.match(r.stdout, new RegExp(`^✘ ssh logs in to sa-ela as "someone_else", which the certificate does not name \\(principals: ${world.user}\\)\\n  → set "User ${world.user}" in Host sa-\\*$`, 'm'));
  assert.match(r.stdout, failed('ssh sa-ela true failed: someone_else@127.0.0.1: Permission denied (publickey).', 'the server refused the login: User must be a principal of the certificate and the certificate fresh (cscs-sa status shows both), for the key ssh offers (IdentityFile)'));
});

/** The line and fix doctor shows for a failed check, as one pattern. */
function failed(line: string, fix: string): RegExp {
  const quote = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^✘ ${quote(line)}\\n {2}→ ${quote(fix)}$`, 'm');
}

const PIN = 'pin the host keys once from a trusted machine: cscs-sa known-hosts prints them, cscs-sa setup --known-hosts FILE stores them where ssh looks';
const MATCH_FIX = 'write it as Match originalhost sa-* exec "cscs-sa match %n" (cscs-sa setup does): Match originalhost compares the name you type';

// One doctor run for both: the host key checks and --connect's ssh fail on the same config, each on a line of its own.
test("no host keys: doctor fails naming the host keys of both hops, --connect quotes the line that says why, not ssh's last one, and ssh indeed fails", async () => {
  await signed({ hostKeys: 'none' });
  const r = await cscsSa(['doctor', 'sa-clariden', '--ssh-config', world.sshConfig, '--connect'], world.env);
  assert.is(r.exitCode, 1, r.stdout);
  for (const [name, port] of [['sa-ela', world.ela.port], ['sa-clariden', world.clariden.port]] as const) {
    assert.match(r.stdout, failed(`no host key for [127.0.0.1]:${port} (${name}) in ${world.knownHosts}: ssh fails "Host key verification failed"`, PIN));
  }
  assert.match(r.stdout, failed(`ssh sa-clariden true failed: No ED25519 host key is known for [127.0.0.1]:${world.ela.port} and you have requested strict checking.`, PIN));
  const ssh = await world.ssh('sa-clariden', 'true');
  assert.is(ssh.exitCode, 255);
  assert.match(ssh.stderr, /Host key verification failed/);
});

test('pinned host keys: doctor passes for the cluster and its jump host, and ssh works', async () => {
  await signed({ hostKeys: 'pinned' });
  const r = await cscsSa(['doctor', 'sa-clariden', '--ssh-config', world.sshConfig], world.env);
  assert.is(r.exitCode, 0, r.stdout);
  assert.not.match(r.stdout, /^[✘!]/m);
  for (const [name, port] of [['sa-ela', world.ela.port], ['sa-clariden', world.clariden.port]] as const) {
    assert.match(r.stdout, new RegExp(`^✔ ssh runs cscs-sa match for ${name} \\(key ${world.home.key}\\)$`, 'm'));
    assert.match(r.stdout, new RegExp(`^✔ host key for \\[127\\.0\\.0\\.1\\]:${port} \\(${name}\\) is pinned in ${world.knownHosts}$`, 'm'));
  }
  assert.match(r.stdout, /^✔ ssh config: sa-clariden → 127\.0\.0\.1:\d+ as \S+, key .*, via ProxyJump sa-ela$/m);
  assert.is(world.gateway.signCalls, 0, 'the probe made ssh run match, which refreshed nothing');
  rmSync(world.home.cert);
  const ssh = await world.ssh('sa-clariden', 'echo', 'reached');
  assert.is(ssh.exitCode, 0, ssh.stderr);
  assert.is(ssh.stdout.trim(), 'reached');
});

test('pinned host keys in a folder with a space (ssh -G prints the path unquoted): doctor finds them, as ssh does', async () => {
  await signed({ hostKeys: 'pinned' });
  const dir = join(world.home.dir, 'my keys');
  mkdirSync(dir);
  const moved = join(dir, 'known_hosts');
  renameSync(world.knownHosts, moved);
  writeFileSync(world.sshConfig, readFileSync(world.sshConfig, 'utf8').replace(`UserKnownHostsFile ${world.knownHosts}`, `UserKnownHostsFile "${moved}"`));
  // sa-ela alone: the folder's name is read the same way for every host, a jump adds nothing to it.
  assert.is((await world.ssh('sa-ela', 'true')).exitCode, 0, 'ssh finds the keys');
  const r = await doctor();
  assert.is(r.exitCode, 0, r.stdout);
  assert.match(r.stdout, new RegExp(`^✔ host key for \\[127\\.0\\.0\\.1\\]:${world.ela.port} \\(sa-ela\\) is pinned in ${moved}$`, 'm'));
});

test('no Match line: doctor fails with the line to add, and ssh fails once the certificate is gone', async () => {
  await signed({ matchLine: null });
  const r = await doctor();
  assert.is(r.exitCode, 1, r.stdout);
  assert.match(r.stdout, failed('ssh runs no cscs-sa match for sa-ela: its config has no Match line that applies', 'run cscs-sa setup, or add Match originalhost sa-* exec "cscs-sa match %n" after your Host blocks (an Include of the cscs-sa block must come before any Host or Match line)'));
  rmSync(world.home.cert);
  const ssh = await world.ssh('sa-ela', 'true');
  assert.is(ssh.exitCode, 255);
  assert.match(ssh.stderr, /Permission denied \(publickey\)/);
});

test('a HostName set above `Match host`: doctor names Match originalhost, which then works through ProxyJump', async () => {
  const above = 'Host sa-ela\n    HostName 127.0.0.1\n\n';
  await signed({ above, matchLine: 'Match host sa-* exec "cscs-sa match %h"' });
  const r = await cscsSa(['doctor', 'sa-clariden', '--ssh-config', world.sshConfig], world.env);
  assert.is(r.exitCode, 1, r.stdout);
  assert.match(r.stdout, failed(`the Match line at ${world.sshConfig} line 4 compares "127.0.0.1", the HostName set for sa-ela above it, so ssh never runs cscs-sa match for sa-ela`, MATCH_FIX));
  rmSync(world.home.cert);
  assert.is((await world.ssh('sa-ela', 'true')).exitCode, 255, 'the defect doctor reports is real');

  await signed({ above, matchLine: 'Match originalhost sa-* exec "cscs-sa match %n"' });
  const fixed = await cscsSa(['doctor', 'sa-clariden', '--ssh-config', world.sshConfig], world.env);
  assert.is(fixed.exitCode, 0, fixed.stdout);
  rmSync(world.home.cert);
  const ssh = await world.ssh('sa-clariden', 'true');
  assert.is(ssh.exitCode, 0, ssh.stderr);
  assert.is(world.gateway.signCalls, 1, 'ssh itself refreshed the removed certificate');
});

test('a `!` pattern that excludes the host: doctor names the Match line and what it compared', async () => {
  await signed({ matchLine: 'Match host sa-*,!sa-ela exec "cscs-sa match %h"' });
  const r = await doctor();
  assert.is(r.exitCode, 1, r.stdout);
  assert.match(r.stdout, failed(`the Match line at ${world.sshConfig} line 1 does not match sa-ela (host "sa-ela")`, 'make it match sa-ela, as Match originalhost sa-* exec "cscs-sa match %n" does (cscs-sa setup writes it)'));
});

test('a Match exec that runs some other cscs-sa (one that ignores the probe): doctor says so', async () => {
  await signed({ match: 'env CSCS_SA_PROBE= cscs-sa match %h' });
  const r = await doctor();
  assert.is(r.exitCode, 1, r.stdout);
  assert.match(r.stdout, failed('ssh runs "env CSCS_SA_PROBE= cscs-sa match sa-ela" for sa-ela, which did not answer doctor\'s probe: it is not this cscs-sa (an older one?)', 'run cscs-sa setup, which names this cscs-sa by absolute path'));
});

test('an IdentityFile that is not the key match refreshes: doctor names both, and ssh indeed fails', async () => {
  const other = `${world.home.key}-other`;
  writeFileSync(world.sshConfig, readFileSync(world.sshConfig, 'utf8').replace(/^ {4}IdentityFile .*$/m, `    IdentityFile ${other}`));
  const r = await doctor();
  assert.is(r.exitCode, 1, r.stdout);
  assert.match(r.stdout, failed(`ssh uses ${other} for sa-ela, not ${world.home.key}, the key cscs-sa match refreshes`, `set "IdentityFile ${world.home.key}" in Host sa-* (cscs-sa setup)`));
  assert.is((await world.ssh('sa-ela', 'true')).exitCode, 255);
});

test('an IdentityFile written with ~ and %d: doctor expands them as ssh does (from the password database)', async () => {
  const text = readFileSync(world.sshConfig, 'utf8').replace(/^ {4}IdentityFile .*$/m, `    IdentityFile ~/..${world.home.key}\n    CertificateFile %d/..${world.home.cert}`);
  writeFileSync(world.sshConfig, text);
  const r = await doctor();
  assert.is(r.exitCode, 0, r.stdout);
  assert.is((await world.ssh('sa-ela', 'true')).exitCode, 0);
});

test('an ssh config ssh refuses: the line ssh names', async () => {
  await signed({ above: 'Bogus yes\n' });
  const r = await doctor();
  assert.is(r.exitCode, 1, r.stdout);
  assert.match(r.stdout, failed(`ssh -G sa-ela failed: ${world.sshConfig}: line 1: Bad configuration option: bogus`, 'fix the ssh config it names'));
});

test('a Match line ssh cannot start: doctor quotes the shell', async () => {
  await signed({ match: '/nonexistent/cscs-sa match %h' });
  const r = await doctor();
  assert.is(r.exitCode, 1, r.stdout);
  assert.match(r.stdout, failed("ssh's Match exec cannot start cscs-sa for sa-ela: /bin/sh: 1: /nonexistent/cscs-sa: not found", 'run cscs-sa setup, which names cscs-sa by absolute path'));
});

test('--connect with a pinned key that is not the host\'s: the line ssh names, and the fix', async () => {
  await signed({ hostKeys: 'pinned' });
  writeFileSync(world.knownHosts, `[127.0.0.1]:${world.ela.port} ${world.clariden.hostPublicKey}\n[127.0.0.1]:${world.clariden.port} ${world.clariden.hostPublicKey}\n`);
  const r = await cscsSa(['doctor', 'sa-clariden', '--ssh-config', world.sshConfig, '--connect'], world.env);
  assert.is(r.exitCode, 1);
  assert.match(r.stdout, failed(`ssh sa-clariden true failed: Host key for [127.0.0.1]:${world.ela.port} has changed and you have requested strict checking.`, 'the host key differs from the pinned one: confirm the new key with CSCS, then pin it again (cscs-sa known-hosts, cscs-sa setup --known-hosts FILE)'));
});

test('settings that cannot be loaded: one ✘ line with its fix, and the ssh checks still run', async () => {
  const r = await doctor([], { ...world.env, CSCS_SA_TIMEOUT: 'ten' });
  assert.is(r.exitCode, 1);
  assert.match(r.stdout, failed('CSCS_SA_TIMEOUT=ten is not a number of seconds above 0 to 300', 'set CSCS_SA_TIMEOUT to a number of seconds above 0 to 300, or unset it'));
  assert.match(r.stdout, failed('ssh runs cscs-sa match for sa-ela, which refuses: CSCS_SA_TIMEOUT=ten is not a number of seconds above 0 to 300', 'run cscs-sa setup, which writes a Match line match accepts'));
});

test('a ControlPath folder others can enter fails; 0700 passes and ssh multiplexes through it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cscs-sa-cm-'));
  chmodSync(dir, 0o755);
  await signed({ above: `Host sa-*\n    ControlMaster auto\n    ControlPath ${dir}/%C\n    ControlPersist no\n\n` });
  const r = await doctor();
  assert.is(r.exitCode, 1, r.stdout);
  assert.match(r.stdout, failed(`ControlPath folder ${dir} of sa-ela has mode 0755: its sockets log in without a key`, `chmod 700 ${dir}`));
  chmodSync(dir, 0o700);
  const fixed = await doctor();
  assert.is(fixed.exitCode, 0, fixed.stdout);
  assert.match(fixed.stdout, new RegExp(`^✔ ControlPath folder ${dir} \\(0700\\)$`, 'm'));
  assert.is((await world.ssh('sa-ela', 'true')).exitCode, 0);
  rmSync(dir, { recursive: true, force: true });
});

test('IdentitiesOnly no with six keys in ssh-agent: doctor fails, as ssh does ("Too many authentication failures")', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cscs-sa-agent-'));
  const sock = join(dir, 'agent.sock');
  const agent = execa('ssh-agent', ['-D', '-a', sock], { reject: false, stdout: 'ignore', stderr: 'ignore' });
  try {
    await signed({ above: 'IdentitiesOnly no\n\n', env: { SSH_AUTH_SOCK: sock } });
    for (let i = 0; i < 6; i++) {
      const key = join(dir, `k${i}`);
      await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
      // The agent may still be starting: ssh-add retried until it answers.
      for (let tries = 0; (await execa('ssh-add', ['-q', key], { env: { SSH_AUTH_SOCK: sock }, reject: false })).exitCode !== 0; tries++) {
        assert.ok(tries < 50, 'ssh-agent answers');
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const ssh = await world.ssh('sa-ela', 'true');
    assert.is(ssh.exitCode, 255);
    assert.match(ssh.stderr, /Too many authentication failures/);
    const r = await doctor();
    assert.is(r.exitCode, 1, r.stdout);
    assert.match(r.stdout, failed('ssh offers the 6 other keys of ssh-agent before the certificate for sa-ela (IdentitiesOnly no): sshd stops after 6 failed keys (MaxAuthTries), "Too many authentication failures"', 'hold fewer keys in ssh-agent, or set "IdentitiesOnly yes" for sa-* above anything that sets it to no (cscs-sa setup without --agent writes it)'));
  } finally {
    agent.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the probe: match appends its arguments to a 0600 file of ours and refreshes nothing; any other file is refused', async () => {
  rmSync(world.home.cert);
  const probe = join(world.home.dir, 'cscs-sa-probe-test');
  writeFileSync(probe, '', { mode: 0o600 });
  const ok = await cscsSa(['match', '-f', world.home.key, 'sa-ela'], { ...world.env, CSCS_SA_PROBE: probe });
  assert.is(ok.exitCode, 0, ok.stderr);
  assert.is(readFileSync(probe, 'utf8'), `{"args":["-f","${world.home.key}","sa-ela"]}\n`);
  assert.is(world.gateway.signCalls, 0, 'match under the probe refreshed nothing');

  chmodSync(probe, 0o644);
  const loose = await cscsSa(['match', 'sa-ela'], { ...world.env, CSCS_SA_PROBE: probe });
  assert.is(loose.exitCode, 7);
  assert.is(loose.stderr, `cscs-sa: probe file ${probe} has permissions 0644, not 0600: unset CSCS_SA_PROBE (it names no probe file of cscs-sa doctor)\n`);
  const link = join(world.home.dir, 'cscs-sa-probe-link');
  chmodSync(probe, 0o600);
  symlinkSync(probe, link);
  assert.is((await cscsSa(['match', 'sa-ela'], { ...world.env, CSCS_SA_PROBE: link })).exitCode, 7);
  const rc = join(world.home.dir, '.bashrc');
  writeFileSync(rc, '', { mode: 0o600 });
  assert.is((await cscsSa(['match', 'sa-ela'], { ...world.env, CSCS_SA_PROBE: rc })).exitCode, 7);
  assert.is((await cscsSa(['match', 'sa-ela'], { ...world.env, CSCS_SA_PROBE: join(world.home.dir, 'cscs-sa-probe-absent') })).exitCode, 7);
  assert.is(readFileSync(probe, 'utf8').split('\n').length, 2, 'nothing more was written');
  assert.is(readFileSync(rc, 'utf8'), '');
});

test.run();
