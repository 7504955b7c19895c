/**
 * The gateway's retry rules: Retry-After in both its forms, the spacing of retries (never under
 * the floor, exponential with jitter, capped), at most 4 attempts per call, none that would not
 * fit the deadline; and one call against an in-process HTTP server that keeps failing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { nextRetryMs, requestCertificate, retryAfterMs, retryDelayMs } from '../../src/refresh/gateway.ts';
import { Deadline } from '../../src/base/deadline.ts';
import { GatewayUnavailableError } from '../../src/base/errors.ts';

const NOW = Date.parse('2026-12-07T12:00:00Z');

test('Retry-After as delta-seconds is that many seconds', () => {
  assert.is(retryAfterMs('3', NOW), 3000);
  assert.is(retryAfterMs(' 0 ', NOW), 0);
});

test('Retry-After as an HTTP date is the time until then, by the given clock; a past date is 0', () => {
  assert.is(retryAfterMs('Mon, 07 Dec 2026 12:00:05 GMT', NOW), 5000);
  assert.is(retryAfterMs('Mon, 07 Dec 2026 11:59:00 GMT', NOW), 0);
});

test('anything else is no Retry-After at all: negative, a date without a weekday or month name, garbage, empty', () => {
  for (const value of ['-1', '2026-12-08', '1.5', 'soon', '', '   ', undefined]) assert.is(retryAfterMs(value, NOW), undefined, String(value));
});

test('a retry never comes sooner than 250 ms, whatever Retry-After says', () => {
  assert.is(retryDelayMs(0, 0, 0), 250);
  assert.is(retryDelayMs(2, 0, 0), 250);
});

test('Retry-After is honoured, plus up to 250 ms of jitter', () => {
  assert.is(retryDelayMs(0, 3000, 0), 3000);
  assert.is(retryDelayMs(0, 3000, 1), 3250);
});

test('without Retry-After the step doubles per attempt up to 2 s, jittered between half and all of it', () => {
  assert.equal([0, 1, 2, 3, 4].map((attempt) => retryDelayMs(attempt, undefined, 1)), [500, 1000, 2000, 2000, 2000]);
  assert.equal([0, 1, 2].map((attempt) => retryDelayMs(attempt, undefined, 0)), [250, 500, 1000]);
  const jittered = retryDelayMs(1, undefined, 0.5);
  assert.ok(jittered > 500 && jittered < 1000, String(jittered));
});

test('at most 4 attempts: after the 4th (attempt 3) there is no retry', () => {
  assert.type(nextRetryMs(0, undefined, 60_000, 0), 'number');
  assert.type(nextRetryMs(2, undefined, 60_000, 0), 'number');
  assert.is(nextRetryMs(3, undefined, 60_000, 0), undefined);
  assert.is(nextRetryMs(3, 0, 60_000, 0), undefined);
});

test('no retry whose wait and the attempt after it (500 ms) do not fit what is left of the deadline', () => {
  assert.is(nextRetryMs(0, 3000, 3500, 0), 3000);
  assert.is(nextRetryMs(0, 3000, 3499, 0), undefined);
  assert.is(nextRetryMs(0, undefined, 749, 0), undefined);
});

let server: Server;
let requests = 0;

test.before(async () => {
  server = createServer((req, res) => {
    requests++;
    req.resume();
    res.writeHead(503, { 'retry-after': '0', 'content-type': 'application/json' });
    res.end('{"message":"down for maintenance"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});

test.after(() => new Promise<void>((resolve) => server.close(() => resolve())));

test('a gateway that keeps answering 503 gets 4 requests, then one line naming the attempts', async () => {
  const { port } = server.address() as AddressInfo;
  const options = { baseUrl: `http://127.0.0.1:${port}`, timeoutSeconds: 30, connectTimeoutSeconds: 5, userAgent: 'unit' };
  requests = 0;
  const apiKey = { value: 'unit-test-key', source: 'a test' };
  const err = await requestCertificate(apiKey, 'ssh-ed25519 AAAA', options, new Deadline(30)).catch((e: unknown) => e);
  assert.instance(err, GatewayUnavailableError);
  assert.is((err as GatewayUnavailableError).message, `gateway 127.0.0.1:${port} failed (503): down for maintenance after 4 attempt(s)`);
  assert.is(requests, 4);
});

test.run();
