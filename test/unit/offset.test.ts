/**
 * The clock offset learned from the gateway's Date header is an upper bound: a certificate is
 * judged by a gateway clock never earlier than the real one, so it is refreshed early, never
 * presented late. A gateway (or a runner) slow to answer must not pull the offset down.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { probeGateway } from '../../src/refresh/gateway.ts';

/** A gateway on this machine's clock (the true offset is 0) that stamps its Date late and sends its body later still. */
const server = createServer((_req, res) => {
  void (async () => {
    await sleep(400);
    res.writeHead(200, { date: new Date().toUTCString(), 'content-type': 'text/plain' });
    res.flushHeaders();
    await sleep(1200);
    res.end('ok');
  })();
});
test.before(() => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve)));
test.after(() => new Promise<void>((resolve) => server.close(() => resolve())));

test('a reply stamped 0.4 s after the request and read 1.2 s after that: the offset is between 0 and the second plus the round trip', async () => {
  const { port } = server.address() as AddressInfo;
  const started = Date.now();
  const { clockOffsetMs } = await probeGateway({ baseUrl: `http://127.0.0.1:${port}`, timeoutSeconds: 10, connectTimeoutSeconds: 5, userAgent: 'unit' });
  const roundTrip = Date.now() - started;
  assert.ok(clockOffsetMs !== undefined && clockOffsetMs >= 0, `offset ${clockOffsetMs} ms: the gateway's clock thought earlier than it is`);
  assert.ok(clockOffsetMs <= 1000 + roundTrip, `offset ${clockOffsetMs} ms, round trip ${roundTrip} ms`);
});

test.run();
