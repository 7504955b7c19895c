/**
 * The part of undici the gateway client needs, without undici's index: that loads fetch,
 * WebSocket, caches and mocks too, 70-100 ms of start-up on a path that runs every minute
 * (docs/performance.md). scripts/build.js bundles these modules, so the internals imported here
 * are frozen at the version the tests ran against.
 */
import Dispatcher from 'undici/lib/dispatcher/dispatcher.js';
import api from 'undici/lib/api/index.js';
import EnvHttpProxyAgent from 'undici/lib/dispatcher/env-http-proxy-agent.js';

// What undici's index does: request(), connect() and the rest live on every dispatcher, and
// ProxyAgent tunnels through connect().
Object.assign(Dispatcher.prototype, api);

export { EnvHttpProxyAgent };
