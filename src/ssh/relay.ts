/**
 * The byte pipe behind `ProxyCommand cscs-sa proxy %h %p`.
 *
 * It returns as soon as the server side ends or fails (smallstep/cli #1641 waited for both
 * directions and hung about 60 s), and half-closes towards the server when ssh's side ends, so a
 * server still sending (an exit status, the rest of a download) is not cut off.
 *
 * Each direction reads into one buffer of its own and reuses it (net's onread), instead of a new
 * Buffer for every read that only a later garbage collection frees: at gigabytes per transfer
 * that held the proxy's memory at ~80 MiB and slowed uploads (docs/performance.md).
 */
import { lookup } from 'node:dns/promises';
import { connect as netConnect, type OnReadOpts, Socket, type SocketConstructorOpts } from 'node:net';
import type { Writable } from 'node:stream';
import { ConnectError, errnoReason, LocalFileError } from '../base/errors.js';
import { createLog, setLogFile } from '../base/log.js';

const log = createLog('proxy');

function connectOne(address: string, port: number, timeoutMs: number, onread: OnReadOpts): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: address, port, allowHalfOpen: true, noDelay: true, onread });
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

/** Connects to every address `host` resolves to in turn, each with its own timeout; what the server sends goes to `onread`. */
async function connectTo(host: string, port: number, timeoutMs: number, onread: OnReadOpts): Promise<Socket> {
  let addresses: { address: string }[];
  try {
    addresses = await lookup(host, { all: true, verbatim: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConnectError(`cannot resolve host ${JSON.stringify(host)}: ${code === 'ENOTFOUND' ? 'no such host' : errnoReason(err)}`, { cause: err });
  }
  const failures: string[] = [];
  for (const { address } of addresses) {
    try {
      const socket = await connectOne(address, port, timeoutMs, onread);
      log('connected to %s port %d', address, port);
      return socket;
    } catch (err) {
      log('%s port %d: %s', address, port, errnoReason(err));
      failures.push(`${address}: ${errnoReason(err)}`);
    }
  }
  throw new ConnectError(`cannot connect to ${host} port ${port}: ${failures.join(', ')}`);
}

const CHUNK = 64 * 1024;

/**
 * One direction: every chunk read into the reused buffer is written to `out`. While `out` still
 * holds part of a chunk (libuv keeps a pointer into the buffer until the write completes),
 * reading pauses, and resumes from that write's callback: backpressure without copies.
 */
function forward(out: Writable, resume: () => void, counted: { bytes: number }): OnReadOpts {
  return {
    buffer: Buffer.allocUnsafe(CHUNK),
    callback(n, buffer) {
      counted.bytes += n;
      let waiting = false;
      out.write(buffer.subarray(0, n), () => waiting && resume());
      if (out.writableLength === 0) return true;
      waiting = true;
      return false;
    },
  };
}

/**
 * Relays between ssh (fd 0 and `output`, its stdout pipe) and HOST:PORT until the server side
 * ends (resolves) or fails (rejects).
 */
export async function proxy(host: string, port: number, timeoutMs: number, output: Writable): Promise<void> {
  const up = { bytes: 0 };
  const down = { bytes: 0 };
  let socket: Socket | undefined;
  let input: Socket | undefined;
  socket = await connectTo(host, port, timeoutMs, forward(output, () => socket!.resume(), down));
  const server = socket;
  return new Promise((resolve, reject) => {
    // net.Socket takes onread for an fd too (Node >= 12), though @types/node declares it only for connect().
    const options = { fd: 0, readable: true, writable: false, onread: forward(server, () => input!.resume(), up) };
    input = new Socket(options as SocketConstructorOpts);
    input.on('end', () => {
      log('client side ended after %d bytes: half-closing', up.bytes);
      server.end();
    });
    // ssh has gone away (EPIPE on its pipes): nothing left to relay.
    input.on('error', () => resolve());
    output.on('error', () => resolve());
    server.on('error', (err) => reject(new ConnectError(`connection to the server failed: ${errnoReason(err)}`, { cause: err })));
    server.on('end', () => {
      log('server side ended after %d bytes', down.bytes);
      // Resolve once what was already handed to `output` is flushed, not when the client side ends.
      output.write('', () => resolve());
    });
  });
}

/**
 * The proxy command once its settings are known (both entries run it): the --log file, the
 * process's own cost logged at exit (it carries every byte of every scp and rsync), and the relay.
 */
export async function relay(host: string, port: number, timeoutSeconds: number, logFile?: string): Promise<number> {
  if (logFile) {
    try {
      setLogFile(logFile);
    } catch (err) {
      // The log is diagnostics: a bad --log must not cost the connection (nor let whoever planted
      // the file there break every ssh); say so once and relay without it.
      if (!(err instanceof LocalFileError)) throw err;
      process.stderr.write(`cscs-sa: ${err.line}; relaying without a log\n`);
    }
  }
  process.once('exit', () => {
    const usage = process.resourceUsage();
    log('exit: %d ms user CPU, %d ms system CPU, peak RSS %d KiB', Math.round(usage.userCPUTime / 1000), Math.round(usage.systemCPUTime / 1000), usage.maxRSS);
  });
  // ssh's SIGHUP when it exits ends us through the entry's signal handler; nothing is left to flush.
  await proxy(host, port, timeoutSeconds * 1000, process.stdout);
  return 0;
}
