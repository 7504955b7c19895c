/**
 * `cscs-sa proxy` as ssh drives it: stdin and stdout are the connection, stderr is for people.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { execa } from 'execa';
import { BIN, tempHome, userEnv, writeConfig } from '../helpers/cli.ts';
import { freePort } from '../helpers/sshd.ts';
import { missingTool, skipTest } from '../helpers/suites.ts';

const test = suite('proxy');

async function listen(onConnection: (socket: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer({ allowHalfOpen: true }, onConnection);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port };
}

function proxy(args: string[]) {
  return execa(process.execPath, [BIN, 'proxy', ...args], { reject: false, stdin: 'pipe', stdout: 'pipe', stderr: 'pipe', encoding: 'buffer', buffer: { stdout: false } });
}

const GiB = 1024 * 1024 * 1024;
const CHUNK = 1024 * 1024;

/**
 * The stream a side sends: GiB / CHUNK chunks, each its side's random MiB with its index stamped
 * into its first 4 bytes, so that a chunk lost, repeated or reordered shows, and a byte sent back
 * to the side it came from too. Written as the stamp and the rest of the one MiB, never copied: a
 * fresh MiB for each chunk (3 GiB of copies, on both sides and for the expected digest) cost more
 * CPU than the relay.
 */
const UP = randomBytes(CHUNK);
const DOWN = randomBytes(CHUNK);
function stamp(i: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(i, 0);
  return b;
}

/** Writes the whole stream of `block` to `out`, then ends it, waiting for drain whenever it asks. */
function sendStream(block: Buffer, out: Writable, done: () => void = () => out.end()): void {
  const rest = block.subarray(4);
  let i = 0;
  const send = () => {
    while (i < GiB / CHUNK) {
      out.cork();
      out.write(stamp(i++));
      const more = out.write(rest);
      out.uncork();
      if (!more) return void out.once('drain', send);
    }
    done();
  };
  send();
}

/**
 * What arrived, compared byte for byte with the stream as sent, piece by piece as it arrives:
 * `firstDifference` is the offset of the first byte that differs (-1: none), `bytes` how many
 * came. (A SHA-256 of each side and of the expected stream cost 3 GiB of hashing.)
 */
function receiver(block: Buffer): { feed(d: Buffer): void; bytes: number; firstDifference: number } {
  const r = {
    bytes: 0,
    firstDifference: -1,
    feed(d: Buffer) {
      for (let off = 0; off < d.length && r.firstDifference < 0; ) {
        const i = Math.floor(r.bytes / CHUNK);
        const at = r.bytes % CHUNK;
        const want = at < 4 ? stamp(i).subarray(at) : block.subarray(at);
        const n = Math.min(want.length, d.length - off);
        if (!d.subarray(off, off + n).equals(want.subarray(0, n))) r.firstDifference = r.bytes;
        off += n;
        r.bytes += n;
      }
    },
  };
  return r;
}

test('1 GiB each way at once, byte for byte', async () => {
  const uploaded = receiver(UP);
  let uploadEnded = false;
  const { server, port } = await listen((socket) => {
    // Like sshd, the server closes only when both directions are done: the proxy exits when it does.
    let sent = false;
    const finish = () => sent && uploadEnded && socket.end();
    socket.on('data', (d: Buffer) => uploaded.feed(d));
    socket.on('end', () => {
      uploadEnded = true;
      finish();
    });
    sendStream(DOWN, socket, () => {
      sent = true;
      finish();
    });
  });
  const child = proxy(['127.0.0.1', String(port)]);
  const downloaded = receiver(DOWN);
  child.stdout!.on('data', (d: Buffer) => downloaded.feed(d));
  sendStream(UP, child.stdin!);
  const r = await child;
  server.close();
  assert.is(r.exitCode, 0, String(r.stderr));
  assert.ok(uploadEnded, 'the upload ended');
  for (const [way, got] of [['download', downloaded], ['upload', uploaded]] as const) {
    assert.is(got.firstDifference, -1, `${way}: differs from byte ${got.firstDifference} on`);
    assert.is(got.bytes, GiB, `${way}: ${got.bytes} bytes`);
  }
});

test('server closes first: exits at once though ssh keeps its side open', async () => {
  const { server, port } = await listen((socket) => socket.end('bye\n'));
  const child = proxy(['127.0.0.1', String(port)]);
  const started = Date.now();
  const r = await child; // stdin stays open: the test never ends it
  server.close();
  assert.is(r.exitCode, 0);
  assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
});

test('client closes first: half-closes, relays what the server still sends, then exits', async () => {
  const { server, port } = await listen((socket) => {
    const got: Buffer[] = [];
    socket.on('data', (d) => got.push(d));
    // The server answers only after it saw the end of the client's data, as `ssh host cmd < file` needs.
    socket.on('end', () => setTimeout(() => socket.end(`got ${Buffer.concat(got).toString()}`), 200));
  });
  const child = execa(process.execPath, [BIN, 'proxy', '127.0.0.1', String(port)], { reject: false, input: 'hello' });
  const r = await child;
  server.close();
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(r.stdout, 'got hello');
});

test('SIGHUP from ssh: exits at once, quietly, by exit code (128 + 1) rather than by signal', async () => {
  let connected: () => void;
  const connection = new Promise<void>((resolve) => (connected = resolve));
  const { server, port } = await listen(() => connected());
  const child = proxy(['127.0.0.1', String(port)]);
  // Once it has connected, it is relaying: the state ssh's SIGHUP finds it in.
  await connection;
  const started = Date.now();
  child.kill('SIGHUP');
  const r = await child;
  server.close();
  assert.is(r.exitCode, 129);
  assert.is(r.signal, undefined);
  assert.is(String(r.stderr), '');
  assert.ok(Date.now() - started < 1000);
});

test('bad input: one line on stderr, a documented exit code, nothing on stdout', async () => {
  const closed = await freePort();
  const cases: [string[], number, RegExp][] = [
    [['no-such-host.invalid', '22'], 8, /^cscs-sa: cannot resolve host "no-such-host\.invalid": no such host\n$/],
    [['127.0.0.1', String(closed)], 8, new RegExp(`^cscs-sa: cannot connect to 127\\.0\\.0\\.1 port ${closed}: 127\\.0\\.0\\.1: connection refused\\n$`)],
    [['127.0.0.1', 'ssh'], 2, /^cscs-sa: proxy: "ssh" is not a TCP port\n$/],
    [['127.0.0.1', '70000'], 2, /^cscs-sa: proxy: "70000" is not a TCP port\n$/],
    [['127.0.0.1'], 2, /^cscs-sa: proxy takes HOST and PORT/],
    [['--bogus', '127.0.0.1', '22'], 2, /^cscs-sa: proxy: Unknown option '--bogus' \(see cscs-sa proxy --help\)\n$/],
    [['$(touch /tmp/cscs-sa-pwned);x', '22'], 8, /^cscs-sa: cannot resolve host/],
  ];
  for (const [args, code, stderr] of cases) {
    const r = await execa(process.execPath, [BIN, 'proxy', ...args], { reject: false, stdin: 'ignore', stripFinalNewline: false });
    assert.is(r.exitCode, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, stderr);
    assert.is(r.stdout, '');
  }
  assert.throws(() => statSync('/tmp/cscs-sa-pwned'), /ENOENT/, 'the host name was run by a shell');
});

test('--log FILE records the connection for ControlPersist masters, whose stderr is /dev/null', async () => {
  const { server, port } = await listen((socket) => socket.end('x'));
  const log = `/tmp/cscs-sa-proxy-log-${process.pid}`;
  const r = await execa(process.execPath, [BIN, 'proxy', '--log', log, '127.0.0.1', String(port)], { reject: false });
  server.close();
  assert.is(r.exitCode, 0);
  const text = readFileSync(log, 'utf8');
  rmSync(log);
  assert.match(text, new RegExp(`cscs-sa:proxy connected to 127\\.0\\.0\\.1 port ${port}`));
  assert.match(text, /cscs-sa:proxy server side ended after 1 bytes/);
});

const noStrace = missingTool('strace');
const lean = 'a plain relay with a JSON config file starts from the CommonJS entry alone: no config loader, no ES module, nothing under node_modules';
if (noStrace) {
  skipTest(lean, noStrace);
} else {
  test(lean, async () => {
    const home = tempHome();
    try {
      writeConfig(home, 'config.json', '{"connectTimeout": 3}');
      const { server, port } = await listen((socket) => socket.end('served\n'));
      const trace = `${home.dir}/trace`;
      const r = await execa('strace', ['-f', '-e', 'trace=open,openat', '-o', trace, process.execPath, BIN, 'proxy', '127.0.0.1', String(port)], { env: userEnv(home), extendEnv: false, reject: false });
      server.close();
      assert.equal([r.exitCode, r.stdout, r.stderr], [0, 'served', '']);
      const opened = [...new Set([...readFileSync(trace, 'utf8').matchAll(/open(?:at)?\([^"]*"([^"]+)"/g)].map((m) => m[1]!))];
      const ours = opened.filter((path) => path.includes('/node_modules/') || path.includes('/dist/') || path.includes('/src/'));
      assert.equal(ours.map((path) => path.replace(/^.*\/(dist|src|node_modules)\//, '$1/')), ['dist/entry.cjs']);
    } finally {
      home.remove();
    }
  });
}

test.run();
