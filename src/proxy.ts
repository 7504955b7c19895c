/**
 * The byte pipe behind `ProxyCommand cscs-sa proxy %h %p`.
 *
 * It returns as soon as the server side ends or fails (smallstep/cli #1641 waited for both
 * directions and hung about 60 s), and half-closes towards the server when ssh's side ends, so a
 * server still sending (an exit status, the rest of a download) is not cut off.
 */
import { lookup } from 'node:dns/promises';
import { connect as netConnect, type Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { ConnectError } from './errors.js';
import { createLog } from './log.js';

const log = createLog('proxy');

function reasonOf(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ETIMEDOUT':
      return 'timed out';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'network unreachable';
    case 'ECONNRESET':
      return 'connection reset';
    default:
      return e.code ?? e.message;
  }
}

function connectOne(address: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: address, port, allowHalfOpen: true, noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
  });
}

/** Connects to every address `host` resolves to in turn, each with its own timeout. */
export async function connectTo(host: string, port: number, timeoutMs: number): Promise<Socket> {
  let addresses: { address: string }[];
  try {
    addresses = await lookup(host, { all: true, verbatim: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConnectError(`cannot resolve host ${JSON.stringify(host)}: ${code === 'ENOTFOUND' ? 'no such host' : reasonOf(err)}`);
  }
  const failures: string[] = [];
  for (const { address } of addresses) {
    try {
      const socket = await connectOne(address, port, timeoutMs);
      log('connected to %s port %d', address, port);
      return socket;
    } catch (err) {
      log('%s port %d: %s', address, port, reasonOf(err));
      failures.push(`${address}: ${reasonOf(err)}`);
    }
  }
  throw new ConnectError(`cannot connect to ${host} port ${port}: ${failures.join(', ')}`);
}

/**
 * Relays until the server side ends (resolves) or fails (rejects). Backpressure both ways comes
 * from pipe(); the end of `input` is passed on as a half-close.
 */
export function relay(socket: Socket, input: Readable, output: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    let upBytes = 0;
    let downBytes = 0;
    input.on('data', (chunk: Buffer) => (upBytes += chunk.length));
    socket.on('data', (chunk: Buffer) => (downBytes += chunk.length));
    input.pipe(socket);
    socket.pipe(output, { end: false });
    input.on('end', () => log('client side ended after %d bytes: half-closing', upBytes));
    // ssh has gone away (EPIPE on its pipes): nothing left to relay.
    input.on('error', () => resolve());
    output.on('error', () => resolve());
    socket.on('error', (err) => reject(new ConnectError(`connection to the server failed: ${reasonOf(err)}`)));
    socket.on('end', () => {
      log('server side ended after %d bytes', downBytes);
      // Resolve once what was already handed to `output` is flushed, not when the client side ends.
      output.write('', () => resolve());
    });
  });
}
