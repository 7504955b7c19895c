/**
 * The refresh path against the gateway double, as a user sees it: `cscs-sa match` and
 * `cscs-sa sign` with a fresh HOME, their exit code, their one line on stderr, and what is left
 * on disk.
 */
import * as assert from 'uvu/assert';
import { chmodSync, chownSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { execaSync } from 'execa';
import { connect, createServer } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { parseCertificate, parsePublicKey, certifies } from '../../src/core/certificate.ts';
import { gatewaySuite, skipTest } from '../helpers/suites.ts';
import { cscsSa, type Home } from '../helpers/cli.ts';
import { certificateInPlace, withKeyPair } from '../helpers/prepared.ts';

const API_KEY = 'sa-test-key-0123456789abcdef';
const { gw, test } = gatewaySuite('gateway', API_KEY);

function certText(home: Home): string {
  return readFileSync(home.cert, 'utf8');
}

/**
 * A certificate in place that is valid but inside a huge refresh margin, so every sign refreshes.
 * (`match` would only try, briefly, and go on with it: see the outage tests.)
 */
async function expiringCertificate(ctx: { home: Home; env: Record<string, string> }): Promise<string> {
  const text = await certificateInPlace(ctx.home, gw);
  ctx.env.CSCS_SA_REFRESH_MARGIN = '3600';
  return text;
}

test('from nothing: creates the key pair and fetches a certificate for it, token and sign over one connection (one TLS handshake against the real gateway); while fresh, it costs no gateway call', async ({ home, env }) => {
  const r = await cscsSa(['match', 'sa-clariden'], env);
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(r.stderr, '');
  assert.is(r.stdout, '');
  assert.is(statSync(home.key).mode & 0o777, 0o600);
  const pub = parsePublicKey(readFileSync(home.pub, 'utf8'));
  assert.is(pub.type, 'ssh-ed25519');
  const cert = parseCertificate(certText(home));
  assert.ok(certifies(cert, pub));
  assert.equal(cert.principals, [userInfo().username]);

  assert.is(gw.tokenCalls, 1);
  assert.is(gw.signCalls, 1);
  assert.is(gw.requests.length, 2);
  assert.is(gw.connections, 1);
  const [token, sign] = gw.requests;
  assert.is(token!.headers['x-api-key'], API_KEY);
  assert.is(token!.headers['x-client-type'], 'cli');
  assert.match(String(token!.headers['user-agent']), /^cscs-sa\/\d+\.\d+\.\d+ /);
  const body = JSON.parse(sign!.body);
  assert.equal(Object.keys(body).sort(), ['duration', 'publicKey']);
  assert.is(body.duration, '1min');
  assert.is(body.publicKey, readFileSync(home.pub, 'utf8').trim().split(' ').slice(0, 2).join(' '));

  // The certificate it wrote is fresh. Twice: the first fresh run must not leave anything that
  // makes the next one refresh.
  gw.reset();
  for (let i = 0; i < 2; i++) assert.is((await cscsSa(['match', 'sa-ela'], env)).exitCode, 0);
  assert.is(gw.requests.length, 0);
});

// Starts from a certificate as a refresh leaves it: the sign that makes one from nothing prints
// the same line as the forced one here (and says it created a key pair: habits.test.ts).
test('sign prints path, principals, serial and seconds left; --force refreshes with the existing key pair, never a new one', async ({ home, env }) => {
  await certificateInPlace(home, gw);
  const key = readFileSync(home.key, 'utf8');
  const line = `^${home.cert} principals=${userInfo().username} serial=\\d+ (5\\d|60)s left`;
  const again = await cscsSa(['sign'], env);
  assert.is(again.exitCode, 0, again.stderr);
  assert.match(again.stdout, new RegExp(`${line} \\(already fresh\\)\\n$`));
  const forced = await cscsSa(['sign', '--force'], env);
  assert.is(forced.exitCode, 0, forced.stderr);
  assert.match(forced.stdout, new RegExp(`${line}\\n$`));
  assert.is(gw.signCalls, 1);
  assert.is(readFileSync(home.key, 'utf8'), key, 'the key pair is used, never replaced');
  assert.ok(certifies(parseCertificate(certText(home)), parsePublicKey(readFileSync(home.pub, 'utf8'))));
});

test('API key rejected (401): one line naming the key source, exit 4, no retry', async ({ home, env }) => {
  withKeyPair(home);
  env.CSCS_API_KEY = 'wrong-key-123456';
  const r = await cscsSa(['match'], env);
  assert.is(r.exitCode, 4);
  assert.is(r.stderr, 'cscs-sa: API key rejected (401): Invalid API key: check CSCS_API_KEY\n');
  assert.is(gw.tokenCalls, 1);
});

test('service account disabled (403): says so, exit 4, no retry', async ({ home, env }) => {
  withKeyPair(home);
  gw.faults.token.push({ status: 403, body: '{"message":"Service account is disabled"}' });
  const r = await cscsSa(['match'], env);
  assert.is(r.exitCode, 4);
  assert.match(r.stderr, /^cscs-sa: service account disabled \(403\): Service account is disabled: ask your project's PI/);
  assert.is(gw.tokenCalls, 1);
});

test('no API key anywhere: says where to put one', async ({ home, env }) => {
  withKeyPair(home);
  delete env.CSCS_API_KEY;
  const r = await cscsSa(['match'], env);
  assert.is(r.exitCode, 4);
  assert.match(r.stderr, /^cscs-sa: no API key: set CSCS_API_KEY/);
});

test('a server that wants the documented public_key body (422) gets it on a second try', async ({ home, env }) => {
  withKeyPair(home);
  gw.faults.sign.push({ snakeCaseOnly: true });
  const r = await cscsSa(['match'], env);
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(gw.signCalls, 2);
  assert.ok(JSON.parse(gw.requests.at(-1)!.body).public_key);
  assert.ok(parseCertificate(certText(home)));
});

// One refresh meets both faults: each is retried on its own (a reset sign does not buy a new token).
test('a single 503 (token) and a connection reset mid-body (sign) are each retried, and the refresh succeeds', async ({ home, env }) => {
  withKeyPair(home);
  gw.faults.token.push({ status: 503 });
  gw.faults.sign.push({ resetMidBody: true });
  const r = await cscsSa(['match'], env);
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(gw.tokenCalls, 2);
  assert.is(gw.signCalls, 2);
});

// A past date reads as 0, like "0" (test/unit/retry.test.ts): "0" and a negative value (no
// Retry-After at all) are the two ways into the wait.
for (const [form, value] of [
  ['0', () => '0'],
  ['negative', () => '-5'],
] as const) {
  test(`a persistent 503 with Retry-After ${form}: backs off from a floor, a few attempts, no busy loop`, async ({ home, env }) => {
    withKeyPair(home);
    for (let i = 0; i < 200; i++) gw.faults.token.push({ status: 503, headers: { 'retry-after': value() } });
    const started = Date.now();
    const r = await cscsSa(['match'], env);
    const elapsed = Date.now() - started;
    assert.is(r.exitCode, 5);
    assert.match(r.stderr, /failed \(503\).* after \d attempt\(s\): try again later\n$/);
    // Each wait is at least the 250 ms floor; the attempts are capped at 4 per call.
    assert.ok(gw.tokenCalls >= 2 && gw.tokenCalls <= 4, `${gw.tokenCalls} calls`);
    const times = gw.requests.map((q) => q.atMs);
    for (let i = 1; i < times.length; i++) assert.ok(times[i]! - times[i - 1]! >= 240, `gap ${times[i]! - times[i - 1]!} ms`);
    console.log(`    Retry-After ${form}: ${gw.tokenCalls} calls in ${elapsed} ms`);
  });
}

// A 10 s deadline: a 3 s one, on a loaded machine, left too little after a slow start for the
// wait. The date is set once the first answer is out, 4 s ahead: counted from the test's start, a
// slow start of the CLI left less than the second the assertion asks for.
test('a 429 with Retry-After in seconds, then a 503 with an HTTP date: each waited out, then success', async ({ home, env }) => {
  withKeyPair(home);
  env.CSCS_SA_TIMEOUT = '10';
  gw.faults.token.push({ status: 429, headers: { 'retry-after': '1' } });
  const run = cscsSa(['match'], env);
  while (gw.requests.length === 0) await sleep(20);
  gw.faults.token.push({ status: 503, headers: { 'retry-after': new Date(Date.now() + 4000).toUTCString() } });
  const r = await run;
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(gw.tokenCalls, 3);
  const [a, b, c] = gw.requests.map((q) => q.atMs) as [number, number, number];
  assert.ok(b - a >= 1000, `waited ${b - a} ms for Retry-After: 1`);
  // An HTTP date has one-second resolution: at least the rest of its second.
  assert.ok(c - b >= 1000, `waited ${c - b} ms for the date`);
});

test('429 with a Retry-After beyond the deadline fails at once, naming the wait', async ({ home, env }) => {
  withKeyPair(home);
  gw.faults.token.push({ status: 429, headers: { 'retry-after': '120' } });
  const r = await cscsSa(['match'], env);
  assert.is(r.exitCode, 5);
  assert.match(r.stderr, /^cscs-sa: gateway 127\.0\.0\.1:\d+ is rate limiting \(429\): retry after 120 s\n$/);
  assert.is(gw.tokenCalls, 1);
});

test('persistent 500: clear error within the deadline, valid certificate untouched', async (ctx) => {
  const before = await expiringCertificate(ctx);
  for (let i = 0; i < 50; i++) gw.faults.token.push({ status: 500 });
  const r = await cscsSa(['sign'], ctx.env);
  // From the first request, which the deadline started before: Node's start on a loaded machine is no part of it.
  const elapsed = Date.now() - gw.requests[0]!.atMs;
  assert.is(r.exitCode, 5);
  assert.match(r.stderr, /^cscs-sa: gateway 127\.0\.0\.1:\d+ failed \(500\): scripted 500 after \d+ attempt\(s\): try again later\n$/);
  assert.ok(gw.tokenCalls >= 2, `retried (${gw.tokenCalls} calls)`);
  assert.ok(elapsed < 3000 + 1000, `within the 3 s deadline (${elapsed} ms from the first request to the exit)`);
  assert.is(certText(ctx.home), before);
});

test('an HTML maintenance page is named as such, not parsed', async ({ home, env }) => {
  withKeyPair(home);
  for (let i = 0; i < 50; i++) gw.faults.token.push({ status: 503, headers: { 'content-type': 'text/html' }, body: '<html><body>Maintenance</body></html>' });
  const r = await cscsSa(['match'], env);
  assert.is(r.exitCode, 5);
  assert.match(r.stderr, /HTML page: maintenance or a proxy\?/);
});

test('a gateway that accepts and never answers: timeout message after the configured time', async ({ home, env }) => {
  withKeyPair(home);
  gw.faults.token.push({ hang: true });
  env.CSCS_SA_TIMEOUT = '2';
  const started = Date.now();
  const r = await cscsSa(['match'], env);
  const elapsed = Date.now() - started;
  assert.is(r.exitCode, 5);
  assert.match(r.stderr, /^cscs-sa: gateway 127\.0\.0\.1:\d+ did not answer in 2 s: check the network or HTTPS_PROXY, or raise "timeout"\n$/);
  assert.ok(elapsed >= 1900 && elapsed < 4000, `${elapsed} ms`);
});

test('connection refused: says so, exit 5', async ({ home, env }) => {
  withKeyPair(home);
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  env.CSCS_AUTHX_URL = `http://127.0.0.1:${port}`;
  env.CSCS_SA_TIMEOUT = '2';
  const r = await cscsSa(['match'], env);
  assert.is(r.exitCode, 5);
  assert.match(r.stderr, new RegExp(`^cscs-sa: cannot reach gateway 127\\.0\\.0\\.1:${port}: connection refused\\n$`));
});

// The two ways a certificate is refused: it does not parse, or judge finds it unusable (another
// key and a host certificate are judged the same way: test/unit/certificate.test.ts).
for (const kind of ['garbage', 'expired'] as const) {
  test(`a 2xx with a ${kind} certificate is rejected and the old file kept`, async (ctx) => {
    const before = await expiringCertificate(ctx);
    gw.faults.sign.push({ certificate: kind });
    const r = await cscsSa(['sign'], ctx.env);
    assert.is(r.exitCode, 6);
    const why = { garbage: 'does not parse', expired: 'expired' }[kind];
    assert.match(r.stderr, new RegExp(`^cscs-sa: gateway sent (a|an unusable) certificate.*${why}.*the previous certificate was kept\\n$`));
    assert.is(certText(ctx.home), before);
  });
}

test('a 2xx whose body is not JSON is one line, exit 6', async ({ home, env }) => {
  withKeyPair(home);
  gw.faults.sign.push({ status: 201, body: 'OK!' });
  const r = await cscsSa(['match'], env);
  assert.is(r.exitCode, 6);
  assert.is(r.stderr, 'cscs-sa: sign request answered 201 without a certificate (the gateway answered with an unexpected body)\n');
});

test('apiKeyFile is refused unless 0600, and used when it is', async ({ home, env }) => {
  withKeyPair(home);
  delete env.CSCS_API_KEY;
  const keyFile = join(home.dir, 'api-key');
  writeFileSync(keyFile, `${API_KEY}\n`, { mode: 0o644 });
  chmodSync(keyFile, 0o644);
  mkdirSync(join(home.dir, '.config', 'cscs-sa'), { recursive: true });
  writeFileSync(join(home.dir, '.config', 'cscs-sa', 'config.json'), JSON.stringify({ apiKeyFile: keyFile }));
  const loose = await cscsSa(['match'], env);
  assert.is(loose.exitCode, 4);
  assert.is(loose.stderr, `cscs-sa: API key file ${keyFile} has permissions 0644, readable by others: run chmod 600 ${keyFile}\n`);
  chmodSync(keyFile, 0o600);
  const ok = await cscsSa(['match'], env);
  assert.is(ok.exitCode, 0, ok.stderr);
  // A FIFO at the path is refused at once instead of blocking the refresh.
  rmSync(keyFile);
  execaSync('mkfifo', ['-m', '600', keyFile]);
  rmSync(home.cert);
  const fifo = await cscsSa(['match'], env, { timeout: 10_000 });
  assert.is(fifo.exitCode, 4);
  assert.is(fifo.stderr, `cscs-sa: API key file ${keyFile} is not a regular file: point apiKeyFile at a file holding the key\n`);
});

const foreignKeyFile = 'an apiKeyFile of another user is refused like a loose one, exit 4';
if (process.getuid?.() !== 0) skipTest(foreignKeyFile, 'needs root to chown the file');
else test(foreignKeyFile, async ({ home, env }) => {
  withKeyPair(home);
  delete env.CSCS_API_KEY;
  const keyFile = join(home.dir, 'api-key');
  writeFileSync(keyFile, `${API_KEY}\n`, { mode: 0o600 });
  mkdirSync(join(home.dir, '.config', 'cscs-sa'), { recursive: true });
  writeFileSync(join(home.dir, '.config', 'cscs-sa', 'config.json'), JSON.stringify({ apiKeyFile: keyFile }));
  // Another user's file could hand us a key of their choosing: refused like a loose one.
  chownSync(keyFile, 65534, 65534);
  const foreign = await cscsSa(['match'], env);
  assert.is(foreign.exitCode, 4);
  assert.is(foreign.stderr, `cscs-sa: API key file ${keyFile} belongs to another user (uid 65534): keep the API key in a file of your own, mode 0600\n`);
});

test('a malformed config file is one line naming the file, exit 3', async ({ home, env }) => {
  mkdirSync(join(home.dir, '.config', 'cscs-sa'), { recursive: true });
  const file = join(home.dir, '.config', 'cscs-sa', 'config.json');
  writeFileSync(file, '{ "timeout": 5, }');
  const r = await cscsSa(['match'], env);
  assert.is(r.exitCode, 3);
  assert.match(r.stderr, new RegExp(`^cscs-sa: cannot read config file ${file}: .+\\n$`));
  writeFileSync(file, '{ "timeuot": 5 }');
  const typo = await cscsSa(['match'], env);
  assert.is(typo.exitCode, 3);
  assert.match(typo.stderr, /unknown setting "timeuot"/);
});

test('flag > environment > config file for the key path', async ({ home, env }) => {
  mkdirSync(join(home.dir, '.config', 'cscs-sa'), { recursive: true });
  writeFileSync(join(home.dir, '.config', 'cscs-sa', 'config.json'), JSON.stringify({ key: '~/from-config' }));
  const status = async (args: string[]) => JSON.parse((await cscsSa(['status', '--json', ...args], env)).stdout)[0].key;
  assert.is(await status([]), join(home.dir, 'from-config'));
  env.CSCS_SA_KEY = join(home.dir, 'from-env');
  assert.is(await status([]), join(home.dir, 'from-env'));
  assert.is(await status(['-f', join(home.dir, 'from-flag')]), join(home.dir, 'from-flag'));
});

test('HTTP(S)_PROXY is used for the gateway, and NO_PROXY bypasses it', async ({ home, env }) => {
  withKeyPair(home);
  // A CONNECT proxy, as on CI runners behind a corporate proxy, that counts what it tunnels.
  const tunnels: string[] = [];
  const proxy = createHttpServer();
  proxy.on('connect', (req, client, head) => {
    tunnels.push(String(req.url));
    const [host, port] = String(req.url).split(':');
    const upstream = connect(Number(port), host!, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  const proxyUrl = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
  try {
    const via = await cscsSa(['sign', '--force'], { ...env, HTTP_PROXY: proxyUrl, HTTPS_PROXY: proxyUrl });
    assert.is(via.exitCode, 0, via.stderr);
    assert.ok(tunnels.length >= 1, 'the gateway was reached through the proxy');
    assert.ok(tunnels.every((t) => t === new URL(gw.url).host));
    tunnels.length = 0;
    const direct = await cscsSa(['sign', '--force'], { ...env, HTTP_PROXY: proxyUrl, HTTPS_PROXY: proxyUrl, NO_PROXY: '127.0.0.1' });
    assert.is(direct.exitCode, 0, direct.stderr);
    assert.is(tunnels.length, 0, 'NO_PROXY bypassed the proxy');
  } finally {
    proxy.close();
    proxy.closeAllConnections();
  }
});

test.run();
