/**
 * What an attacker on the same machine or network could try against a refresh, and what the
 * user sees: certificates checked as sshd checks them before they replace a good one, a key pair
 * checked as ssh checks it, and failures mapped to the documented exit codes.
 */
import * as assert from 'uvu/assert';
import { execa } from 'execa';
import { chmodSync, chownSync, readFileSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { gatewaySuite, type HomeContext } from '../helpers/suites.ts';
import { cscsSa } from '../helpers/cli.ts';
import { certificateInPlace, withKeyPair } from '../helpers/prepared.ts';
import { parseCertificate } from '../../src/core/certificate.ts';
import { certificateLine, TestCa } from '../helpers/certs.ts';

const API_KEY = 'sa-hardening-key-0123456789';
const { gw, test } = gatewaySuite('hardening', API_KEY);

/** A certificate in place, then a margin that makes the next match refresh it. */
async function expiringCertificate(ctx: HomeContext): Promise<string> {
  const text = await certificateInPlace(ctx.home, gw);
  ctx.env.CSCS_SA_REFRESH_MARGIN = '3600';
  return text;
}

/** Re-issues the double's certificate with another CA (a valid signature) and one property wrong. */
function resigned(extra: object): (line: string) => string {
  const ca = new TestCa('ed25519');
  return (line) => {
    const { type, keyFields } = parseCertificate(line);
    return certificateLine({ type, keyFields, ...extra }, ca);
  };
}

// The other cert_parse refusals (a NUL in a principal or the key id, 257 principals, malformed
// critical options, repeated extensions) are one catch in src/refresh/refresh.ts checkSigned, with
// the parser's reason: each reason is asserted in certificate.test.ts, and what a user sees when
// a refresh meets one (exit 6, the previous certificate kept) in gateway.test.ts's garbage case.
// A bad signature is the other catch.
test('a certificate with a forged CA signature is refused, exit 6, and the previous one kept byte for byte', async (ctx) => {
  const before = await expiringCertificate(ctx);
  gw.faults.sign.push({ certificate: 'forged' });
  // sign, not match: match uses a certificate still valid when its refresh fails (exit 0, one line).
  const r = await cscsSa(['sign'], ctx.env);
  assert.is(r.exitCode, 6);
  assert.is(r.stderr, 'cscs-sa: gateway sent a certificate with a bad CA signature (the CA signature does not verify); the previous certificate was kept\n');
  assert.is(gw.signCalls, 1);
  assert.is(readFileSync(ctx.home.cert, 'utf8'), before);
});

test('a .pub that belongs to another key: exit 7 with the fix, nothing sent to the gateway', async ({ home, env }) => {
  await certificateInPlace(home, gw);
  const other = join(home.dir, 'other');
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
  writeFileSync(home.pub, readFileSync(`${other}.pub`));
  const before = readFileSync(home.cert, 'utf8');
  const r = await cscsSa(['sign', '--force'], env);
  assert.is(r.exitCode, 7);
  assert.is(r.stderr, `cscs-sa: ${home.pub} is not the public key of ${home.key}: replace it with the private key's own: ssh-keygen -y -f ${home.key} > ${home.pub}\n`);
  assert.is(gw.tokenCalls + gw.signCalls, 0);
  assert.is(readFileSync(home.cert, 'utf8'), before);
  // The fix it names works.
  writeFileSync(home.pub, (await execa('ssh-keygen', ['-y', '-f', home.key])).stdout + '\n');
  const fixed = await cscsSa(['sign', '--force'], env);
  assert.is(fixed.exitCode, 0, fixed.stderr);
});

test('a private key replaced under a matching old certificate is checked again', async ({ home, env }) => {
  await certificateInPlace(home, gw);
  // Same .pub, same certificate, but another private key: only the key's ctime tells.
  const other = join(home.dir, 'other');
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
  writeFileSync(home.key, readFileSync(other), { mode: 0o600 });
  const r = await cscsSa(['sign', '--force'], env);
  assert.is(r.exitCode, 7);
  assert.match(r.stderr, /is not the public key of/);
});

test('a private key reached through a symlink is judged by the file it points to', async ({ home, env }) => {
  await certificateInPlace(home, gw);
  const real = join(home.dir, 'real-key');
  renameSync(home.key, real);
  symlinkSync(real, home.key);
  chmodSync(real, 0o644);
  const r = await cscsSa(['sign', '--force'], env);
  assert.is(r.exitCode, 7);
  assert.is(r.stderr, `cscs-sa: key ${home.key} has permissions 0644, which ssh refuses: run chmod 600 ${home.key}\n`);
  chmodSync(real, 0o600);
  assert.is((await cscsSa(['sign', '--force'], env)).exitCode, 0);
});

if (process.getuid?.() === 0) {
  test('a private key another user owns is refused, exit 7', async ({ home, env }) => {
    await certificateInPlace(home, gw);
    chownSync(home.key, 65534, 65534);
    const r = await cscsSa(['sign', '--force'], env);
    assert.is(r.exitCode, 7);
    assert.is(r.stderr, `cscs-sa: key ${home.key} belongs to another user (uid 65534): use a key of your own (cscs-sa creates one at a path where none exists)\n`);
  });
} else {
  console.log("    SKIPPED: a key owned by another user needs root to chown it: not run");
}

test('an API key with characters beyond ASCII: exit 4, "cannot be sent", nothing sent', async ({ home, env }) => {
  withKeyPair(home);
  const r = await cscsSa(['match'], { ...env, CSCS_API_KEY: 'sa-ключ-0123456789' });
  assert.is(r.exitCode, 4);
  assert.is(r.stderr, 'cscs-sa: API key from CSCS_API_KEY contains characters that cannot be sent (only printable ASCII can): check it\n');
  assert.is(gw.requests.length, 0);
});

test('an oversized gateway answer is named as such, not as an HTML page', async ({ home, env }) => {
  withKeyPair(home);
  gw.faults.token.push({ status: 200, body: `<${'x'.repeat(2 << 20)}` });
  const r = await cscsSa(['match'], env);
  assert.is(r.exitCode, 6);
  assert.is(r.stderr, "cscs-sa: token request answered 200 without an access token (the gateway's answer was larger than 1 MiB, so it was not read)\n");
});

/** A server that says one line and closes; `cscs-sa proxy OPTIONS` run against it. */
async function proxyTo(options: string[], env: Record<string, string>) {
  const server = createServer((socket) => {
    socket.on('error', () => {}); // the proxy may reset once it has relayed the line
    socket.end('hello\n');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    return await cscsSa(['proxy', ...options, '127.0.0.1', String((server.address() as { port: number }).port)], env, { stdin: 'pipe' });
  } finally {
    server.close();
  }
}

function proxyWithLog(file: string, env: Record<string, string>) {
  return proxyTo(['--log', file], env);
}

test('agent mode with a certificate valid for a day: loaded for one hour, the agent drops it some day', async ({ home, env }) => {
  const socket = join(home.dir, 'agent.sock');
  withKeyPair(home);
  const agent = await execa('ssh-agent', ['-s', '-a', socket]);
  const agentPid = Number(/SSH_AGENT_PID=(\d+)/.exec(String(agent.stdout))![1]);
  try {
    const agentEnv = { ...env, SSH_AUTH_SOCK: socket, DEBUG: 'cscs-sa:agent' };
    const now = BigInt(Math.floor(Date.now() / 1000));
    gw.faults.sign.push({ rewrite: resigned({ validAfter: now - 5n, validBefore: now + 86_400n }) });
    const r = await proxyTo(['--agent'], agentEnv);
    assert.is(r.exitCode, 0, r.stderr);
    assert.is(r.stdout, 'hello\n');
    assert.match(r.stderr, /loaded .* into the agent for 3600 s/);
    const listed = await execa('ssh-add', ['-l'], { env: agentEnv, extendEnv: false });
    assert.match(String(listed.stdout), /\(ED25519-CERT\)/);
  } finally {
    process.kill(agentPid);
  }
});

test('--log through a planted symlink: refused in one line, the target untouched, the connection relayed', async ({ home, env }) => {
  const victim = join(home.dir, 'victim');
  writeFileSync(victim, 'precious\n');
  const log = join(home.dir, 'cscs-sa.log');
  symlinkSync(victim, log);
  const r = await proxyWithLog(log, env);
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(r.stdout, 'hello\n');
  assert.is(r.stderr, `cscs-sa: log file ${log} is a symbolic link: point --log at a file in a folder of your own, e.g. ~/.ssh/cscs-sa-proxy.log; relaying without a log\n`);
  assert.is(readFileSync(victim, 'utf8'), 'precious\n');
});

test('--log at a FIFO planted there: refused at once, not waited on; the connection relayed', async ({ home, env }) => {
  const log = join(home.dir, 'fifo.log');
  await execa('mkfifo', [log]);
  const r = await proxyWithLog(log, env);
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(r.stdout, 'hello\n');
  assert.is(r.stderr, `cscs-sa: log file ${log} is not a regular file: point --log at a file in a folder of your own, e.g. ~/.ssh/cscs-sa-proxy.log; relaying without a log\n`);
});

test('--log to a file of our own: created 0600, appended to', async ({ home, env }) => {
  const log = join(home.dir, 'proxy.log');
  for (let i = 0; i < 2; i++) {
    const r = await proxyWithLog(log, env);
    assert.is(r.exitCode, 0, r.stderr);
    assert.is(r.stderr, '');
  }
  assert.is(statSync(log).mode & 0o777, 0o600);
  assert.is(readFileSync(log, 'utf8').match(/cscs-sa:proxy exit: /g)?.length, 2);
});

if (process.getuid?.() === 0) {
  test('--log to a file another user owns: refused, the file untouched, the connection relayed', async ({ home, env }) => {
    const log = join(home.dir, 'theirs.log');
    writeFileSync(log, 'theirs\n', { mode: 0o666 });
    chmodSync(log, 0o666);
    chownSync(log, 65534, 65534);
    const r = await proxyWithLog(log, env);
    assert.is(r.exitCode, 0, r.stderr);
    assert.is(r.stdout, 'hello\n');
    assert.is(r.stderr, `cscs-sa: log file ${log} belongs to another user (uid 65534): point --log at a file in a folder of your own, e.g. ~/.ssh/cscs-sa-proxy.log; relaying without a log\n`);
    assert.is(readFileSync(log, 'utf8'), 'theirs\n');
  });
} else {
  console.log("    SKIPPED: --log to another user's file needs root to chown it: not run");
}

test('control characters in a principal or the key id are shown escaped, never sent to the terminal', async ({ home, env }) => {
  withKeyPair(home);
  const ca = new TestCa('ed25519');
  const now = BigInt(Math.floor(Date.now() / 1000));
  gw.faults.sign.push({
    rewrite: (line) => {
      const { type, keyFields, principals } = parseCertificate(line);
      return certificateLine({ type, keyFields, principals: [...principals, 'x\x1b[2J\ny'], keyId: 'id\x07', validAfter: now - 5n, validBefore: now + 60n }, ca);
    },
  });
  const signed = await cscsSa(['sign'], env);
  assert.is(signed.exitCode, 0, signed.stderr);
  assert.match(signed.stdout, /^\S+-cert\.pub principals=\S+,x\\x1b\[2J\\x0ay serial=\d+ \d+s left\n$/);
  const status = await cscsSa(['status'], env);
  assert.match(status.stdout, /^principals {3}\S+, x\\x1b\[2J\\x0ay$/m);
  for (const out of [signed.stdout, signed.stderr, status.stdout, status.stderr]) assert.not.match(out, /[\x07\x1b]/);
  assert.ok(readFileSync(home.cert, 'utf8').startsWith('ssh-ed25519-cert-v01@openssh.com '));
});

test.run();
