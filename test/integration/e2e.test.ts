/**
 * Plain OpenSSH tools through the ssh_config block setup writes (docs/setup-and-host-keys.md),
 * against real sshd on loopback: what a user types, what they get back, and how often the
 * gateway was asked.
 */
import * as assert from 'uvu/assert';
import { execa } from 'execa';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseCertificate } from '../../src/core/certificate.ts';
import { worldSuite } from '../helpers/suites.ts';
import { withKeyPair } from '../helpers/prepared.ts';

const scratch = mkdtempSync(join(tmpdir(), 'cscs-sa-e2e-'));
const { world, test } = worldSuite('end to end', { after: () => rmSync(scratch, { recursive: true, force: true }) });

/** A tree of files with random content, nested folders and an empty file. */
function makeTree(root: string): void {
  for (const [path, size] of [
    ['a.bin', 200_000],
    ['empty', 0],
    ['sub/b.txt', 1234],
    ['sub/deeper/c.bin', 70_000],
    ['sub/deeper/d with space', 10],
  ] as const) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), randomBytes(size));
  }
}

async function sameTree(a: string, b: string): Promise<void> {
  const r = await execa('diff', ['-r', a, b], { reject: false });
  assert.is(r.exitCode, 0, `trees differ: ${r.stdout}`);
}

test('ssh sa-clariden through ProxyJump sa-ela, from no key at all', async () => {
  const home = world.freshHome();
  const r = await world.ssh('sa-clariden', 'echo', 'ok');
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(r.stdout, 'ok');
  assert.is(r.stderr, '');
  assert.is(statSync(home.key).mode & 0o777, 0o600);
  // The jump host's own Match exec found the certificate fresh: one refresh for the whole chain.
  assert.is(world.gateway.signCalls, 1);
});

test('an expired certificate is replaced before ssh reads it', async () => {
  const home = world.freshHome();
  // A key pair and its expired certificate, made here: an ssh and a refresh only to get there
  // cost a Node start and a connection. One hop: test 1 shows the jump's share of a refresh.
  withKeyPair(home);
  const expired = await world.gateway.sign(readFileSync(home.pub, 'utf8'), { validity: '-10m:-5m' });
  writeFileSync(home.cert, `${expired}\n`);
  world.gateway.reset();
  const r = await world.ssh('sa-ela', 'echo', 'ok');
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(r.stdout, 'ok');
  assert.is(world.gateway.signCalls, 1);
  assert.ok(Number(parseCertificate(readFileSync(home.cert, 'utf8')).validBefore) > Date.now() / 1000);
});

test('scp both ways, byte for byte', async () => {
  world.freshHome();
  const local = join(scratch, 'scp-local.bin');
  const remote = join(scratch, 'scp-remote.bin');
  const back = join(scratch, 'scp-back.bin');
  writeFileSync(local, randomBytes(3 * 1024 * 1024 + 17));
  const up = await world.tool('scp', ['-q', local, `sa-clariden:${remote}`]);
  assert.is(up.exitCode, 0, up.stderr);
  const down = await world.tool('scp', ['-q', `sa-clariden:${remote}`, back]);
  assert.is(down.exitCode, 0, down.stderr);
  assert.ok(readFileSync(local).equals(readFileSync(remote)), 'upload intact');
  assert.ok(readFileSync(local).equals(readFileSync(back)), 'download intact');
});

// sftp and rsync ride the home the scp test made (a refresh each would prove nothing new), and
// go to the jump host: scp showed a transfer through the jump.
test('sftp put and get in batch mode', async () => {
  const local = join(scratch, 'sftp-local.bin');
  const remote = join(scratch, 'sftp-remote.bin');
  const back = join(scratch, 'sftp-back.bin');
  writeFileSync(local, randomBytes(500_000));
  const batch = join(scratch, 'batch');
  writeFileSync(batch, `put ${local} ${remote}\nget ${remote} ${back}\n`);
  const r = await world.tool('sftp', ['-q', '-b', batch, 'sa-ela']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.ok(readFileSync(local).equals(readFileSync(back)));
});

test('rsync a tree up and back down, byte for byte', async () => {
  const src = join(scratch, 'rsync-src');
  const remote = join(scratch, 'rsync-remote');
  const back = join(scratch, 'rsync-back');
  makeTree(src);
  const up = await world.rsync(['-a', `${src}/`, `sa-ela:${remote}/`]);
  assert.is(up.exitCode, 0, up.stderr);
  const down = await world.rsync(['-a', `sa-ela:${remote}/`, `${back}/`]);
  assert.is(down.exitCode, 0, down.stderr);
  await sameTree(src, remote);
  await sameTree(src, back);
});

test('a failing refresh shows its one line through ssh, and ssh fails', async () => {
  world.freshHome();
  world.env.CSCS_API_KEY = 'not-the-right-key';
  const r = await world.ssh('sa-ela', 'true');
  assert.is.not(r.exitCode, 0);
  assert.match(r.stderr, /^cscs-sa: API key rejected \(401\): Invalid API key: check CSCS_API_KEY$/m);
  assert.match(r.stderr, /Permission denied \(publickey\)/);
});

test.run();
