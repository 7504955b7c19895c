/**
 * Process and disk faults: a refresh killed at any point, a full or read-only ~/.ssh, a
 * certificate file clobbered by another program, keys in the wrong shape.
 */
import * as assert from 'uvu/assert';
import { execa } from 'execa';
import { buildSync } from 'esbuild';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseCertificate } from '../../src/core/certificate.ts';
import { gatewaySuite, skipTest } from '../helpers/suites.ts';
import { BIN, cscsSa, type Home } from '../helpers/cli.ts';
import { certificateInPlace } from '../helpers/prepared.ts';

const { gw, test } = gatewaySuite('faults', 'sa-faults-key-0123456789');
const isRoot = process.getuid?.() === 0;

function spawn(args: string[], env: Record<string, string>) {
  return execa(process.execPath, [BIN, ...args], { env, extendEnv: false, reject: false, stdin: 'ignore' });
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const started = Date.now();
  const result = await fn();
  return [result, Date.now() - started];
}

test('kill -9 while waiting for the gateway: the next run recovers the lock within 2 s', async ({ home, env }) => {
  gw.faults.token.push({ hang: true });
  const victim = spawn(['match'], env);
  for (let i = 0; i < 200 && gw.tokenCalls === 0; i++) await sleep(20);
  assert.ok(existsSync(home.lock), 'the refreshing process holds the lock while it waits for the gateway');
  victim.kill('SIGKILL');
  await victim;
  assert.ok(existsSync(home.lock), 'kill -9 left the lock behind');
  const [r, ms] = await timed(() => cscsSa(['match'], env));
  assert.is(r.exitCode, 0, r.stderr);
  assert.ok(ms < 2000, `recovered in ${ms} ms`);
  assert.not.ok(existsSync(home.lock));
  console.log(`    kill -9 while waiting on the gateway: next run recovered the lock and refreshed in ${ms} ms`);
});

/**
 * A reader in its own process, reading `path` in bursts of 200 reads 5 ms apart and counting
 * reads that are not one whole certificate line. Ready once it has read the file once. The pause
 * keeps it from holding a core for the whole test: what it must see stays visible far longer
 * than 5 ms (a file torn by a kill until the next refresh rewrites it, after a Node start; a
 * paused write for its 40 ms).
 */
async function startReader(path: string): Promise<{ stop(): Promise<{ reads: number; torn: number }> }> {
  const reader = execa(
    process.execPath,
    [
      '-e',
      `const fs = require('fs'); let reads = 0, torn = 0;
       process.on('SIGTERM', () => { console.log(JSON.stringify({ reads, torn })); process.exit(0); });
       (function loop() { for (let i = 0; i < 200; i++) { let t; try { t = fs.readFileSync(${JSON.stringify(path)}, 'utf8'); } catch { continue; }
         if (reads++ === 0) process.stderr.write('ready\\n');
         if (!/^ssh-ed25519-cert-v01@openssh.com [A-Za-z0-9+/=]+ cscs-sa (?:fresh=\\S+ )?offset=-?\\d+ refreshed=\\S+\\n$/.test(t)) torn++; }
         setTimeout(loop, 5); })();`,
    ],
    { reject: false },
  );
  await new Promise<void>((resolve) => reader.stderr!.once('data', () => resolve()));
  return {
    async stop() {
      reader.kill('SIGTERM');
      return JSON.parse(String((await reader).stdout));
    },
  };
}

/**
 * test/helpers/paused-writer.ts as one plain JavaScript file, with the source it imports: started
 * through tsx's loader instead, each of its runs cost ~0.65 s of CPU to compile it.
 */
function pausedWriter(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cscs-sa-writer-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const outfile = join(dir, 'paused-writer.mjs');
  buildSync({
    entryPoints: [join(import.meta.dirname, '..', 'helpers', 'paused-writer.ts')],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20.18',
    packages: 'external',
    logLevel: 'warning',
  });
  return outfile;
}

test('a writer paused mid-file: torn reads every time in place, none through writeFileAtomic', async ({ home }) => {
  // Deterministic: every write(2) stops for 40 ms halfway (test/helpers/paused-writer.ts), so a
  // non-atomic write is seen torn on each of the rounds, not by the luck of a kill's timing.
  await certificateInPlace(home, gw);
  const rounds = 10;
  const script = pausedWriter();
  const results: Record<string, { reads: number; torn: number }> = {};
  for (const mode of ['in-place', 'atomic']) {
    const reader = await startReader(home.cert);
    const writer = await execa(process.execPath, [script, mode, home.cert, String(rounds)], { reject: false });
    assert.is(writer.exitCode, 0, writer.stderr);
    results[mode] = await reader.stop();
  }
  assert.ok(results['in-place']!.torn >= rounds, `in place: ${results['in-place']!.torn} torn reads over ${rounds} paused writes`);
  assert.ok(results.atomic!.reads > 1000, `${results.atomic!.reads} reads`);
  assert.is(results.atomic!.torn, 0, `writeFileAtomic: ${results.atomic!.torn} of ${results.atomic!.reads} reads torn`);
  assert.equal(readdirSync(join(home.dir, '.ssh')).sort(), ['cscs-key-sa', 'cscs-key-sa-cert.pub', 'cscs-key-sa.pub']);
  console.log(`    writer paused mid-file ${rounds} times: in place ${results['in-place']!.torn} of ${results['in-place']!.reads} reads torn; writeFileAtomic ${results.atomic!.torn} of ${results.atomic!.reads}`);
});

test('kill -9 at random points of 30 refreshes: a concurrent reader never sees a partial file', async ({ home, env }) => {
  await certificateInPlace(home, gw);
  // A reader in its own process: every read must be a whole certificate.
  const reader = await startReader(home.cert);
  for (let i = 0; i < 30; i++) {
    gw.faults.sign.push({ delayMs: Math.floor(Math.random() * 40) });
    const victim = spawn(['sign', '--force'], env);
    await sleep(60 + Math.random() * 120);
    victim.kill('SIGKILL');
    await victim;
  }
  const { reads, torn } = await reader.stop();
  assert.ok(reads > 1000, `${reads} reads`);
  assert.is(torn, 0, `${torn} of ${reads} reads saw a partial certificate`);
  const [r, ms] = await timed(() => cscsSa(['sign'], env));
  assert.is(r.exitCode, 0, r.stderr);
  assert.ok(ms < 2000, `recovered in ${ms} ms`);
  assert.equal(readdirSync(join(home.dir, '.ssh')).sort(), ['cscs-key-sa', 'cscs-key-sa-cert.pub', 'cscs-key-sa.pub'], 'leftovers swept');
  console.log(`    30 refreshes killed at random points: ${reads} concurrent reads, ${torn} torn; next run ${ms} ms`);
});

test('a certificate truncated or emptied is treated as missing and refreshed', async ({ home, env }) => {
  await certificateInPlace(home, gw);
  const good = readFileSync(home.cert, 'utf8');
  // Each kind of damage is judged in test/unit/certificate.test.ts; two of them end to end here.
  for (const clobbered of [good.slice(0, 100), '']) {
    writeFileSync(home.cert, clobbered);
    gw.reset();
    const r = await cscsSa(['match'], env);
    assert.is(r.exitCode, 0, r.stderr);
    assert.is(gw.signCalls, 1);
    assert.ok(parseCertificate(readFileSync(home.cert, 'utf8')));
  }
});

test('a KEY path that is a directory: one line, exit 7', async ({ home, env }) => {
  const dir = join(home.dir, 'keydir');
  mkdirSync(dir);
  const r = await cscsSa(['match', '-f', dir], env);
  assert.is(r.exitCode, 7);
  assert.is(r.stderr, `cscs-sa: key ${dir} is a directory: point -f (or "key") at a private key file\n`);
});

test('a private key readable by others is refused, as ssh would, with the fix', async ({ home, env }) => {
  await certificateInPlace(home, gw);
  chmodSync(home.key, 0o644);
  const r = await cscsSa(['sign', '--force'], env);
  assert.is(r.exitCode, 7);
  assert.is(r.stderr, `cscs-sa: key ${home.key} has permissions 0644, which ssh refuses: run chmod 600 ${home.key}\n`);
});

test('a .pub without its private key is not silently replaced', async ({ home, env }) => {
  mkdirSync(join(home.dir, '.ssh'));
  writeFileSync(home.pub, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHcTZkJ4k3D2mD7M4Z4W3z1yCkq0kQmB0lq7b0x2X0aF someone\n');
  const r = await cscsSa(['match'], env);
  assert.is(r.exitCode, 7);
  assert.match(r.stderr, /exists but its private key .* does not: restore the key or move the \.pub away\n$/);
  assert.match(readFileSync(home.pub, 'utf8'), /someone/);
});

test('a missing .pub is derived from the private key', async ({ home, env }) => {
  await certificateInPlace(home, gw);
  const pub = readFileSync(home.pub, 'utf8');
  rmSync(home.pub);
  const r = await cscsSa(['sign', '--force'], env);
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(readFileSync(home.pub, 'utf8').split(' ').slice(0, 2).join(' '), pub.split(' ').slice(0, 2).join(' '));
});

/** Mounts a small tmpfs on HOME/.ssh (root only: CI runs as root). */
async function mountSsh(home: Home, options: string): Promise<string> {
  const dir = join(home.dir, '.ssh');
  mkdirSync(dir, { recursive: true });
  await execa('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]);
  return dir;
}

if (isRoot) {
  test('~/.ssh full: clear error, the valid certificate kept', async ({ home, env }) => {
    const dir = await mountSsh(home, 'size=64k,mode=0700');
    try {
      await certificateInPlace(home, gw);
      const before = readFileSync(home.cert, 'utf8');
      await execa('dd', ['if=/dev/zero', `of=${join(dir, 'filler')}`, 'bs=4k'], { reject: false });
      const r = await cscsSa(['sign', '--force'], env);
      assert.is(r.exitCode, 7);
      assert.match(r.stderr, /^cscs-sa: cannot (lock|write certificate) .*: no space left on device/);
      assert.is(readFileSync(home.cert, 'utf8'), before);
      assert.not.ok(existsSync(home.lock), 'no lock left behind');
    } finally {
      await execa('umount', [dir]);
    }
  });

  test('~/.ssh read-only: clear error, the certificate kept', async ({ home, env }) => {
    const dir = await mountSsh(home, 'size=64k,mode=0700');
    try {
      await certificateInPlace(home, gw);
      const before = readFileSync(home.cert, 'utf8');
      await execa('mount', ['-o', 'remount,ro', dir]);
      const r = await cscsSa(['sign', '--force'], env);
      assert.is(r.exitCode, 7);
      assert.is(r.stderr, `cscs-sa: cannot lock ${home.lock}: read-only file system\n`);
      assert.is(readFileSync(home.cert, 'utf8'), before);
    } finally {
      await execa('umount', [dir]);
    }
  });
} else {
  skipTest('~/.ssh full: clear error, the valid certificate kept', 'needs root to mount a tmpfs');
  skipTest('~/.ssh read-only: clear error, the certificate kept', 'needs root to mount a tmpfs');
}

test.run();
