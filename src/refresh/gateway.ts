/**
 * The CSCS authx gateway, in the official client's (cscs-key's) wire format: API key → access
 * token (POST /api-service-account/api/v1/auth/token, header X-API-Key) → certificate for our
 * public key (POST /api-ssh-service/api/v1/ssh-keys/sign, Bearer token, body {publicKey, duration}).
 *
 * One deadline covers the whole exchange, retries included. Retries happen only where repeating
 * the call is safe and might help: connection failures, 5xx, and 429 when its Retry-After fits.
 * Never on 401/403: a wrong key does not become right by asking again.
 */
import type { Dispatcher } from 'undici';
import { EnvHttpProxyAgent } from './http.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import type { ApiKey } from './apikey.js';
import { Deadline } from '../base/deadline.js';
import { ApiKeyError, errnoReason, GatewayResponseError, GatewayUnavailableError } from '../base/errors.js';
import { createLog, registerSecret } from '../base/log.js';

const log = createLog('gateway');

const TOKEN_PATH = '/api-service-account/api/v1/auth/token';
const SIGN_PATH = '/api-ssh-service/api/v1/ssh-keys/sign';
const MAX_BODY = 1 << 20;
/** What a reply's text is when its body was over MAX_BODY: no JSON or HTML body starts with a NUL. */
const OVERSIZED = '\0oversized body';

/**
 * Retries: never sooner than the floor, whatever Retry-After says (0, a negative number or a
 * past date would otherwise make a busy loop), an exponential step with jitter so that a crowd
 * does not come back in step, and a cap on attempts per call so that one refresh sends a bounded
 * number of requests to a gateway that is failing.
 */
const RETRY_FLOOR_MS = 250;
const RETRY_STEP_CAP_MS = 2000;
const MAX_ATTEMPTS = 4;

export interface GatewayOptions {
  baseUrl: string;
  timeoutSeconds: number;
  connectTimeoutSeconds: number;
  userAgent: string;
}

export interface SignedCertificate {
  /** The certificate line as the gateway sent it. */
  line: string;
  /** Gateway clock minus local clock in ms, never below the true offset (clockOffset); undefined without a Date header. */
  clockOffsetMs: number | undefined;
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** This machine's clock when the request left: the Date header was written after it. */
  sentAt: number;
}

const RETRYABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);

/**
 * undici's own timers for the headers and the body, which once() sets to what is left of the
 * deadline: when one of them fires first (undici's timers are coarse, and under load they beat
 * the deadline's abort), the deadline is what ran out, and the user is told so, not undici's code.
 */
const DEADLINE_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

function errorCode(err: unknown): string | undefined {
  const e = err as { code?: string; cause?: { code?: string } };
  return e?.code ?? e?.cause?.code;
}

/** What the gateway's failures mean beyond errnoReason's words: DNS, undici's own codes, a reset. */
const NETWORK_WORDS: Record<string, string> = {
  ENOTFOUND: 'host name not found (DNS)',
  EAI_AGAIN: 'DNS lookup failed for now',
  ECONNRESET: 'connection closed by the gateway or a proxy',
  UND_ERR_SOCKET: 'connection closed by the gateway or a proxy',
  UND_ERR_CLOSED: 'connection closed by the gateway or a proxy',
};

function describeNetworkError(err: unknown, connectTimeoutSeconds: number): string {
  const code = errorCode(err);
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return `no connection within ${connectTimeoutSeconds} s`;
  if (code && Object.hasOwn(NETWORK_WORDS, code)) return NETWORK_WORDS[code]!;
  if (code && /CERT|SSL|TLS|SELF_SIGNED|VERIFY/.test(code)) return `TLS failed (${code}): behind an inspecting proxy, point NODE_EXTRA_CA_CERTS at its CA`;
  return errnoReason(code ? { code } : err);
}

/** What the server said, safe for one line: its JSON `message`, or what kind of body it was. */
function describeBody(text: string, contentType: string | undefined): string {
  if (text === OVERSIZED) return ` (the gateway's answer was larger than ${MAX_BODY >> 20} MiB, so it was not read)`;
  const body = text.trim();
  if (body === '') return '';
  if (/html/i.test(contentType ?? '') || body.startsWith('<')) return ' (the gateway answered with an HTML page: maintenance or a proxy?)';
  try {
    const message = (JSON.parse(body) as { message?: unknown })?.message;
    if (typeof message === 'string' && message.trim()) {
      return `: ${message.replace(/[\x00-\x1f\x7f]+/g, ' ').trim().slice(0, 200)}`;
    }
  } catch {
    // Not JSON: say so rather than echo it.
  }
  return ' (the gateway answered with an unexpected body)';
}

function header(reply: Reply, name: string): string | undefined {
  const value = reply.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

const IMF_FIXDATE = /^[A-Za-z]{3}, \d{1,2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/;
const RFC850_DATE = /^[A-Za-z]{6,9}, \d{2}-[A-Za-z]{3}-\d{2} \d{2}:\d{2}:\d{2} GMT$/;
const ASCTIME_DATE = /^[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/;

/**
 * An HTTP date (RFC 9110 5.6.7) in ms, or NaN: IMF-fixdate, the obsolete RFC 850 form, or
 * asctime's, which names no zone and is GMT all the same (Date.parse alone would read it as local
 * time: an hour off in Zurich). Anything else, such as a bare number Date.parse would read as a
 * year, is no date.
 */
export function httpDateMs(value: string): number {
  const text = value.trim();
  if (IMF_FIXDATE.test(text) || RFC850_DATE.test(text)) return Date.parse(text);
  if (ASCTIME_DATE.test(text)) return Date.parse(`${text} GMT`);
  return NaN;
}

/**
 * Milliseconds to wait from a Retry-After header: delta-seconds, or an HTTP date (a past one is
 * 0). Anything else, a negative number included, is no header at all.
 */
export function retryAfterMs(value: string | undefined, nowMs = Date.now()): number | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = httpDateMs(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/** How long to wait before attempt `attempt + 1`: Retry-After or the exponential step, never under the floor, with jitter. */
export function retryDelayMs(attempt: number, retryAfter: number | undefined, random = Math.random()): number {
  if (retryAfter !== undefined) return Math.max(RETRY_FLOOR_MS, retryAfter) + random * RETRY_FLOOR_MS;
  return Math.max(RETRY_FLOOR_MS, Math.min(RETRY_STEP_CAP_MS, RETRY_FLOOR_MS * 2 ** (attempt + 1)) * (0.5 + random / 2));
}

/**
 * The wait before attempt `attempt + 1` (0-based), or undefined when there is none: MAX_ATTEMPTS
 * were made, or the wait and the attempt after it would not fit in `remainingMs` of the deadline.
 */
export function nextRetryMs(attempt: number, retryAfter: number | undefined, remainingMs: number, random = Math.random()): number | undefined {
  if (attempt + 1 >= MAX_ATTEMPTS) return undefined;
  const waitMs = retryDelayMs(attempt, retryAfter, random);
  // Leave room for the attempt itself, not only the wait.
  return waitMs + 500 > remainingMs ? undefined : waitMs;
}

class Exchange {
  private readonly signal: AbortSignal;
  private readonly dispatcher: Dispatcher;
  private readonly host: string;
  private readonly origin: string;
  /** A base URL may carry a path prefix (a reverse proxy); the API paths go below it. */
  private readonly basePath: string;

  constructor(
    private readonly options: GatewayOptions,
    private readonly deadline: Deadline,
  ) {
    this.signal = deadline.signal;
    const base = new URL(options.baseUrl);
    this.host = base.host;
    this.origin = base.origin;
    this.basePath = base.pathname.replace(/\/+$/, '');
    // EnvHttpProxyAgent honours HTTPS_PROXY / HTTP_PROXY / NO_PROXY, as CI runners behind proxies need.
    // One connection: the sign call must reuse the token call's (one TLS handshake, not two), and a
    // fresh pool otherwise opens a second connection for a request sent just as the first ends.
    // The connect timeout covers TCP and the TLS handshake; both stay inside the deadline.
    const connectMs = Math.max(1, Math.min(options.connectTimeoutSeconds * 1000, deadline.remainingMs()));
    this.dispatcher = new EnvHttpProxyAgent({ connections: 1, connect: { timeout: connectMs } });
  }

  /** The deadline ran out: its abort, or one of undici's timers set to what was left of it. */
  private ranOut(err: unknown): boolean {
    const code = errorCode(err);
    return this.signal.aborted || (code !== undefined && DEADLINE_CODES.has(code));
  }

  private timedOut(cause?: unknown): GatewayUnavailableError {
    return new GatewayUnavailableError(`gateway ${this.host} did not answer in ${this.deadline}`, { fix: 'check the network or HTTPS_PROXY, or raise "timeout"', cause });
  }

  /** Waits before the next attempt if one is left and still fits the deadline; false when not. */
  private async backoff(attempt: number, retryAfter?: number): Promise<boolean> {
    const waitMs = nextRetryMs(attempt, retryAfter, this.deadline.remainingMs());
    if (waitMs === undefined) return false;
    log('retrying in %d ms', Math.round(waitMs));
    await sleep(waitMs, undefined, { signal: this.signal }).catch(() => {});
    return !this.signal.aborted;
  }

  async post(path: string, headers: Record<string, string>, body?: string): Promise<Reply> {
    for (let attempt = 0; ; attempt++) {
      let reply: Reply;
      try {
        reply = await this.once('POST', path, headers, body);
      } catch (err) {
        if (this.ranOut(err)) throw this.timedOut(err);
        const code = errorCode(err);
        const why = describeNetworkError(err, this.options.connectTimeoutSeconds);
        log('POST %s failed: %s', path, why);
        if (code && RETRYABLE_CODES.has(code) && (await this.backoff(attempt))) continue;
        throw new GatewayUnavailableError(`cannot reach gateway ${this.host}: ${why}`, { cause: err });
      }
      log('POST %s -> %d', path, reply.status);
      if (reply.status === 429 || reply.status >= 500) {
        const retryAfter = retryAfterMs(header(reply, 'retry-after'));
        if (await this.backoff(attempt, retryAfter)) continue;
        if (this.signal.aborted) throw this.timedOut();
        const detail = describeBody(reply.text, header(reply, 'content-type'));
        if (reply.status === 429) {
          const when = retryAfter !== undefined ? `retry after ${Math.ceil(retryAfter / 1000)} s` : 'try again later';
          throw new GatewayUnavailableError(`gateway ${this.host} is rate limiting (429)`, { fix: when });
        }
        throw new GatewayUnavailableError(`gateway ${this.host} failed (${reply.status})${detail} after ${attempt + 1} attempt(s)`, { fix: 'try again later' });
      }
      return reply;
    }
  }

  /** One GET of the base URL, no retries: any HTTP answer proves DNS, TCP and TLS work. */
  async probe(): Promise<Reply> {
    try {
      return await this.once('GET', '/', {});
    } catch (err) {
      if (this.ranOut(err)) throw this.timedOut(err);
      throw new GatewayUnavailableError(`cannot reach gateway ${this.host}: ${describeNetworkError(err, this.options.connectTimeoutSeconds)}`, { cause: err });
    }
  }

  private async once(method: 'GET' | 'POST', path: string, headers: Record<string, string>, body?: string): Promise<Reply> {
    const remaining = Math.max(1, this.deadline.remainingMs());
    const sentAt = Date.now();
    const res = await this.dispatcher.request({
      origin: this.origin,
      path: `${this.basePath}${path}`,
      method,
      headers: {
        'user-agent': this.options.userAgent,
        'x-client-type': 'cli',
        accept: 'application/json',
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      body,
      signal: this.signal,
      headersTimeout: remaining,
      bodyTimeout: remaining,
    });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY) {
        res.body.destroy();
        return { status: res.statusCode, headers: res.headers, text: OVERSIZED, sentAt };
      }
      chunks.push(chunk as Buffer);
    }
    return { status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString('utf8'), sentAt };
  }

  close(): void {
    // Keep-alive sockets would hold the process open for seconds after the work is done.
    void this.dispatcher.destroy().catch(() => {});
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * The gateway's clock minus ours, as an upper bound: the gateway wrote its Date header (whole
 * seconds, rounded down) after our request left, so its clock then was before the header's second
 * ended and ours was at least sentAt. Too high, the gateway's clock is thought later than it is and
 * a certificate is refreshed up to a second and a round trip early; too low, as the middle of the
 * second less the time of arrival was, it is presented after it expired. That happened on a loaded
 * runner: 12 s certificates, 3 s margin, a stale half second, and an ssh that took 2 s to log in
 * got "Permission denied (publickey)".
 */
function clockOffset(reply: Reply): number | undefined {
  const date = header(reply, 'date');
  const serverMs = date ? httpDateMs(date) : NaN;
  return Number.isNaN(serverMs) ? undefined : serverMs + 1000 - reply.sentAt;
}

async function token(exchange: Exchange, apiKey: ApiKey): Promise<string> {
  const reply = await exchange.post(TOKEN_PATH, { 'x-api-key': apiKey.value });
  const detail = describeBody(reply.text, header(reply, 'content-type'));
  if (reply.status === 401) throw new ApiKeyError(`API key rejected (401)${detail}`, { fix: `check ${apiKey.source}` });
  if (reply.status === 403) throw new ApiKeyError(`service account disabled (403)${detail}`, { fix: "ask your project's PI to enable it in the CSCS portal" });
  if (reply.status < 200 || reply.status > 299) throw new GatewayResponseError(`token request failed (${reply.status})${detail}`, { status: reply.status });
  const accessToken = (parseJson(reply.text) as { access_token?: unknown } | undefined)?.access_token;
  if (typeof accessToken !== 'string' || accessToken === '') {
    throw new GatewayResponseError(`token request answered ${reply.status} without an access token${detail}`, { status: reply.status });
  }
  registerSecret(accessToken);
  return accessToken;
}

async function sign(exchange: Exchange, accessToken: string, publicKeyLine: string): Promise<SignedCertificate> {
  const auth = { authorization: `Bearer ${accessToken}` };
  let reply = await exchange.post(SIGN_PATH, auth, JSON.stringify({ publicKey: publicKeyLine, duration: '1min' }));
  if (reply.status === 422) {
    // The public docs show {"public_key"} where the official client sends {"publicKey"}: accept either server.
    log('sign answered 422, retrying with the documented public_key body');
    reply = await exchange.post(SIGN_PATH, auth, JSON.stringify({ public_key: publicKeyLine }));
  }
  const detail = describeBody(reply.text, header(reply, 'content-type'));
  if (reply.status === 401 || reply.status === 403) {
    throw new GatewayResponseError(`gateway refused the fresh access token (${reply.status})${detail}: the service account may lack SSH access`, { status: reply.status });
  }
  if (reply.status < 200 || reply.status > 299) throw new GatewayResponseError(`sign request refused (${reply.status})${detail}`, { status: reply.status });
  const line = (parseJson(reply.text) as { sshKey?: { publicKey?: unknown } } | undefined)?.sshKey?.publicKey;
  if (typeof line !== 'string' || line.trim() === '') {
    throw new GatewayResponseError(`sign request answered ${reply.status} without a certificate${detail}`, { status: reply.status });
  }
  return { line: line.trim(), clockOffsetMs: clockOffset(reply) };
}

function openExchange(options: GatewayOptions, deadline: Deadline): Exchange {
  // undici compiles its HTTP parser (llhttp, WebAssembly) at the first connection. V8's optimising
  // tier then recompiles it in the background and the process waits for that at exit: ~50 ms
  // for two small responses. The baseline compiler alone is plenty here (bench/, docs/performance.md).
  setFlagsFromString('--liftoff-only');
  return new Exchange(options, deadline);
}

/** Whether the gateway answers at all, and its clock offset (gateway minus local, ms). */
export async function probeGateway(options: GatewayOptions): Promise<{ status: number; clockOffsetMs: number | undefined }> {
  const exchange = openExchange(options, new Deadline(options.timeoutSeconds));
  try {
    const reply = await exchange.probe();
    return { status: reply.status, clockOffsetMs: clockOffset(reply) };
  } finally {
    exchange.close();
  }
}

/**
 * Whether the gateway takes the API key: asks it for an access token (and throws what the token
 * request throws), without signing anything. The token is dropped unused.
 */
export async function checkApiKey(apiKey: ApiKey, options: GatewayOptions): Promise<void> {
  const exchange = openExchange(options, new Deadline(options.timeoutSeconds));
  try {
    await token(exchange, apiKey);
  } finally {
    exchange.close();
  }
}

/**
 * Exchanges the API key for a certificate of `publicKeyLine`, within what is left of `deadline`.
 * The JWT never leaves this function.
 */
export async function requestCertificate(apiKey: ApiKey, publicKeyLine: string, options: GatewayOptions, deadline: Deadline): Promise<SignedCertificate> {
  const exchange = openExchange(options, deadline);
  try {
    return await sign(exchange, await token(exchange, apiKey), publicKeyLine);
  } finally {
    exchange.close();
  }
}
