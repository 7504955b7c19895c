/**
 * The clock offset learned from the gateway's Date header is an upper bound: a certificate is
 * judged by a gateway clock never earlier than the real one, so it is refreshed early, never
 * presented late. A gateway (or a runner) slow to answer must not pull the offset down, and a
 * Date in any of HTTP's three forms means the same instant wherever the runner is.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Deadline } from '../../src/base/deadline.ts';
import { httpDateMs, probeGateway, requestCertificate } from '../../src/refresh/gateway.ts';

const HOUR_MS = 3600_000;

/**
 * A gateway on this machine's clock (the true offset is 0) that stamps its Date late and sends its
 * body later still; its token reply carries a Date an hour behind, as a cache in front might.
 */
const server = createServer((req, res) => {
  req.resume();
  void (async () => {
    if (req.url?.endsWith('/auth/token')) {
      res.writeHead(200, { date: new Date(Date.now() - HOUR_MS).toUTCString(), 'content-type': 'application/json' });
      res.end('{"access_token":"unit-test-token"}');
      return;
    }
    await sleep(300);
    res.writeHead(200, { date: new Date().toUTCString(), 'content-type': 'application/json' });
    res.flushHeaders();
    await sleep(700);
    res.end(req.method === 'POST' ? '{"sshKey":{"publicKey":"ssh-ed25519-cert-v01@openssh.com AAAA"}}' : 'ok');
  })();
});
test.before(() => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve)));
test.after(() => new Promise<void>((resolve) => server.close(() => resolve())));

function options() {
  return { baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, timeoutSeconds: 10, connectTimeoutSeconds: 5, userAgent: 'unit' };
}

function assertBound(offsetMs: number | undefined, roundTripMs: number): void {
  assert.ok(offsetMs !== undefined && offsetMs >= 0, `offset ${offsetMs} ms: the gateway's clock thought earlier than it is`);
  assert.ok(offsetMs <= 1000 + roundTripMs, `offset ${offsetMs} ms, round trip ${roundTripMs} ms`);
}

test('a reply stamped 0.3 s after the request and read 0.7 s after that: the offset is between 0 and the second plus the round trip', async () => {
  const started = Date.now();
  const { clockOffsetMs } = await probeGateway(options());
  assertBound(clockOffsetMs, Date.now() - started);
});

test("a refresh learns the offset from the sign reply, the one that dates the certificate, not the token reply's", async () => {
  const started = Date.now();
  const signed = await requestCertificate({ value: 'unit-test-key', source: 'a test' }, 'ssh-ed25519 AAAA', options(), new Deadline(10));
  assertBound(signed.clockOffsetMs, Date.now() - started);
});

test("HTTP's three date forms are GMT, asctime's too, whatever the runner's time zone; anything else is no date", () => {
  const tz = process.env.TZ;
  process.env.TZ = 'Europe/Zurich';
  try {
    const at = Date.UTC(1994, 10, 6, 8, 49, 37);
    for (const text of ['Sun, 06 Nov 1994 08:49:37 GMT', 'Sunday, 06-Nov-94 08:49:37 GMT', 'Sun Nov  6 08:49:37 1994']) assert.is(httpDateMs(text), at, text);
    for (const text of ['0', '1994', '1994-11-06T08:49:37Z', 'Sun, 06 Nov 1994 08:49:37 +0100', 'soon', '']) assert.ok(Number.isNaN(httpDateMs(text)), text);
  } finally {
    if (tz === undefined) delete process.env.TZ;
    else process.env.TZ = tz;
  }
});

test.run();
